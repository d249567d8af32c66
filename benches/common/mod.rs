//! Helpers shared by the process-level benchmarks (`e2e`, `scale`): the release binary cargo built
//! for the bench, child processes measured with getrusage, the simulator as a process, database
//! size, medians and flags.
//!
//! A measured child is started through this very bench binary acting as a tiny wrapper (see
//! [`run_as_wrapper_if_asked`]): the wrapper's only child is the measured process, so its
//! `getrusage(RUSAGE_CHILDREN)` right after the wait is exactly that process's CPU time and peak
//! RSS, untouched by the simulator or by earlier runs. Nothing here needs `/usr/bin/time`.

// Each bench uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use douyin_watch::simulator::SimulatorStats;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

/// The release binary cargo built for this bench.
pub const BIN: &str = env!("CARGO_BIN_EXE_douyin-watch");

/// The first argument that makes a bench binary act as the measuring wrapper.
const WRAPPER_ARG: &str = "__measure-child";

/// If this process was started as the measuring wrapper, runs the child, writes its rusage and
/// exits with its code; otherwise returns at once. Call it first thing in `main`.
pub fn run_as_wrapper_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(WRAPPER_ARG) {
        return;
    }
    let out = &args[2];
    let status = Command::new(&args[3])
        .args(&args[4..])
        .status()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args[3]));
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() * 1_000_000 + t.tv_usec();
    let line = format!(
        "{} {} {} {}\n",
        micros(usage.user_time()),
        micros(usage.system_time()),
        usage.max_rss(),
        status.code().unwrap_or(-1)
    );
    std::fs::write(out, line).expect("write rusage");
    std::process::exit(status.code().unwrap_or(1));
}

/// What one measured process used.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub wall: Duration,
    pub user_us: i64,
    pub sys_us: i64,
    /// Peak resident set size in KiB (Linux's `ru_maxrss`).
    pub max_rss_kib: i64,
    pub code: i32,
}

impl Usage {
    pub fn cpu_us(&self) -> i64 {
        self.user_us + self.sys_us
    }
}

/// A command line for the binary under test, with a clean environment (inherited `DOUYIN_WATCH*`
/// and `RUST_LOG` removed) and output going to files in `dir`.
pub struct Cmd {
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
}

impl Cmd {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Cmd {
        Cmd {
            args: args.into_iter().map(Into::into).collect(),
            envs: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: impl ToString) -> Cmd {
        self.envs.push((key.to_owned(), value.to_string()));
        self
    }

