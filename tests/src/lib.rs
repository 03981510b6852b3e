//! Test harness: a fresh PostgreSQL database per test (cloned from a migrated template),
//! a Redis key prefix per test, the real api served on `127.0.0.1:0`, in-process or
//! process-level workers, and helpers to make tenants.

pub mod fake_stripe;
pub mod smtp;
pub mod stack;

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};

use sha2_free_hash::stable_hash;
use shared::{tenants::TenantWithKeys, Config};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

pub use workers::wait_until;

/// The admin URL of the PostgreSQL server tests create databases on.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn url_with_db(admin: &str, db: &str) -> String {
    let (base, _) = admin.rsplit_once('/').expect("admin url has a database");
    format!("{base}/{db}")
}

mod sha2_free_hash {
    /// FNV-1a: a stable name for the template of the current migrations.
    pub fn stable_hash(data: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in data {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h
    }
}

/// Creates (once per migration set) a migrated template database; returns its name.
async fn template() -> String {
    let mut all = Vec::new();
    for m in shared::db::MIGRATOR.iter() {
        all.extend_from_slice(m.sql.as_ref().as_bytes());
    }
    let name = format!("rtos_tmpl_{:016x}", stable_hash(&all));
    let mut conn = PgConnection::connect(&admin_url())
        .await
        .expect("connect to PostgreSQL");
    // Serialise template creation across parallel test processes.
    sqlx::query("SELECT pg_advisory_lock(727272)")
        .execute(&mut conn)
        .await
        .unwrap();
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    if exists.is_none() {
        let tmp = format!("{name}_build");
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {tmp} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {tmp}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let pool = PgPool::connect(&url_with_db(&admin_url(), &tmp))
            .await
            .unwrap();
        shared::db::migrate(&pool).await.expect("migrations apply");
        pool.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {tmp} RENAME TO {name}"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query("SELECT pg_advisory_unlock(727272)")
        .execute(&mut conn)
        .await
        .unwrap();
    name
}

/// A fresh migrated database; returns its URL.
pub async fn fresh_database() -> String {
    let tmpl = template().await;
    let name = format!("rtos_test_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
    // CREATE DATABASE ... TEMPLATE fails while another session uses the template; retry.
    for attempt in 0..50 {
        match sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {tmpl}"
        )))
        .execute(&mut conn)
        .await
        {
            Ok(_) => break,
            Err(e) if attempt < 49 && e.to_string().contains("being accessed") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create test database: {e}"),
        }
    }
    url_with_db(&admin_url(), &name)
}

/// Path of one of this package's binaries (cargo builds them before integration tests run;
/// test executables live in `target/<profile>/deps/`).
pub fn bin_path(name: &str) -> String {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join(name).to_string_lossy().into_owned()
}

/// Environment of one test stack (database, Redis prefix, fast test timings).
#[derive(Clone, Debug)]
pub struct Env {
    pub vars: HashMap<String, String>,
}

impl Env {
    pub async fn new() -> Self {
        let db = fresh_database().await;
        let prefix = format!("rtos_test:{}:", Uuid::new_v4().simple());
        let mut vars = HashMap::new();
        for (k, v) in [
            ("DATABASE_URL", db.as_str()),
            ("REDIS_URL", &redis_url()),
            ("REDIS_PREFIX", &prefix),
            ("DATABASE_MAX_CONNECTIONS", "5"),
            ("DATABASE_MIN_CONNECTIONS", "0"),
            ("OPS_TOKEN", "test-ops-token-123"),
            ("API_ADDR", "127.0.0.1:0"),
            ("WORKER_METRICS_ADDR", "127.0.0.1:0"),
            // The production lease (renewed every 10 s): a loaded machine can stall a worker
            // for seconds, and a short lease would then hand its task to another worker and
            // run it twice. Tests that kill a worker set a short lease themselves
            // (`Env::short_lease`).
            ("JOB_LEASE_SECS", "30"),
            ("SHUTDOWN_TIMEOUT_SECS", "5"),
            ("RECONCILE_INTERVAL_SECS", "3600"),
        ] {
            vars.insert(k.to_string(), v.to_string());
        }
        Self { vars }
    }

    /// A 3 s job lease, for tests that kill a worker and wait for its tasks to come back
    /// (they assert nothing that a stalled, not dead, worker losing its lease would break).
    pub fn short_lease(&mut self) -> &mut Self {
        self.set("JOB_LEASE_SECS", "3")
    }

    pub fn set(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.vars.insert(k.to_string(), v.into());
        self
    }

    pub fn config(&self) -> Config {
        Config::from_lookup(|k| self.vars.get(k).cloned()).expect("valid test config")
    }

    pub fn database_url(&self) -> &str {
        &self.vars["DATABASE_URL"]
    }

