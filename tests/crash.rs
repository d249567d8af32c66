//! "A kill at any instant loses nothing": `douyin-watch fetch` is SIGKILLed again and again at
//! seeded pseudo-random instants in the middle of passes against the simulator process, then one
//! pass runs to its end, and the database must be whole: every fetch's rows were written in one
//! transaction, so a kill leaves either all of them or none.
//!
//! Self-contained on purpose (no `tests/support`): the helpers below are small copies.
//! `DOUYIN_WATCH_SKIP_SLOW_TESTS=1` skips it.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Connection, FromRow};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_douyin-watch");

/// Videos on the watch list: enough that one pass (16 in flight, ~125 ms an answer) takes
/// seconds, so every kill lands in the middle of a pass.
const VIDEOS: usize = 300;

/// How many `fetch` processes are killed.
const KILLS: usize = 12;

/// `api.concurrency` of the fetches.
const CONCURRENCY: usize = 16;

/// The simulator's credentials, which the fetches must send.
const KEY: &str = "crash-key";
const SECRET: &str = "crash-secret";

/// Seed of the kill instants (and the simulator's draws), so a failure can be replayed.
const SEED: u64 = 0x00c0_ffee_d00d;

/// Upper bound for every command that is expected to finish on its own.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// True (after saying so) when the developer asked to skip the slow tests.
fn skipped(test: &str) -> bool {
    let skip = std::env::var("DOUYIN_WATCH_SKIP_SLOW_TESTS").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{test}: skipped because DOUYIN_WATCH_SKIP_SLOW_TESTS=1");
    }
    skip
}

/// `n` distinct 19-digit ids, like real ones.
fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("72{:017}", i)).collect()
}

