//! The daemon (`douyin-watch run`) as a real process against the simulator process: cron ticks,
//! SIGTERM between and during passes, SIGKILL mid-pass, and ticks that come while a pass runs.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use support::{ChildGuard, SimProcess, TestEnv, ids, poll_until};

/// A cron expression that does not fire during a test (midnight, January 1st).
const NEVER: &str = "0 0 0 1 1 *";

fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// One `passes` row.
#[derive(Debug, sqlx::FromRow)]
struct PassRow {
    id: i64,
    finished_at: Option<String>,
    videos: i64,
    fetched_ok: i64,
    not_found: i64,
    failed: i64,
    skipped: i64,
    calls: i64,
    stopped_by: Option<String>,
}

/// `ok` fetches whose snapshot is missing.
fn ok_fetches_without_snapshot(env: &TestEnv) -> i64 {
    env.db().count(
        "SELECT COUNT(*) FROM fetches AS f LEFT JOIN snapshots AS s ON s.id = f.snapshot_id \
         WHERE f.outcome = 'ok' AND s.id IS NULL",
    )
}

/// Videos whose versions are not exactly 1..n.
fn videos_with_broken_versions(env: &TestEnv) -> Vec<(String, i64, i64, i64, i64)> {
    env.db().rows(
        "SELECT video_id, COUNT(*), COUNT(DISTINCT version), MIN(version), MAX(version) \
         FROM snapshots GROUP BY video_id \
         HAVING MIN(version) != 1 OR MAX(version) != COUNT(*) OR COUNT(DISTINCT version) != COUNT(*)",
    )
}

#[test]
fn scheduled_passes_run_on_the_cron_and_sigterm_exits_cleanly() {
    let sim = SimProcess::start(&[]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("SCHEDULE__CRON", "*/2 * * * * *")
        .set("SCHEDULE__RUN_ON_START", "false");
    env.watch(&ids(5));

    let mut daemon = env.spawn(&["run"]);
    let db = env.db();
    let finished = poll_until(Duration::from_secs(20), || {
        assert!(
            daemon.try_wait().is_none(),
            "the daemon exited early: {}",
            daemon.stderr()
        );
        let n = db.count_or_zero("SELECT COUNT(*) FROM passes WHERE finished_at IS NOT NULL");
        (n >= 2).then_some(n)
    });
    assert!(
        finished.is_some(),
        "two passes did not finish within 20 s: {}",
        daemon.stderr()
    );

    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit within 15 s of SIGTERM: {}", daemon.stderr()));
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());

    let triggers: Vec<(String,)> = db.rows("SELECT DISTINCT trigger FROM passes");
    assert_eq!(
        triggers,
        vec![("schedule".to_owned(),)],
        "run_on_start is false"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM passes WHERE finished_at IS NULL"),
        0,
        "every pass finished before the exit"
    );
    assert!(db.count("SELECT COUNT(*) FROM fetches WHERE outcome = 'ok'") >= 10);
    assert_eq!(ok_fetches_without_snapshot(&env), 0);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM fetches") as u64,
        sim.stats().requests,
        "every request the simulator answered is recorded"
    );
}

/// Starts the daemon in `env` and returns it once its first pass has stored two fetches.
fn run_until_two_fetches_are_stored(env: &TestEnv) -> ChildGuard {
    let mut daemon = env.spawn(&["run"]);
    let db = env.db();
    let started = poll_until(Duration::from_secs(20), || {
        assert!(daemon.try_wait().is_none(), "{}", daemon.stderr());
        (db.count_or_zero("SELECT COUNT(*) FROM fetches") >= 2).then_some(())
    });
    assert!(
        started.is_some(),
        "no fetch within 20 s: {}",
        daemon.stderr()
    );
    daemon
}

