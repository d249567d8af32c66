//! Shared helpers of the integration tests.
//!
//! For the process-level tests: a scratch environment with its own SQLite file, child processes
//! that are always killed, the onebound simulator (as a process or in-process), read-only queries
//! of the test database and bounded polling. Every program run gets a clean environment: inherited
//! `DOUYIN_WATCH*` and `RUST_LOG` variables are removed, and only 127.0.0.1 is ever contacted.
//!
//! For the tests that drive `Collector::run_pass` in the test's own runtime: [`PassHarness`], the
//! simulator plus a fresh database and the settings that join them, with read-only queries.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use douyin_watch::client::ApiClient;
use douyin_watch::collector::{Collector, PassError, PassOptions, PassReport, Trigger};
use douyin_watch::settings::Settings;
use douyin_watch::simulator::{Simulator, SimulatorConfig, SimulatorStats};
use douyin_watch::store::Store;
use douyin_watch::video_id::VideoId;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, FromRow, SqliteConnection, SqlitePool};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_douyin-watch");

/// How long any one short command may take before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// `n` distinct ids used across the tests (19 digits like real ones): 73 followed by 1, 2, ...
pub fn ids(n: usize) -> Vec<String> {
    ids_starting(73, n)
}

/// `n` distinct 19-digit ids: the two digits `prefix`, then 1, 2, ... written with 17 digits.
pub fn ids_starting(prefix: u8, n: usize) -> Vec<String> {
    assert!((10..=99).contains(&prefix), "two digits: {prefix}");
    (1..=n).map(|i| format!("{prefix}{i:017}")).collect()
}

/// True (after saying so) when the developer asked to skip the slow tests with
/// `DOUYIN_WATCH_SKIP_SLOW_TESTS=1`.
pub fn skip_slow_test(test: &str) -> bool {
    let skip = std::env::var("DOUYIN_WATCH_SKIP_SLOW_TESTS").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{test}: skipped because DOUYIN_WATCH_SKIP_SLOW_TESTS=1");
    }
    skip
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
pub fn poll_until<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) until something accepts connections on `port`.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A child process that is killed (SIGKILL) and reaped when dropped, also when a test panics.
pub struct ChildGuard {
    child: Child,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
    exited: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `command` with stdout and stderr written to `<dir>/<name>.out` and `<name>.err`.
    pub fn spawn(mut command: Command, dir: &Path, name: &str) -> ChildGuard {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout file"))
            .stderr(File::create(&stderr).expect("create stderr file"));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            child,
            name: name.to_owned(),
            stdout,
            stderr,
            exited: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in i32");
        kill(Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to {}: {e}", self.name));
    }

    /// The exit status if the process has ended by now.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// Waits at most `limit` for the process to end.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL unless the process has ended already, then reap; true if the kill hit a live
    /// process.
    pub fn kill_if_running(&mut self) -> bool {
        if self.try_wait().is_some() {
            return false;
        }
        self.signal(Signal::SIGKILL);
        self.exited = Some(self.child.wait().expect("wait after SIGKILL"));
        true
    }

    /// SIGKILL, then reap.
    pub fn kill_now(&mut self) -> ExitStatus {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.exited = Some(self.child.wait().expect("wait after kill"));
        }
        self.exited.expect("exited")
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The last `lines` lines of what the process wrote to stderr so far.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = self.stderr();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes inherited settings so that only what a test sets reaches the program.
fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str()
            && (key.starts_with("DOUYIN_WATCH") || key == "RUST_LOG")
        {
            command.env_remove(key);
        }
    }
}

/// The simulator as a separate process (`douyin-watch simulate --listen 127.0.0.1:PORT ...`).
pub struct SimProcess {
    child: ChildGuard,
    port: u16,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    _dir: TempDir,
}

