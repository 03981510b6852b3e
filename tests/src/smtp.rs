//! A real SMTP server for mail tests: Python's aiosmtpd (`smtp_sink.py`, next to this file)
//! on a free loopback port, recording every message it accepts as one JSON file in a
//! private temp directory. Never port 25, never a shared server: each [`ThrowawaySmtp`] is
//! its own process, killed (and its directory removed) on drop.
//!
//! aiosmtpd comes from `scripts/test`; when it is missing anyway (a bare `cargo test`),
//! [`ThrowawaySmtp::start`] installs it with pip once per test process.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde::Deserialize;

/// The PyPI release the sink is written against (Debian's python3-aiosmtpd 1.4.3 works too).
pub const AIOSMTPD_REQUIREMENT: &str = "aiosmtpd==1.4.6";

const SINK_SCRIPT: &str = include_str!("smtp_sink.py");

/// One message as the server received it: the SMTP envelope plus the decoded headers and
/// text/plain body (line endings LF).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Received {
    /// Envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// Envelope recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// Decoded `From` header, e.g. `RetentionOS <no-reply@localhost>`.
    pub from: Option<String>,
    /// Decoded `To` header.
    pub to: Option<String>,
    pub subject: Option<String>,
    /// `Message-ID` header, angle brackets included.
    pub message_id: Option<String>,
    /// The decoded text/plain body; `None` when the message has none.
    pub text: Option<String>,
    /// Set when the sink could not parse the message (the envelope is still recorded).
    #[serde(default)]
    pub parse_error: Option<String>,
}

/// A throwaway SMTP server (see the module docs).
pub struct ThrowawaySmtp {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl ThrowawaySmtp {
    /// Starts the server on a free port and waits until it accepts connections (a generous
    /// deadline: a loaded machine can take seconds to start Python).
    pub fn start() -> Self {
        ensure_aiosmtpd();
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("rtos-smtp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the SMTP sink directory");
        let script = dir.join("smtp_sink.py");
        std::fs::write(&script, SINK_SCRIPT).expect("write smtp_sink.py");
        let log = std::fs::File::create(dir.join("server.log")).expect("create server.log");
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("python3 is installed");
        let mut smtp = Self {
            port,
            dir,
            child: Some(child),
        };
        smtp.wait_ready();
        smtp
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = self.dir.join("ready");
        loop {
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "throwaway SMTP server on port {} exited at start ({status}):\n{}",
                    self.port,
                    self.server_log()
                );
            }
            if ready.exists() && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "throwaway SMTP server on port {} not ready within 60 s:\n{}",
                self.port,
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server printed (for failure messages).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `smtp://127.0.0.1:PORT` (plain SMTP, no credentials), for `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in arrival order. A message is recorded before the
    /// server acknowledges it, so one whose send returned Ok is always here.
    pub fn messages(&self) -> Vec<Received> {
        read_messages(&self.dir)
    }

    /// Waits until at least `n` messages have arrived and returns all of them; panics with
    /// what did arrive when `timeout` passes first.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} message(s) within {timeout:?}, got {}: {got:#?}\nserver log:\n{}",
                got.len(),
                self.server_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (its port then refuses connections); what it received stays
    /// readable through [`Self::messages`] until drop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ThrowawaySmtp {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_messages(dir: &Path) -> Vec<Received> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the SMTP sink directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("msg-") && n.ends_with(".json"))
        })
        .collect();
    // msg-NNNNNN.json: the zero-padded counter sorts in arrival order.
    names.sort();
    names
        .iter()
        .map(|p| {
            let raw = std::fs::read_to_string(p).expect("read a received message");
            serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{}: {e}: {raw}", p.display()))
        })
        .collect()
}

/// Makes `import aiosmtpd` work for `python3`, installing it with pip when needed; once
/// per process (parallel tests wait for the first).
fn ensure_aiosmtpd() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let importable = || {
            Command::new("python3")
                .args(["-c", "import aiosmtpd"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if importable() {
            return Ok(());
        }
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", AIOSMTPD_REQUIREMENT])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run python3: {e}"))?;
        if out.status.success() && importable() {
            Ok(())
        } else {
            Err(format!(
                "`python3 -m pip install --quiet {AIOSMTPD_REQUIREMENT}` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(why) = result {
        panic!(
            "the mail tests need Python's aiosmtpd for their SMTP server, and it is not \
             installed: {why}\nRun scripts/test (it installs it), or install it yourself: \
             `python3 -m pip install {AIOSMTPD_REQUIREMENT}` or `apt-get install python3-aiosmtpd`"
        );
    }
}