#[test]
fn sigterm_during_a_pass_lets_calls_in_flight_finish_within_the_grace() {
    let sim = SimProcess::start(&["--latency", "1s"]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__CONCURRENCY", "2")
        .set("SHUTDOWN__GRACE", "3s")
        .set("SCHEDULE__CRON", NEVER)
        .set("SCHEDULE__RUN_ON_START", "true");
    env.watch(&ids(20));

    let mut daemon = run_until_two_fetches_are_stored(&env);
    let db = env.db();
    assert_eq!(
        db.count("SELECT COUNT(*) FROM passes WHERE finished_at IS NULL"),
        1,
        "the pass is still running when SIGTERM is sent"
    );

    let sent = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_timeout(Duration::from_secs(3 + 4))
        .unwrap_or_else(|| panic!("no exit within grace + 4 s: {}", daemon.stderr()));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    assert!(took <= Duration::from_secs(7), "exit took {took:?}");

    assert_eq!(
        db.count("SELECT COUNT(*) FROM fetches WHERE finished_at IS NULL OR finished_at = ''"),
        0
    );
    let passes: Vec<PassRow> = db.rows(
        "SELECT id, finished_at, videos, fetched_ok, not_found, failed, skipped, calls, stopped_by \
         FROM passes",
    );
    assert_eq!(passes.len(), 1, "{passes:?}");
    let pass = &passes[0];
    assert!(pass.finished_at.is_some(), "the pass was closed: {pass:?}");
    assert_eq!(pass.stopped_by.as_deref(), Some("shutdown"), "{pass:?}");
    assert_eq!(pass.videos, 20);
    assert!(pass.skipped > 0, "the rest was skipped: {pass:?}");
    assert_eq!(
        pass.fetched_ok + pass.not_found + pass.failed + pass.skipped,
        pass.videos,
        "{pass:?}"
    );
    let pass_id = pass.id;
    let ok_rows = db.count(&format!(
        "SELECT COUNT(*) FROM fetches WHERE pass_id = {pass_id} AND outcome = 'ok'"
    ));
    let all_rows = db.count(&format!(
        "SELECT COUNT(*) FROM fetches WHERE pass_id = {pass_id}"
    ));
    assert_eq!(pass.fetched_ok, ok_rows, "{pass:?}");
    assert_eq!(pass.calls, all_rows, "{pass:?}");
    assert_eq!(ok_fetches_without_snapshot(&env), 0);
    assert_eq!(
        all_rows as u64,
        sim.stats().requests,
        "calls in flight at SIGTERM were finished and stored"
    );
}

#[test]
fn sigterm_exits_soon_after_the_grace_while_another_process_holds_the_write_lock() {
    let sim = SimProcess::start(&["--latency", "500ms"]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__CONCURRENCY", "2")
        .set("SHUTDOWN__GRACE", "1s")
        .set("SCHEDULE__CRON", NEVER)
        .set("SCHEDULE__RUN_ON_START", "true");
    env.watch(&ids(20));

    let mut daemon = run_until_two_fetches_are_stored(&env);
    let db = env.db();
    let stored = db.count("SELECT COUNT(*) FROM fetches");
    // Someone's long write transaction (a backup tool, a hand-run UPDATE): the daemon's writes
    // now wait on SQLite's busy timeout.
    let other = rusqlite::Connection::open(env.db_path()).expect("open");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    std::thread::sleep(Duration::from_millis(1500));

    let sent = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_timeout(Duration::from_secs(20));
    let took = sent.elapsed();
    drop(other);
    let status = status.unwrap_or_else(|| panic!("no exit within 20 s: {}", daemon.stderr()));
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    assert!(took <= Duration::from_secs(12), "exit took {took:?}");
    assert!(
        db.count("SELECT COUNT(*) FROM fetches") >= stored,
        "every stored row is kept"
    );
    assert_eq!(ok_fetches_without_snapshot(&env), 0);
}

#[test]
fn sigkill_mid_pass_leaves_a_sound_database_and_the_next_fetch_completes() {
    let sim = SimProcess::start(&["--latency", "200ms"]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__CONCURRENCY", "4")
        .set("SCHEDULE__CRON", NEVER)
        .set("SCHEDULE__RUN_ON_START", "true");
    let watched = ids(50);
    env.watch(&watched);

    let mut daemon = env.spawn(&["run"]);
    let db = env.db();
    let some = poll_until(Duration::from_secs(20), || {
        assert!(daemon.try_wait().is_none(), "{}", daemon.stderr());
        (db.count_or_zero("SELECT COUNT(*) FROM fetches") >= 8).then_some(())
    });
    assert!(
        some.is_some(),
        "no fetches within 20 s: {}",
        daemon.stderr()
    );
    daemon.signal(Signal::SIGKILL);
    let status = daemon
        .wait_timeout(Duration::from_secs(10))
        .expect("killed process is reaped");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM passes WHERE finished_at IS NULL"),
        1,
        "the pass was killed before it finished"
    );
    assert!(
        db.count("SELECT COUNT(*) FROM fetches") < 50,
        "killed mid-pass"
    );

    let check = |when: &str| {
        assert_eq!(
            db.rows::<(String,)>("PRAGMA integrity_check"),
            vec![("ok".to_owned(),)],
            "{when}"
        );
        assert_eq!(videos_with_broken_versions(&env), vec![], "{when}");
        assert_eq!(ok_fetches_without_snapshot(&env), 0, "{when}");
    };
    check("after SIGKILL");

    let fetch = env.run(&["fetch"]);
    assert_eq!(fetch.code, Some(0), "{fetch:?}");
    assert!(fetch.stdout.contains("50 videos"), "{fetch:?}");
    check("after the next fetch");
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM videos AS v \
             WHERE NOT EXISTS (SELECT 1 FROM snapshots AS s WHERE s.video_id = v.video_id)"
        ),
        0,
        "every id ends with a snapshot"
    );
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT video_id) FROM snapshots"),
        watched.len() as i64
    );
}