    fn command(&self, program: &str, leading: &[String], dir: &Path, name: &str) -> Command {
        let mut command = Command::new(program);
        command.args(leading).args(&self.args);
        for (key, _) in std::env::vars() {
            if key.starts_with("DOUYIN_WATCH") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
            .stdin(Stdio::null())
            .stdout(File::create(dir.join(format!("{name}.out"))).expect("create stdout file"))
            .stderr(File::create(dir.join(format!("{name}.err"))).expect("create stderr file"));
        command
    }

    /// Runs the binary to the end, measured; panics (showing its stderr) if it fails.
    pub fn measure(&self, dir: &Path, name: &str) -> Usage {
        self.measure_program(BIN, dir, name)
    }

    /// Runs `program` (the binary under test, or this bench binary in a mode of its own) with
    /// these arguments to the end, measured; panics (showing its stderr) if it fails.
    pub fn measure_program(&self, program: &str, dir: &Path, name: &str) -> Usage {
        let usage_file = dir.join(format!("{name}.rusage"));
        let me = std::env::current_exe().expect("current exe");
        let leading = vec![
            WRAPPER_ARG.to_owned(),
            usage_file.display().to_string(),
            program.to_owned(),
        ];
        let mut command = self.command(&me.display().to_string(), &leading, dir, name);
        let started = Instant::now();
        let status = command.status().expect("start the measuring wrapper");
        let wall = started.elapsed();
        let text = std::fs::read_to_string(&usage_file).unwrap_or_default();
        let figures: Vec<i64> = text
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if !status.success() || figures.len() != 4 {
            panic!(
                "`{program} {}` failed ({status}):\n{}",
                self.args.join(" "),
                tail(&dir.join(format!("{name}.err")), 40)
            );
        }
        Usage {
            wall,
            user_us: figures[0],
            sys_us: figures[1],
            max_rss_kib: figures[2],
            code: figures[3] as i32,
        }
    }

    /// Starts the binary in the background.
    pub fn spawn(&self, dir: &Path, name: &str) -> ChildGuard {
        let child = self
            .command(BIN, &[], dir, name)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            child,
            stderr: dir.join(format!("{name}.err")),
        }
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A background child, stopped (SIGTERM, then SIGKILL) and reaped when dropped.
pub struct ChildGuard {
    child: Child,
    stderr: PathBuf,
}

impl ChildGuard {
    /// Asks the process to stop (SIGTERM) and waits up to `limit`, then kills it.
    pub fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr, 20)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The simulator as its own process.
pub struct SimulatorProcess {
    pub port: u16,
    guard: ChildGuard,
}

impl SimulatorProcess {
    /// Starts `douyin-watch simulate` on a free loopback port with these extra flags, and waits
    /// until it accepts connections.
    pub fn start(dir: &Path, extra: &[String]) -> SimulatorProcess {
        let port = free_port();
        let mut args = vec![
            "simulate".to_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            // The benches make far more than the default 10,000 calls a day.
            "--daily-max".to_owned(),
            "1000000000".to_owned(),
        ];
        args.extend(extra.iter().cloned());
        let mut guard = Cmd::new(args)
            .env("DOUYIN_WATCH__LOG__LEVEL", "warn")
            .spawn(dir, "simulator");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                guard.stop(Duration::from_secs(1));
                panic!(
                    "the simulator did not start listening:\n{}",
                    guard.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        SimulatorProcess { port, guard }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /_sim/stats`.
    pub fn stats(&self) -> SimulatorStats {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the simulator");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set timeout");
        write!(
            stream,
            "GET /_sim/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .expect("send the stats request");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read the stats");
        let answer = String::from_utf8_lossy(&answer);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {body}"))
    }

    /// Stops it (SIGTERM) and reaps it.
    pub fn stop(mut self) {
        self.guard.stop(Duration::from_secs(10));
    }
}

/// The environment `fetch` needs to call the simulator.
pub fn api_env(cmd: Cmd, base_url: &str, concurrency: usize) -> Cmd {
    cmd.env("DOUYIN_WATCH__API__BASE_URL", base_url)
        .env("DOUYIN_WATCH__API__KEY", "bench-key")
        .env("DOUYIN_WATCH__API__SECRET", "bench-secret-not-real")
        .env("DOUYIN_WATCH__API__CONCURRENCY", concurrency)
        .env("DOUYIN_WATCH__API__RATE_PER_SEC", 1_000_000)
}

/// `count` distinct 19-digit ids, one per line.
pub fn write_ids(path: &Path, count: usize) {
    let mut text = String::with_capacity(count * 20);
    for i in 0..count {
        text.push_str(&format!("{}\n", video_id(i)));
    }
    std::fs::write(path, text).expect("write the id file");
}

/// The `i`th benchmark video id (19 digits, like real ones).
pub fn video_id(i: usize) -> String {
    format!("72{:017}", i + 1)
}

/// A current-thread Tokio runtime for the few async calls the benches make.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// Opens the database file directly (no migrations, default pragmas, like a user's sqlite3).
pub async fn connect(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .expect("database URL")
        .connect()
        .await
        .expect("open the database")
}

/// Space the database's content takes, after folding the WAL in: used pages × page size.
pub fn database_bytes(path: &Path) -> i64 {
    runtime().block_on(async {
        let mut conn = connect(path).await;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .expect("checkpoint");
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut conn)
            .await
            .expect("page_count");
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&mut conn)
            .await
            .expect("freelist_count");
        let size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut conn)
            .await
            .expect("page_size");
        conn.close().await.expect("close");
        (pages - free) * size
    })
}

/// Bytes of pages per table and index (SQLite's `dbstat`), or empty where it is not compiled in.
pub fn bytes_by_object(path: &Path) -> BTreeMap<String, i64> {
    runtime().block_on(async {
        let mut conn = connect(path).await;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
        let _ = conn.close().await;
        rows.into_iter().collect()
    })
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `--name VALUE` flags (and `--name=VALUE`) and `--switch` flags. The `--bench` cargo adds is
/// ignored, and so is a bare word (a cargo bench name filter); unknown flags are refused with the
/// usage text.
pub struct Flags {
    values: BTreeMap<String, String>,
}

impl Flags {
    /// Parses the process arguments against `known` flag names and `switches` (without `--`).
    pub fn parse(known: &[&str], switches: &[&str], usage: &str) -> Flags {
        let mut values = BTreeMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--bench" || arg == "--nocapture" {
                continue;
            }
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(name) = arg.strip_prefix("--") else {
                // A cargo bench name filter: nothing to filter here.
                continue;
            };
            if switches.contains(&name) {
                values.insert(name.to_owned(), "true".to_owned());
                continue;
            }
            let (name, value) = match name.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => (
                    name.to_owned(),
                    args.next().unwrap_or_else(|| {
                        eprintln!("--{name} needs a value\n\n{usage}");
                        std::process::exit(2)
                    }),
                ),
            };
            if !known.contains(&name.as_str()) {
                eprintln!("unknown flag --{name}\n\n{usage}");
                std::process::exit(2);
            }
            values.insert(name, value);
        }
        Flags { values }
    }

    /// The value of `--name`, or `default`.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(text) => text.parse().unwrap_or_else(|_| {
                eprintln!("--{name}: cannot read {text:?}");
                std::process::exit(2)
            }),
        }
    }
}

/// Facts about the machine for the results: cores and CPU model.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}