/// A deterministic xorshift generator for the kill instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A child process that is SIGKILLed and reaped when dropped, also when the test panics.
struct ChildGuard {
    child: Child,
    name: String,
    stderr: PathBuf,
    exited: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `command` with stdout and stderr going to files in `dir`.
    fn spawn(mut command: Command, dir: &Path, name: &str) -> ChildGuard {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create the stdout file"))
            .stderr(File::create(&stderr).expect("create the stderr file"));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            child,
            name: name.to_owned(),
            stderr,
            exited: None,
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// SIGKILL (unless it already ended), then reap. Returns true if the kill hit a live process.
    fn sigkill(&mut self) -> bool {
        if self.try_wait().is_some() {
            return false;
        }
        let pid = i32::try_from(self.child.id()).expect("pid fits in i32");
        kill(Pid::from_raw(pid), Signal::SIGKILL)
            .unwrap_or_else(|e| panic!("cannot SIGKILL {}: {e}", self.name));
        self.exited = Some(self.child.wait().expect("wait after SIGKILL"));
        true
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
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

/// The program with no inherited `DOUYIN_WATCH*` or `RUST_LOG` variables.
fn program(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str()
            && (key.starts_with("DOUYIN_WATCH") || key == "RUST_LOG")
        {
            command.env_remove(key);
        }
    }
    command.current_dir(dir);
    command
}

/// The simulator as a separate process on a free port of 127.0.0.1.
struct SimProcess {
    _child: ChildGuard,
    port: u16,
}

impl SimProcess {
    fn start(dir: &Path, args: &[&str]) -> SimProcess {
        for attempt in 0..5 {
            let port = free_port();
            let mut command = program(dir);
            command
                .arg("simulate")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(args);
            let mut child = ChildGuard::spawn(command, dir, &format!("simulator{attempt}"));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && child.try_wait().is_none() {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return SimProcess {
                        _child: child,
                        port,
                    };
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            // The port was taken in between, or the start failed: try another port.
            eprintln!("the simulator did not start: {}", child.stderr());
        }
        panic!("the simulator process did not start");
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Runs a command that should end by itself (killed after [`COMMAND_TIMEOUT`]).
fn run_to_end(command: Command, stdin: &str) -> std::process::Output {
    let mut command = assert_cmd::Command::from_std(command);
    command
        .timeout(COMMAND_TIMEOUT)
        .write_stdin(stdin.to_owned());
    command.output().expect("run douyin-watch")
}

fn describe(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Read-only queries of the test database, one short connection each.
struct Db {
    path: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Db {
    fn new(path: &Path) -> Db {
        Db {
            path: path.to_path_buf(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.runtime
            .block_on(async {
                let mut connection =
                    SqliteConnectOptions::from_str(&format!("sqlite://{}", self.path.display()))?
                        .read_only(true)
                        .busy_timeout(Duration::from_secs(10))
                        .connect()
                        .await?;
                let rows = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut connection)
                    .await;
                let _ = connection.close_hard().await;
                rows
            })
            .unwrap_or_else(|e| panic!("query {sql:?} failed: {e}"))
    }

    fn count(&self, sql: &str) -> i64 {
        self.rows::<(i64,)>(sql)
            .first()
            .map(|row| row.0)
            .unwrap_or_else(|| panic!("{sql:?} returned no row"))
    }
}

#[test]
fn a_kill_at_any_instant_loses_nothing() {
    if skipped("a_kill_at_any_instant_loses_nothing") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = SEED.to_string();
    // Titles change every second charged fetch, so videos collect several versions while being
    // killed: the version numbering is under test, not just the first insert.
    let sim = SimProcess::start(
        dir.path(),
        &[
            "--key",
            KEY,
            "--secret",
            SECRET,
            "--latency",
            "100ms",
            "--latency-jitter",
            "50ms",
            "--change-every",
            "2",
            "--seed",
            &seed,
        ],
    );
    let db_path = dir.path().join("crash.db");
    let base_url = sim.base_url();
    let database_url = format!("sqlite://{}", db_path.display());
    let concurrency = CONCURRENCY.to_string();
    let env: Vec<(&str, &str)> = vec![
        ("DOUYIN_WATCH__API__BASE_URL", &base_url),
        ("DOUYIN_WATCH__API__KEY", KEY),
        ("DOUYIN_WATCH__API__SECRET", SECRET),
        ("DOUYIN_WATCH__DATABASE__URL", &database_url),
        ("DOUYIN_WATCH__API__CONCURRENCY", &concurrency),
        ("DOUYIN_WATCH__API__RATE_PER_SEC", "1000"),
        ("DOUYIN_WATCH__LOG__LEVEL", "warn"),
    ];
    let command = |args: &[&str]| {
        let mut command = program(dir.path());
        command.args(args).envs(env.iter().copied());
        command
    };

    let watched = ids(VIDEOS);
    let added = run_to_end(
        command(&["watch", "add", "--file", "-"]),
        &(watched.join("\n") + "\n"),
    );
    assert!(added.status.success(), "watch add: {}", describe(&added));

    let mut rng = Rng(SEED);
    let mut kills = 0;
    for round in 1..=KILLS {
        let mut fetch =
            ChildGuard::spawn(command(&["fetch"]), dir.path(), &format!("fetch{round}"));
        std::thread::sleep(Duration::from_millis(rng.between(100, 700)));
        if fetch.sigkill() {
            kills += 1;
        } else {
            // A pass takes seconds, so this should not happen; if it does, it must have succeeded.
            let status = fetch.try_wait().expect("ended");
            assert!(
                status.success(),
                "fetch {round} failed before the kill ({status}): {}",
                fetch.stderr()
            );
        }
    }
    assert!(
        kills >= 10,
        "only {kills} of {KILLS} fetches were still running when killed"
    );

    let last = run_to_end(command(&["fetch"]), "");
    assert!(
        last.status.success(),
        "the fetch after the kills: {}",
        describe(&last)
    );

    let db = Db::new(&db_path);

    // The kills really happened mid-pass: passes were left open, with fetches stored in them.
    let open_passes = db.count("SELECT COUNT(*) FROM passes WHERE finished_at IS NULL");
    let fetches_in_open_passes = db.count(
        "SELECT COUNT(*) FROM fetches WHERE pass_id IN \
         (SELECT id FROM passes WHERE finished_at IS NULL)",
    );
    eprintln!(
        "{kills} kills; {open_passes} passes left open with {fetches_in_open_passes} fetches; \
         {} fetches, {} snapshots (newest version {}) in all",
        db.count("SELECT COUNT(*) FROM fetches"),
        db.count("SELECT COUNT(*) FROM snapshots"),
        db.count("SELECT COALESCE(MAX(version), 0) FROM snapshots"),
    );
    assert!(
        open_passes >= 1 && fetches_in_open_passes >= 1,
        "no kill interrupted a pass that had stored fetches \
         ({open_passes} open passes, {fetches_in_open_passes} fetches in them)"
    );
    let last_pass: Vec<(Option<String>, i64, i64)> =
        db.rows("SELECT finished_at, videos, fetched_ok FROM passes ORDER BY id DESC LIMIT 1");
    assert!(
        matches!(last_pass.as_slice(), [(Some(_), v, ok)] if *v == VIDEOS as i64 && *ok == VIDEOS as i64),
        "the final pass did not fetch every video: {last_pass:?}"
    );

    let integrity: Vec<(String,)> = db.rows("PRAGMA integrity_check");
    assert_eq!(
        integrity,
        vec![("ok".to_owned(),)],
        "PRAGMA integrity_check"
    );
    let foreign_keys: Vec<(String, Option<i64>, String, i64)> = db.rows("PRAGMA foreign_key_check");
    assert!(
        foreign_keys.is_empty(),
        "foreign key violations: {foreign_keys:?}"
    );

    let broken_versions: Vec<(String, i64, i64, i64, i64)> = db.rows(
        "SELECT video_id, COUNT(*), COUNT(DISTINCT version), MIN(version), MAX(version) \
         FROM snapshots GROUP BY video_id \
         HAVING MIN(version) != 1 OR MAX(version) != COUNT(*) OR COUNT(DISTINCT version) != COUNT(*)",
    );
    assert!(
        broken_versions.is_empty(),
        "versions not exactly 1..n (video, count, distinct, min, max): {broken_versions:?}"
    );
    assert!(
        db.count("SELECT COUNT(*) FROM snapshots WHERE version > 1") > 0,
        "no video got a second version, so versioning was not exercised"
    );

    let ok_without_snapshot: Vec<(i64, String, Option<i64>)> = db.rows(
        "SELECT f.id, f.video_id, f.snapshot_id FROM fetches AS f \
         LEFT JOIN snapshots AS s ON s.id = f.snapshot_id \
         WHERE f.outcome = 'ok' AND (f.snapshot_id IS NULL OR s.id IS NULL OR s.video_id != f.video_id)",
    );
    assert!(
        ok_without_snapshot.is_empty(),
        "ok fetches without their snapshot (fetch, video, snapshot_id): {ok_without_snapshot:?}"
    );

    assert_eq!(
        db.count("SELECT COUNT(*) FROM fetches WHERE finished_at IS NULL OR finished_at = ''"),
        0,
        "fetches without finished_at"
    );

    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM quota_samples AS q LEFT JOIN fetches AS f ON f.id = q.fetch_id \
             WHERE f.id IS NULL"
        ),
        0,
        "quota samples pointing at no fetch"
    );
    // The simulator puts api_info in every envelope, so each answered fetch has exactly one sample.
    let fetches_without_one_sample: Vec<(i64, i64)> = db.rows(
        "SELECT f.id, (SELECT COUNT(*) FROM quota_samples AS q WHERE q.fetch_id = f.id) AS n \
         FROM fetches AS f WHERE f.outcome = 'ok' AND n != 1",
    );
    assert!(
        fetches_without_one_sample.is_empty(),
        "ok fetches without exactly one quota sample (fetch, samples): {fetches_without_one_sample:?}"
    );

    // The snapshot's counters were written in the same transaction as the fetch that saw it.
    let inconsistent_snapshots: Vec<(i64, i64, i64, String, Option<String>)> = db.rows(
        "SELECT s.id, s.seen_count, COUNT(f.id), s.last_seen_at, MAX(f.finished_at) \
         FROM snapshots AS s LEFT JOIN fetches AS f ON f.snapshot_id = s.id \
         GROUP BY s.id \
         HAVING s.seen_count != COUNT(f.id) OR MAX(f.finished_at) IS NULL \
             OR s.last_seen_at != MAX(f.finished_at) OR s.first_seen_at != MIN(f.finished_at)",
    );
    assert!(
        inconsistent_snapshots.is_empty(),
        "snapshots whose seen_count/last_seen_at disagree with their fetches \
         (id, seen_count, fetches, last_seen_at, newest fetch): {inconsistent_snapshots:?}"
    );
    // Likewise the video row: its last fetch is the newest fetch stored for it.
    let inconsistent_videos: Vec<(String, Option<String>, Option<String>)> = db.rows(
        "SELECT v.video_id, v.last_fetched_at, \
                (SELECT MAX(f.finished_at) FROM fetches AS f WHERE f.video_id = v.video_id) AS newest \
         FROM videos AS v WHERE v.last_fetched_at IS NOT newest",
    );
    assert!(
        inconsistent_videos.is_empty(),
        "videos whose last_fetched_at is not their newest fetch: {inconsistent_videos:?}"
    );

    assert_eq!(
        db.count("SELECT COUNT(*) FROM videos WHERE active = 1"),
        VIDEOS as i64,
        "watched videos"
    );
    let without_snapshot: Vec<(String,)> = db.rows(
        "SELECT video_id FROM videos AS v \
         WHERE NOT EXISTS (SELECT 1 FROM snapshots AS s WHERE s.video_id = v.video_id)",
    );
    assert!(
        without_snapshot.is_empty(),
        "watched videos without any snapshot: {without_snapshot:?}"
    );
}