impl SimProcess {
    /// Starts the simulator with extra flags and waits until it accepts connections.
    pub fn start(args: &[&str]) -> SimProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            let mut command = Command::new(BIN);
            clean_env(&mut command);
            command
                .current_dir(dir.path())
                .arg("simulate")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(args);
            let mut child = ChildGuard::spawn(command, dir.path(), "simulator");
            // Generous: a debug build on a busy machine can take seconds to start listening.
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut up = false;
            while Instant::now() < deadline {
                if child.try_wait().is_some() {
                    break;
                }
                if wait_for_port(port, Duration::from_millis(100)) {
                    up = true;
                    break;
                }
            }
            if up {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                return SimProcess {
                    child,
                    port,
                    runtime,
                    http: reqwest::Client::new(),
                    _dir: dir,
                };
            }
            // The port was taken between picking and binding, or the start failed: try another.
            eprintln!("simulator did not start: {}", child.stderr());
        }
        panic!("the simulator process did not start");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /_sim/stats`.
    pub fn stats(&self) -> SimulatorStats {
        let url = format!("{}/_sim/stats", self.base_url());
        self.runtime.block_on(async {
            let response = self
                .http
                .get(url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("GET /_sim/stats");
            assert!(
                response.status().is_success(),
                "stats: {}",
                response.status()
            );
            response.json().await.expect("stats JSON")
        })
    }

    /// `POST /_sim/today`.
    pub fn set_today(&self, today: u64) {
        self.post("today", serde_json::json!({ "today": today }));
    }

    /// `POST /_sim/script`.
    pub fn script(&self, item_id: &str, answers: serde_json::Value) {
        self.post(
            "script",
            serde_json::json!({ "item_id": item_id, "answers": answers }),
        );
    }

    fn post(&self, endpoint: &str, body: serde_json::Value) {
        let url = format!("{}/_sim/{endpoint}", self.base_url());
        self.runtime.block_on(async {
            let response = self
                .http
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("POST to the simulator");
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            assert!(
                status.is_success(),
                "POST /_sim/{endpoint}: {status} {text}"
            );
        });
    }

    /// The simulator's log so far.
    pub fn log(&self) -> String {
        self.child.stderr()
    }
}

/// The simulator inside the test process, on a runtime of its own.
pub struct InProcessSim {
    simulator: Option<Simulator>,
    runtime: tokio::runtime::Runtime,
}

impl InProcessSim {
    /// Starts it on a free port of 127.0.0.1.
    pub fn start(config: SimulatorConfig) -> InProcessSim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let addr = "127.0.0.1:0".parse().expect("addr");
        let simulator = runtime
            .block_on(Simulator::start(addr, config))
            .expect("start the simulator");
        InProcessSim {
            simulator: Some(simulator),
            runtime,
        }
    }

    fn simulator(&self) -> &Simulator {
        self.simulator.as_ref().expect("running")
    }

    /// The base URL to configure the client with.
    pub fn base_url(&self) -> String {
        self.simulator().base_url()
    }

    /// Its counters.
    pub fn stats(&self) -> SimulatorStats {
        self.simulator().stats()
    }

    /// Sets today's charged-call counter.
    pub fn set_today(&self, today: u64) {
        self.simulator().set_today(today);
    }
}

impl Drop for InProcessSim {
    fn drop(&mut self) {
        let _guard = self.runtime.enter();
        drop(self.simulator.take());
    }
}

/// A scratch directory with the test database and the settings the program gets.
pub struct TestEnv {
    pub dir: TempDir,
    vars: Vec<(String, String)>,
    runs: std::cell::Cell<u32>,
}

impl TestEnv {
    /// A fresh environment: database in a tempdir, API at a closed port, fast retries.
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("t.db");
        let mut env = TestEnv {
            dir,
            vars: Vec::new(),
            runs: std::cell::Cell::new(0),
        };
        env.set("DATABASE__URL", &format!("sqlite://{}", db.display()));
        env.set("API__KEY", "test-key");
        env.set("API__SECRET", "test-secret");
        env.set("API__RATE_PER_SEC", "100");
        env.set("RETRY__BASE_DELAY", "50ms");
        env.set("RETRY__MAX_DELAY", "200ms");
        env
    }

    /// Sets `DOUYIN_WATCH__<key>`.
    pub fn set(&mut self, key: &str, value: &str) -> &mut TestEnv {
        let name = format!("DOUYIN_WATCH__{key}");
        self.vars.retain(|(k, _)| *k != name);
        self.vars.push((name, value.to_owned()));
        self
    }

    /// Sets an environment variable by its full name (not a setting).
    pub fn set_var(&mut self, name: &str, value: &str) -> &mut TestEnv {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes `DOUYIN_WATCH__<key>` (the compiled-in default applies).
    pub fn unset(&mut self, key: &str) -> &mut TestEnv {
        let name = format!("DOUYIN_WATCH__{key}");
        self.vars.retain(|(k, _)| *k != name);
        self
    }

    /// The SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("t.db")
    }

    /// The program with this environment, as a std command.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        clean_env(&mut command);
        command.current_dir(self.dir.path()).args(args);
        for (key, value) in &self.vars {
            command.env(key, value);
        }
        command
    }

    /// The program with this environment, for a short run (killed after a minute).
    pub fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::from_std(self.command(args));
        command.timeout(COMMAND_TIMEOUT);
        command
    }

    /// Runs a short command to its end.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run douyin-watch"))
    }

    /// Runs a short command with `stdin`.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        Run::from(
            self.cmd(args)
                .write_stdin(stdin.to_owned())
                .output()
                .expect("run douyin-watch"),
        )
    }

    /// Starts a long-running command (the daemon); killed when the guard drops.
    pub fn spawn(&self, args: &[&str]) -> ChildGuard {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        ChildGuard::spawn(self.command(args), self.dir.path(), &format!("run{n}"))
    }

    /// Adds ids to the watch list, asserting success.
    pub fn watch(&self, ids: &[String]) {
        let mut args = vec!["watch", "add"];
        args.extend(ids.iter().map(String::as_str));
        let run = self.run(&args);
        assert_eq!(run.code, Some(0), "watch add failed: {run:?}");
    }

    /// Read-only queries of the database.
    pub fn db(&self) -> Db {
        Db::new(&self.db_path())
    }
}

/// What a finished command did.
#[derive(Clone)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Read-only access to the test database (one short connection per query).
pub struct Db {
    path: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Db {
    /// Read-only queries of the SQLite file at `path`.
    pub fn new(path: &Path) -> Db {
        Db {
            path: path.to_path_buf(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    async fn connect(&self) -> Result<SqliteConnection, sqlx::Error> {
        SqliteConnectOptions::from_str(&format!("sqlite://{}", self.path.display()))?
            .read_only(true)
            .busy_timeout(Duration::from_secs(10))
            .connect()
            .await
    }

    /// Every row of `sql`, or the error (e.g. the database does not exist yet).
    pub fn try_rows<T>(&self, sql: &str) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.runtime.block_on(async {
            let mut connection = self.connect().await?;
            let rows = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_all(&mut connection)
                .await;
            let _ = sqlx::Connection::close(connection).await;
            rows
        })
    }

    /// Every row of `sql`.
    pub fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.try_rows(sql)
            .unwrap_or_else(|e| panic!("query {sql:?} failed: {e}"))
    }

    /// A single integer (`SELECT COUNT(*) ...`).
    pub fn count(&self, sql: &str) -> i64 {
        self.rows::<(i64,)>(sql)
            .first()
            .map(|row| row.0)
            .unwrap_or_else(|| panic!("{sql:?} returned no row"))
    }

    /// Like [`Db::count`], but 0 while the database or its tables do not exist yet.
    pub fn count_or_zero(&self, sql: &str) -> i64 {
        self.try_rows::<(i64,)>(sql)
            .ok()
            .and_then(|rows| rows.first().map(|row| row.0))
            .unwrap_or(0)
    }
}

/// The API key a [`PassHarness`] configures, in its simulator and in its settings.
pub const API_KEY: &str = "test-key";

/// The API secret a [`PassHarness`] configures: a canary that tests search the database, messages
/// and webhook bodies for.
pub const API_SECRET: &str = "SECRET-canary-7f3a9";

/// The item of `tests/fixtures/item_get_video.ok.json`, a real `0000` answer.
pub fn fixture_item() -> serde_json::Value {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/item_get_video.ok.json")).expect("fixture");
    fixture["item"].clone()
}

/// [`fixture_item`] with `num_iid` set to `id`.
pub fn fixture_item_for(id: &str) -> serde_json::Value {
    let mut item = fixture_item();
    item["num_iid"] = serde_json::json!(id);
    item
}

/// One column of a row, decoded as `T`; panics with the column's name if that fails.
pub fn column<T>(row: &SqliteRow, name: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    sqlx::Row::try_get(row, name).unwrap_or_else(|e| panic!("column {name}: {e}"))
}

/// Runs one `fetch` pass over every active video, as `douyin-watch fetch` does.
pub async fn run_full_pass(collector: &Collector) -> Result<PassReport, PassError> {
    collector
        .run_pass(Trigger::Fetch, None, &CancellationToken::new())
        .await
}

/// Runs one full pass that must succeed; fails the test with `stalled` if it takes longer than
/// `limit`.
pub async fn run_full_pass_within(
    collector: &Collector,
    limit: Duration,
    stalled: &str,
) -> PassReport {
    tokio::time::timeout(limit, run_full_pass(collector))
        .await
        .unwrap_or_else(|_| panic!("{stalled}"))
        .expect("pass runs")
}

/// How a [`PassHarness`] starts: the simulator's configuration and settings of its own.
pub struct PassHarnessBuilder {
    simulator: SimulatorConfig,
    settings: Vec<(String, String)>,
}

impl PassHarnessBuilder {
    /// Sets `DOUYIN_WATCH__<key>`; a later value for the same key replaces an earlier one.
    pub fn set(mut self, key: &str, value: &str) -> PassHarnessBuilder {
        // A doubled prefix would be ignored by the settings loader, silently.
        assert!(
            !key.starts_with("DOUYIN_WATCH"),
            "{key}: give the key without the DOUYIN_WATCH__ prefix"
        );
        let name = format!("DOUYIN_WATCH__{key}");
        self.settings.retain(|(k, _)| *k != name);
        self.settings.push((name, value.to_owned()));
        self
    }

    /// Retries 10 ms apart at first and at most 50 ms apart, so that a test's retries take no
    /// time (`retry.base_delay`, `retry.max_delay`).
    pub fn fast_retries(self) -> PassHarnessBuilder {
        self.set("RETRY__BASE_DELAY", "10ms")
            .set("RETRY__MAX_DELAY", "50ms")
    }

    /// [`PassHarnessBuilder::set`] for each pair, in order.
    pub fn set_all(self, settings: &[(&str, &str)]) -> PassHarnessBuilder {
        settings
            .iter()
            .fold(self, |builder, (key, value)| builder.set(key, value))
    }

    /// Starts the simulator on a free port of 127.0.0.1 (accepting only [`API_KEY`] and
    /// [`API_SECRET`]), loads the settings and opens the store on a fresh SQLite file.
    pub async fn start(self) -> PassHarness {
        let simulator = Simulator::start(
            "127.0.0.1:0".parse().expect("address"),
            SimulatorConfig {
                key: Some(API_KEY.to_owned()),
                secret: Some(API_SECRET.to_owned()),
                ..self.simulator
            },
        )
        .await
        .expect("simulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(PassHarness::DB_FILE);
        let mut environment: HashMap<String, String> = HashMap::from([
            (
                "DOUYIN_WATCH__DATABASE__URL".to_owned(),
                format!("sqlite://{}", db.display()),
            ),
            (
                "DOUYIN_WATCH__API__BASE_URL".to_owned(),
                simulator.base_url(),
            ),
            ("DOUYIN_WATCH__API__KEY".to_owned(), API_KEY.to_owned()),
            (
                "DOUYIN_WATCH__API__SECRET".to_owned(),
                API_SECRET.to_owned(),
            ),
            (
                "DOUYIN_WATCH__API__RATE_PER_SEC".to_owned(),
                "1000".to_owned(),
            ),
        ]);
        environment.extend(self.settings);
        let settings = Settings::load_from(None, environment).expect("valid settings");
        let store = Store::open(settings.database_options().expect("url"))
            .await
            .expect("store opens");
        PassHarness {
            dir,
            simulator,
            settings,
            store,
        }
    }
}

/// The simulator in the test's own runtime, a fresh SQLite file with the store open on it, and
/// the settings that point the client at the simulator (`api.rate_per_sec` 1000, otherwise the
/// defaults and what the builder set). Passes are driven directly, without cron.
pub struct PassHarness {
    /// The folder of the database file.
    pub dir: TempDir,
    /// The onebound simulator the client calls.
    pub simulator: Simulator,
    /// The settings loaded from the harness's environment.
    pub settings: Settings,
    /// The store, open on [`PassHarness::db_path`].
    pub store: Store,
}

impl PassHarness {
    /// The database's file name inside [`PassHarness::dir`].
    pub const DB_FILE: &str = "test.db";

    /// A builder for a harness whose simulator runs with `simulator` (credentials filled in).
    pub fn builder(simulator: SimulatorConfig) -> PassHarnessBuilder {
        PassHarnessBuilder {
            simulator,
            settings: Vec::new(),
        }
    }

    /// The SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join(PassHarness::DB_FILE)
    }

    /// Connect options for the SQLite file, to open another [`Store`] or a pool on it.
    pub fn connect_options(&self) -> SqliteConnectOptions {
        SqliteConnectOptions::new().filename(self.db_path())
    }

    /// A collector on the harness's store, configured by its settings.
    pub fn collector(&self) -> Collector {
        self.collector_on(self.store.clone())
    }

    /// A collector on `store`, configured by the harness's settings.
    pub fn collector_on(&self, store: Store) -> Collector {
        Collector::new(
            store,
            ApiClient::new(&self.settings.api).expect("client"),
            PassOptions::from_settings(&self.settings),
        )
    }

    /// Adds `ids` to the watch list.
    pub async fn watch<S: AsRef<str>>(&self, ids: &[S]) {
        let ids: Vec<VideoId> = ids
            .iter()
            .map(|id| id.as_ref().parse().expect("id"))
            .collect();
        self.store
            .add_videos(&ids, None, chrono::Utc::now())
            .await
            .expect("add");
    }

    /// One full pass with a fresh collector, which must succeed.
    pub async fn pass(&self) -> PassReport {
        run_full_pass(&self.collector()).await.expect("pass runs")
    }

    /// A separate read-only connection, as a user's `sqlite3` would have.
    pub async fn read_only_pool(&self) -> SqlitePool {
        SqlitePool::connect_with(self.connect_options().read_only(true))
            .await
            .expect("read connection")
    }

    /// Every row of `query`, read on a separate read-only connection.
    pub async fn rows(&self, query: &'static str) -> Vec<SqliteRow> {
        sqlx::query(query)
            .fetch_all(&self.read_only_pool().await)
            .await
            .expect("query")
    }

    /// Every row of `query` with `id` bound to its one parameter.
    pub async fn rows_for(&self, query: &'static str, id: &str) -> Vec<SqliteRow> {
        sqlx::query(query)
            .bind(id)
            .fetch_all(&self.read_only_pool().await)
            .await
            .expect("query")
    }

    /// The single integer `query` returns (`SELECT COUNT(*) ...`, a `PRAGMA`).
    pub async fn scalar(&self, query: &'static str) -> i64 {
        sqlx::query_scalar(query)
            .fetch_one(&self.read_only_pool().await)
            .await
            .expect("query")
    }
}
