//! `rtos-stripe-sandbox`: the project's Stripe stand-in ([`harness::fake_stripe`]) as a
//! local process, so a development stack (`scripts/run`, `tests/browser/run.sh`) applies
//! accepted offers to a subscription instead of failing for want of Stripe. Development
//! only: it refuses to start with `APP_ENV=production`, binds loopback addresses only, and
//! the api and workers refuse a non-Stripe `STRIPE_API_BASE` in production anyway.
//!
//! ```text
//! rtos-stripe-sandbox [--addr HOST:PORT] [--url-file PATH]
//! ```
//!
//! - `--addr` (or `STRIPE_SANDBOX_ADDR`; default `127.0.0.1:0`, a port of the kernel's
//!   choosing): where to listen;
//! - prints its base URL (`http://127.0.0.1:PORT`, what `STRIPE_API_BASE` should be) as the
//!   first line of standard output, and with `--url-file` also writes it to that file
//!   (atomically: a reader sees the whole URL or no file);
//! - sandbox mode ([`FakeStripe::enable_demo_objects`]): any `sub_demo…` subscription or
//!   `cus_demo…` customer is created, active on a $49.00 monthly price, the first time a
//!   request names it, which is what the `/demo` page's customers need (the page's
//!   customer token names `sub_demo<suffix>` for customer `cus_demo<suffix>`);
//! - logs every request it answered to standard error;
//! - runs until SIGTERM or SIGINT (state is in memory only and ends with it).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use harness::fake_stripe::FakeStripe;

const USAGE: &str = "usage: rtos-stripe-sandbox [--addr HOST:PORT] [--url-file PATH]";

struct Args {
    addr: SocketAddr,
    url_file: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = std::env::var("STRIPE_SANDBOX_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let mut url_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            "--url-file" => {
                url_file = Some(PathBuf::from(args.next().ok_or("--url-file needs a path")?))
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let addr: SocketAddr = addr
        .trim()
        .parse()
        .map_err(|e| format!("STRIPE_SANDBOX_ADDR / --addr {addr:?}: {e}"))?;
    // It accepts any well-formed key: never reachable from another machine.
    if !addr.ip().is_loopback() {
        return Err(format!(
            "the sandbox listens on loopback addresses only (got {addr})"
        ));
    }
    Ok(Args { addr, url_file })
}

fn write_url_file(path: &PathBuf, url: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{url}\n"))?;
    std::fs::rename(&tmp, path)
}

fn main() -> ExitCode {
    if std::env::var("APP_ENV").is_ok_and(|v| v.trim() == "production") {
        eprintln!("rtos-stripe-sandbox: refusing to run with APP_ENV=production (it stands in for Stripe in development only)");
        return ExitCode::from(2);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("rtos-stripe-sandbox: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtos-stripe-sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("rtos-stripe-sandbox: signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fake = match FakeStripe::bind(args.addr).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rtos-stripe-sandbox: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    fake.enable_demo_objects();
    let url = fake.base_url();
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{url}").and_then(|()| out.flush()).is_err() {
            // A closed stdout (the parent reads the URL file instead) is fine.
        }
    }
    if let Some(path) = &args.url_file {
        if let Err(e) = write_url_file(path, &url) {
            eprintln!("rtos-stripe-sandbox: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    eprintln!("rtos-stripe-sandbox: Stripe sandbox listening on {url} (development only; any sk_test_/rk_test_ key works; sub_demo…/cus_demo… are created on first use)");
    let mut seen = 0;
    // Ticks the oldest unlogged request has been in flight: one whose client went away
    // never gets a status, and must not hold the log back for good.
    let mut stuck = 0u32;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                // Answered requests in order; one still in flight waits for the next tick.
                for r in fake.requests_since(seen) {
                    let answer = match r.status {
                        Some(status) => status.to_string(),
                        None if stuck < 240 => {
                            stuck += 1;
                            break;
                        }
                        None => "no answer after 60 s".into(),
                    };
                    stuck = 0;
                    seen += 1;
                    eprintln!(
                        "rtos-stripe-sandbox: {} {} -> {answer}{}",
                        r.method,
                        r.path,
                        if r.replayed { " (idempotent replay)" } else { "" }
                    );
                }
            }
        }
    }
    eprintln!("rtos-stripe-sandbox: stopping");
    if let Some(path) = &args.url_file {
        let _ = std::fs::remove_file(path);
    }
    drop(fake);
    ExitCode::SUCCESS
}