#[test]
fn a_fetch_cut_short_by_sigterm_says_so_in_its_exit_code() {
    let sim = SimProcess::start(&["--latency", "300ms"]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__CONCURRENCY", "1");
    env.watch(&ids(20));
    let mut fetch = env.spawn(&["fetch"]);
    let started = poll_until(Duration::from_secs(20), || {
        (sim.stats().requests >= 1).then_some(())
    });
    assert!(started.is_some(), "no call: {}", fetch.stderr());
    fetch.signal(Signal::SIGTERM);
    let status = fetch
        .wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit after SIGTERM: {}", fetch.stderr()));
    assert_eq!(status.code(), Some(130), "{}", fetch.stderr());
    assert!(sim.stats().requests < 20);
}

/// Calls that never answer (the simulator holds them) are abandoned at the end of the grace, and
/// the pass still records its end: a `passes` row left open reads as a pass still running, or a
/// process that died, to anyone querying it and to `healthcheck`.
#[test]
fn a_pass_whose_calls_outlive_the_grace_still_records_its_end() {
    let sim = SimProcess::start(&["--fault-rate", "1", "--faults", "hang"]);
    for (command, code) in [("fetch", 130), ("run", 0)] {
        let mut env = TestEnv::new();
        env.set("API__BASE_URL", &sim.base_url())
            .set("API__CONCURRENCY", "2")
            .set("API__TIMEOUT", "60s")
            .set("SHUTDOWN__GRACE", "1s");
        env.watch(&ids(5));
        let mut process = env.spawn(&[command]);
        let db = env.db();
        let calling = poll_until(Duration::from_secs(20), || {
            (db.count_or_zero("SELECT COUNT(*) FROM passes") >= 1).then_some(())
        });
        assert!(
            calling.is_some(),
            "{command}: no pass: {}",
            process.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
        process.signal(Signal::SIGTERM);
        let status = process
            .wait_timeout(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{command}: no exit after SIGTERM: {}", process.stderr()));
        assert_eq!(status.code(), Some(code), "{command}: {}", process.stderr());
        let passes: Vec<(Option<String>, Option<String>)> =
            db.rows("SELECT finished_at, stopped_by FROM passes");
        assert_eq!(passes.len(), 1, "{command}: {passes:?}");
        let (finished_at, stopped_by) = &passes[0];
        assert!(finished_at.is_some(), "{command}: the pass is left open");
        assert_eq!(stopped_by.as_deref(), Some("shutdown"), "{command}");
        let counts: Vec<(i64, i64, i64)> = db.rows("SELECT failed, skipped, calls FROM passes");
        assert_eq!(
            counts,
            [(2, 3, 2)],
            "{command}: 2 calls abandoned, 3 videos never called"
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM fetches"), 0, "{command}");
    }
}

#[test]
fn a_fetch_waiting_out_another_processs_write_lock_still_stops_within_the_grace() {
    let sim = SimProcess::start(&["--latency", "200ms"]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__CONCURRENCY", "1")
        .set("SHUTDOWN__GRACE", "1s");
    env.watch(&ids(20));
    let mut fetch = env.spawn(&["fetch"]);
    // Once the pass has started calling, another process takes the write lock and keeps it.
    let called = poll_until(Duration::from_secs(20), || {
        (sim.stats().requests >= 1).then_some(())
    });
    assert!(called.is_some(), "no call: {}", fetch.stderr());
    let other = rusqlite::Connection::open(env.db_path()).expect("another process's connection");
    other
        .busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock, held from now on");
    std::thread::sleep(Duration::from_millis(300));
    fetch.signal(Signal::SIGTERM);
    let status = fetch
        .wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit within 15 s of SIGTERM: {}", fetch.stderr()));
    assert_eq!(status.code(), Some(130), "{}", fetch.stderr());
    drop(other);
}

#[test]
fn a_tick_during_a_running_pass_is_skipped_not_overlapped() {
    let sim = SimProcess::start(&["--latency", "250ms"]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__CONCURRENCY", "1")
        .set("SCHEDULE__CRON", "* * * * * *")
        .set("SCHEDULE__RUN_ON_START", "false");
    env.watch(&ids(12));

    let mut daemon = env.spawn(&["run"]);
    let db = env.db();
    let done = poll_until(Duration::from_secs(25), || {
        assert!(daemon.try_wait().is_none(), "{}", daemon.stderr());
        (db.count_or_zero("SELECT COUNT(*) FROM passes WHERE finished_at IS NOT NULL") >= 2)
            .then_some(())
    });
    assert!(
        done.is_some(),
        "two passes did not finish: {}",
        daemon.stderr()
    );
    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit after SIGTERM: {}", daemon.stderr()));
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());

    let stats = sim.stats();
    assert!(stats.max_in_flight_seen >= 1, "{stats:?}");
    assert!(
        stats.max_in_flight_seen <= 1,
        "more calls in flight than api.concurrency: {stats:?}"
    );

    let passes: Vec<(i64, String, Option<String>)> =
        db.rows("SELECT id, started_at, finished_at FROM passes ORDER BY id");
    assert!(passes.len() >= 2, "{passes:?}");
    let (_, first_start, first_end) = &passes[0];
    let first_end = first_end.as_deref().expect("the first pass finished");
    let length = parse_time(first_end) - parse_time(first_start);
    assert!(
        length >= chrono::Duration::milliseconds(2000),
        "a pass spans several ticks ({length}), so ticks came while it ran"
    );
    for pair in passes.windows(2) {
        let (_, _, previous_end) = &pair[0];
        let (_, next_start, _) = &pair[1];
        let previous_end = previous_end.as_deref().unwrap_or_else(|| {
            panic!("a pass started before the previous one finished: {passes:?}")
        });
        assert!(
            next_start.as_str() >= previous_end,
            "passes overlap: {passes:?}"
        );
    }
    assert!(
        daemon.stderr().contains("tick skipped"),
        "skipped ticks are logged: {}",
        daemon.stderr()
    );
}