    pub async fn pool(&self) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .connect(self.database_url())
            .await
            .expect("connect test database")
    }

    pub fn queues(&self) -> jobs::Queues {
        let c = self.config();
        jobs::Queues::new(shared::redis_conn::Redis::from_config(&c).unwrap())
    }

    pub fn job_client(&self) -> jobs::JobClient {
        jobs::JobClient::new(self.queues(), Duration::from_secs(3600))
    }

    /// A `Command` for a test binary with this environment.
    pub fn command(&self, bin: &str) -> Command {
        let mut cmd = Command::new(bin);
        cmd.envs(&self.vars)
            .env(
                "RUST_LOG",
                std::env::var("TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
        cmd
    }

    /// Starts a worker process (the real binary).
    pub fn spawn_worker_process(&self) -> Child {
        self.command(&bin_path("rtos-test-workers"))
            .env("ALLOW_FAULT_INJECTION", "1")
            .spawn()
            .expect("spawn worker process")
    }

    /// Runs `retentionos-workers <args>` to completion; returns (success, stdout).
    pub fn workers_cli(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .command(&bin_path("rtos-test-workers"))
            .args(args)
            .output()
            .expect("run workers cli");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs `retentionos-api <args>` to completion; returns (success, stdout).
    pub fn api_cli(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .command(&bin_path("rtos-test-api"))
            .args(args)
            .output()
            .expect("run api cli");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// A running api (in-process, real HTTP on loopback).
pub struct TestApp {
    pub env: Env,
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Env::new().await).await
    }

    pub async fn spawn_with(env: Env) -> Self {
        // Quiet by default; `RUST_LOG=info cargo test ...` shows the services' logs.
        shared::telemetry::init_tracing_or(shared::config::LogFormat::Compact, "warn");
        let _ = shared::telemetry::prometheus();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = api::AppState::new(env.config()).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            api::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let pool = env.pool().await;
        Self {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::builder()
                .no_gzip()
                .no_brotli()
                .build()
                .unwrap(),
            pool,
            env,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn master(&self) -> shared::crypto::MasterKey {
        shared::crypto::MasterKey::from_config(&self.env.config()).unwrap()
    }

    pub fn ops_token(&self) -> &str {
        &self.env.vars["OPS_TOKEN"]
    }

    pub async fn create_tenant(&self, name: &str) -> TenantWithKeys {
        shared::tenants::create_tenant(&self.pool, &self.master(), name)
            .await
            .unwrap()
    }

    /// Starts an in-process worker against this app's database and Redis prefix.
    pub async fn start_worker(&self) -> workers::Running {
        start_worker(&self.env).await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn start_worker(env: &Env) -> workers::Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut st = workers::WorkerState::new(env.config()).unwrap();
    st.allow_fault_injection = true;
    workers::start(st, listener).await.unwrap()
}

/// A throwaway `redis-server` on a free port (for tests that stop or wipe Redis).
pub struct ThrowawayRedis {
    pub port: u16,
    child: Option<Child>,
}

impl ThrowawayRedis {
    pub fn start() -> Self {
        let port = free_port();
        let mut r = Self { port, child: None };
        r.start_again();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port, empty (no persistence), and waits until it
    /// answers PING (a generous deadline: a loaded machine can take seconds to start it).
    pub fn start_again(&mut self) {
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "throwaway redis on port {} exited at start ({status}): port taken?",
                    self.port
                );
            }
            if redis_answers_ping(self.port) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "throwaway redis on port {} did not answer PING within 60 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free loopback port for a server a test starts (and may restart on the same port).
///
/// Not `bind(0)`: the kernel hands those out of the ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768–60999 here), the same range it takes the local
/// port of every outgoing connection from, so between "picked" and "the server binds it" (or
/// between a server's stop and its restart) a client socket of another test could take it.
/// Ports here come from 20000–31999, below that range, in an order private to this process
/// (a counter from a pid-derived start), and each is checked free before it is returned; two
/// tests of one process never get the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(std::process::id().wrapping_mul(7_919) % SPAN));
    for _ in 0..SPAN {
        let port = (FIRST + next.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        let bindable = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        // Nothing listening on another address family/interface either.
        if bindable && std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN);
}

/// True when a Redis server on the loopback port answers `PING` with `+PONG`.
fn redis_answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 7];
    c.write_all(b"PING\r\n").is_ok() && c.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// `kill -9`.
pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGTERM, then wait for the exit status.
pub fn sigterm(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    send_sigterm(child);
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// SIGTERM without waiting for the exit; true when the signal was sent.
pub fn send_sigterm(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Scalar helper.
pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await.unwrap();
    n
}

/// A throwaway PostgreSQL server (initdb + pg_ctl from the installed packages) on a free
/// port, for tests that stop the database. Runs as the `postgres` user when started as root.
pub struct ThrowawayPostgres {
    pub port: u16,
    dir: std::path::PathBuf,
}

impl ThrowawayPostgres {
    fn bin(name: &str) -> String {
        let root = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server packages are installed")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .max()
            .expect("a PostgreSQL version directory");
        root.join("bin").join(name).to_string_lossy().into_owned()
    }

    fn run(args: &[&str]) -> std::process::Output {
        let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
            || Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout.starts_with(b"0"))
                .unwrap_or(false);
        let mut cmd = if is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c.args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        cmd.stdin(Stdio::null())
            .output()
            .expect("run a PostgreSQL tool")
    }

    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("rtos-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown")
            .args(["postgres:postgres", &dir.to_string_lossy()])
            .status();
        let data = dir.join("data").to_string_lossy().into_owned();
        let out = Self::run(&[
            &Self::bin("initdb"),
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Self { port, dir };
        pg.start_again();
        pg
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn start_again(&self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let log = self.dir.join("log").to_string_lossy().into_owned();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.to_string_lossy()
        );
        let out = Self::run(&[
            &Self::bin("pg_ctl"),
            "-D",
            &data,
            "-l",
            &log,
            "-o",
            &opts,
            "-w",
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let _ = Self::run(&[
            &Self::bin("pg_ctl"),
            "-D",
            &data,
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
