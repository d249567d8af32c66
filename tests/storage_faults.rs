//! Storage faults: a read-only or full database fails the pass with one clear error, wastes
//! (almost) no paid call, loses nothing already stored, and the next pass on a healthy database
//! carries on. Long read transactions from another connection never make a pass fail.

mod support;

use std::time::Duration;

use douyin_watch::collector::Trigger;
use douyin_watch::simulator::{Fault, SimulatorConfig};
use douyin_watch::store::Store;
use support::{PassHarness, ids_starting, run_full_pass};
use tokio_util::sync::CancellationToken;

/// A harness whose watch list holds `videos` ids, with its store closed: each test opens the
/// database the way it needs.
async fn setup(videos: usize) -> PassHarness {
    let setup = PassHarness::builder(SimulatorConfig::default())
        .set("API__CONCURRENCY", "2")
        .start()
        .await;
    setup.watch(&ids_starting(71, videos)).await;
    setup.store.close().await;
    setup
}

#[tokio::test]
async fn a_read_only_database_fails_the_pass_before_any_call() {
    let setup = setup(5).await;
    // Root ignores file modes, so make SQLite itself refuse writes.
    let store = Store::open(setup.connect_options().pragma("query_only", "true"))
        .await
        .expect("an up-to-date database opens read-only");
    let error = run_full_pass(&setup.collector_on(store.clone()))
        .await
        .expect_err("the pass cannot record anything");
    let message = douyin_watch::client::error_chain(&error);
    assert!(message.contains("readonly"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(
        setup.simulator.stats().requests,
        0,
        "no paid call before storage works"
    );
    store.close().await;

    // The next pass, on a writable database, carries on.
    let store = Store::open(setup.connect_options()).await.expect("store");
    let report = run_full_pass(&setup.collector_on(store))
        .await
        .expect("pass");
    assert_eq!(report.totals.fetched_ok, 5);
}

/// A disk that turns read-only under a running daemon fails each write when it commits (the WAL
/// cannot be written), after the statement itself went through. A deferred foreign key that no
/// row satisfies fails a write the same way, at its commit, so the pass's start fails like that.
#[tokio::test]
async fn a_write_that_fails_at_commit_fails_the_pass_before_any_call() {
    let setup = setup(5).await;
    let guard = rusqlite::Connection::open(setup.db_path()).expect("open");
    guard
        .execute_batch(
            "CREATE TABLE commit_guard_parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE commit_guard (parent INTEGER \
               REFERENCES commit_guard_parent (id) DEFERRABLE INITIALLY DEFERRED); \
             CREATE TRIGGER commits_fail AFTER INSERT ON passes \
               BEGIN INSERT INTO commit_guard VALUES (-1); END;",
        )
        .expect("a write that fails at commit");
    drop(guard);
    let store = Store::open(setup.connect_options()).await.expect("store");
    let error = run_full_pass(&setup.collector_on(store.clone()))
        .await
        .expect_err("the pass's start is not stored");
    let message = douyin_watch::client::error_chain(&error);
    assert!(message.contains("FOREIGN KEY"), "{message}");
    assert_eq!(
        setup.simulator.stats().requests,
        0,
        "no paid call before storage works"
    );
    store.close().await;
}

#[tokio::test]
async fn a_disk_nearly_full_fails_the_pass_before_any_call() {
    // No test can fill a real disk; asking for more free space than any disk has is the same.
    let setup = PassHarness::builder(SimulatorConfig::default())
        .set("DATABASE__MIN_FREE_MIB", "1000000000000")
        .start()
        .await;
    setup.watch(&ids_starting(72, 3)).await;
    let error = run_full_pass(&setup.collector())
        .await
        .expect_err("nothing could be stored");
    let message = douyin_watch::client::error_chain(&error);
    assert!(message.contains("database.min_free_mib"), "{message}");
    assert!(message.contains("no call was made"), "{message}");
    assert_eq!(setup.simulator.stats().requests, 0, "no paid call");

    // With room on the disk (this one has more than the default 16 MiB), the pass runs.
    let mut settings = setup.settings.clone();
    settings.database.min_free_mib = 16;
    let collector = douyin_watch::collector::Collector::new(
        setup.store.clone(),
        douyin_watch::client::ApiClient::new(&settings.api).expect("client"),
        douyin_watch::collector::PassOptions::from_settings(&settings),
    );
    let report = run_full_pass(&collector).await.expect("pass");
    assert_eq!(report.totals.fetched_ok, 3);
    assert!(setup.store.free_bytes().is_some_and(|free| free > 0));
}

#[tokio::test]
async fn a_full_database_fails_the_pass_and_keeps_what_was_stored() {
    let setup = setup(400).await;
    let store = Store::open(setup.connect_options()).await.expect("store");
    let first = run_full_pass(&setup.collector_on(store.clone()))
        .await
        .expect("first pass");
    assert_eq!(first.totals.fetched_ok, 400);
    store.close().await;
    let pages = setup.scalar("PRAGMA page_count").await;
    let snapshots_before = setup.scalar("SELECT COUNT(*) FROM snapshots").await;
    let fetches_before = setup.scalar("SELECT COUNT(*) FROM fetches").await;

    // Room for a few more rows only: the database fills up during the pass.
    let full = setup
        .connect_options()
        .pragma("max_page_count", (pages + 2).to_string());
    let store = Store::open(full).await.expect("store");
    let error = run_full_pass(&setup.collector_on(store.clone()))
        .await
        .expect_err("the database fills up");
    let message = douyin_watch::client::error_chain(&error);
    assert!(message.contains("full"), "{message}");
    // Answers already in flight or waiting to be written are lost, but the pass stops
    // well before the end of the watch list.
    let second_pass_calls = setup.simulator.stats().requests - 400;
    assert!(
        second_pass_calls < 400,
        "the pass stopped early: {second_pass_calls} calls"
    );
    store.close().await;

    let pool = setup.read_only_pool().await;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("check");
    assert_eq!(integrity, "ok");
    assert_eq!(
        setup.scalar("SELECT COUNT(*) FROM snapshots").await,
        snapshots_before
    );
    assert!(setup.scalar("SELECT COUNT(*) FROM fetches").await >= fetches_before);
    let orphans = setup
        .scalar("SELECT COUNT(*) FROM fetches WHERE outcome = 'ok' AND snapshot_id IS NULL")
        .await;
    assert_eq!(orphans, 0, "every stored ok fetch kept its snapshot");
}

#[tokio::test]
async fn long_readers_never_make_a_pass_fail() {
    let setup = setup(40).await;
    let store = Store::open(setup.connect_options()).await.expect("store");
    let reader = setup.read_only_pool().await;
    let stop = CancellationToken::new();
    let busy_reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut queries = 0u32;
            while !stop.is_cancelled() {
                // A long read transaction with heavy queries, as a user's analysis would run.
                let mut tx = reader.begin().await.expect("begin");
                for _ in 0..20 {
                    let _: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM fetches a JOIN fetches b ON a.video_id = b.video_id",
                    )
                    .fetch_one(&mut *tx)
                    .await
                    .expect("query");
                    queries += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                tx.commit().await.expect("end");
            }
            queries
        })
    };
    for _ in 0..3 {
        let report = run_full_pass(&setup.collector_on(store.clone()))
            .await
            .expect("pass succeeds beside the reader");
        assert_eq!(report.totals.fetched_ok, 40, "{}", report.summary());
        assert_eq!(report.totals.failed, 0);
    }
    stop.cancel();
    assert!(busy_reader.await.expect("reader") > 0);
}

/// A reader that keeps one transaction open (a notebook left open over a weekend) stops SQLite
/// from moving the write-ahead log back into the database, so the log grows; once the reader is
/// gone, the log is cut back to `database.wal_max_mib` instead of keeping its largest size.
#[tokio::test]
async fn the_write_ahead_log_shrinks_back_after_a_long_reader_is_gone() {
    let h = PassHarness::builder(SimulatorConfig {
        change_every: Some(1),
        ..SimulatorConfig::default()
    })
    .set("DATABASE__WAL_MAX_MIB", "1")
    .set("API__CONCURRENCY", "16")
    .set("API__RATE_PER_SEC", "10000")
    .start()
    .await;
    let ids = ids_starting(71, 300);
    h.watch(&ids).await;
    let wal = {
        let mut path = h.db_path().into_os_string();
        path.push("-wal");
        std::path::PathBuf::from(path)
    };
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());

    let reader = rusqlite::Connection::open(h.db_path()).expect("reader");
    reader
        .execute_batch("BEGIN; SELECT COUNT(*) FROM videos;")
        .expect("a read transaction left open");
    for _ in 0..4 {
        // Every title changes on every fetch: a new version each time.
        assert_eq!(h.pass().await.totals.new_versions, 300);
    }
    let grown = wal_size();
    assert!(
        grown > 8 << 20,
        "the log grew past the reader: {grown} bytes"
    );
    drop(reader);

    // The next write checkpoints the log; the one after starts it again from its beginning.
    let one = Some(vec![
        douyin_watch::video_id::VideoId::parse(&ids[0]).expect("id"),
    ]);
    for _ in 0..2 {
        h.collector()
            .run_pass(
                douyin_watch::collector::Trigger::Fetch,
                one.clone(),
                &CancellationToken::new(),
            )
            .await
            .expect("pass");
    }
    let after = wal_size();
    assert!(
        after <= (1 << 20) + (64 << 10),
        "cut back to 1 MiB: {after} bytes (it had grown to {grown})"
    );
}

/// Waits until the simulator has charged `calls` calls: the pass under test is well under way.
async fn charged_at_least(h: &PassHarness, calls: u64) {
    while h.simulator.stats().charged < calls {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Takes the database's write lock from a connection of its own, as another process would
/// (waiting, if need be, for a group commit of the pass to end); held until committed or dropped.
fn hold_write_lock(db: &std::path::Path) -> rusqlite::Connection {
    let other = rusqlite::Connection::open(db).expect("another process's connection");
    other
        .busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");
    other
}

/// While another process holds the write lock, a pass makes no further call once an answer has
/// waited 2 s to be stored, retries included, instead of calling on until 128 answers wait
/// unstored; when the lock goes, the pass goes on and stores every answer it paid for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_makes_no_new_call_while_its_answers_cannot_be_stored() {
    const LOCK_HELD: Duration = Duration::from_secs(8);
    let h = PassHarness::builder(SimulatorConfig {
        latency: Duration::from_millis(20),
        // Retries come due all through the lock.
        fault_rate: 0.3,
        faults: vec![Fault::Code5000],
        ..SimulatorConfig::default()
    })
    .set("API__CONCURRENCY", "4")
    .set("API__RATE_PER_SEC", "20")
    .set("RETRY__BASE_DELAY", "4s")
    .set("RETRY__MAX_DELAY", "8s")
    .start()
    .await;
    h.watch(&ids_starting(72, 120)).await;
    let collector = h.collector();
    let pass = tokio::spawn(async move { run_full_pass(&collector).await });
    charged_at_least(&h, 8).await;
    let db = h.db_path();
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let holder = tokio::task::spawn_blocking(move || {
        let other = hold_write_lock(&db);
        locked.send(()).expect("the test waits");
        std::thread::sleep(LOCK_HELD);
        other.execute_batch("COMMIT").expect("released");
    });
    is_locked.await.expect("the lock was taken");
    let before = h.simulator.stats().requests;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_back = h.simulator.stats().requests;
    tokio::time::sleep(LOCK_HELD - Duration::from_millis(3500)).await;
    let while_locked = h.simulator.stats().requests - before;
    let since_held_back = h.simulator.stats().requests - held_back;
    holder.await.expect("lock holder");

    // At 20 calls a second, 2 s of calls and those in flight: about 44. Without the wait, the
    // pass called on until 128 answers were unstored (here: every video left, over 100).
    assert!(
        (1..=60).contains(&while_locked),
        "{while_locked} calls while nothing could be stored"
    );
    // Held back: no call from 3 s into the lock on, not even a retry whose delay ran out.
    assert_eq!(since_held_back, 0, "calls after the pass held back");
    let report = pass
        .await
        .expect("pass task")
        .expect("the pass goes on once the lock is released");
    assert_eq!(
        report.totals.fetched_ok + report.totals.failed,
        120,
        "{}",
        report.summary()
    );
    let stats = h.simulator.stats();
    assert_eq!(
        h.scalar("SELECT COUNT(*) FROM fetches WHERE charged = 1")
            .await,
        i64::try_from(stats.charged).expect("count"),
        "every charged answer is stored"
    );
    assert_eq!(
        h.scalar("SELECT COUNT(*) FROM fetches").await,
        i64::try_from(stats.requests).expect("count"),
        "every call is a row"
    );
}

/// At the end of the shutdown grace a pass gives up the calls still waiting for an answer, but
/// not the answers it already holds: those wait for the store (here, for another process's write
/// lock to go) and are stored and counted before the pass records its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_in_hand_when_the_grace_ends_are_still_stored_and_counted() {
    let h = PassHarness::builder(SimulatorConfig {
        latency: Duration::from_millis(20),
        ..SimulatorConfig::default()
    })
    .set("API__CONCURRENCY", "4")
    .set("API__RATE_PER_SEC", "1000")
    .set("SHUTDOWN__GRACE", "1s")
    .start()
    .await;
    h.watch(&ids_starting(73, 400)).await;
    let collector = h.collector();
    let shutdown = CancellationToken::new();
    let pass = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { collector.run_pass(Trigger::Fetch, None, &shutdown).await }
    });
    charged_at_least(&h, 4).await;
    let other = hold_write_lock(&h.db_path());
    // Answers arrive and wait to be stored; then the signal, and the grace runs out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    other.execute_batch("COMMIT").expect("released");

    let report = pass
        .await
        .expect("pass task")
        .expect("the pass ends once its answers are stored");
    let stats = h.simulator.stats();
    let stored_ok = h
        .scalar("SELECT COUNT(*) FROM fetches WHERE outcome = 'ok'")
        .await;
    assert!(stored_ok > 4, "answers held during the lock: {stored_ok}");
    assert_eq!(
        stored_ok,
        i64::try_from(stats.charged).expect("count"),
        "every charged answer is stored"
    );
    assert_eq!(
        i64::try_from(report.totals.fetched_ok).expect("count"),
        stored_ok,
        "{}",
        report.summary()
    );
    assert_eq!(
        h.scalar(
            "SELECT COUNT(*) FROM passes WHERE finished_at IS NOT NULL AND stopped_by = 'shutdown'"
        )
        .await,
        1
    );
}

/// Another process holding the write lock for over a minute in the middle of a pass (a long
/// prune, a VACUUM) delays storing; it does not throw away answers already paid for. Slow: the
/// lock is held for 65 s, past every timeout a store used to give up at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_elsewhere_for_minutes_loses_no_paid_answer() {
    if support::skip_slow_test("a_write_lock_held_elsewhere_for_minutes_loses_no_paid_answer") {
        return;
    }
    let h = PassHarness::builder(SimulatorConfig {
        latency: Duration::from_millis(20),
        ..SimulatorConfig::default()
    })
    .set("API__CONCURRENCY", "4")
    .set("API__RATE_PER_SEC", "1000")
    .start()
    .await;
    h.watch(&ids_starting(71, 60)).await;
    let collector = h.collector();
    let pass = tokio::spawn(async move { run_full_pass(&collector).await });
    charged_at_least(&h, 8).await;
    let db = h.db_path();
    tokio::task::spawn_blocking(move || {
        let other = hold_write_lock(&db);
        std::thread::sleep(Duration::from_secs(65));
        other.execute_batch("COMMIT").expect("released");
    })
    .await
    .expect("lock holder");

    let report = pass
        .await
        .expect("pass task")
        .expect("the pass waits for the lock");
    assert_eq!(report.totals.fetched_ok, 60, "{}", report.summary());
    let stats = h.simulator.stats();
    assert_eq!(
        h.scalar("SELECT COUNT(*) FROM fetches WHERE charged = 1")
            .await,
        i64::try_from(stats.charged).expect("count"),
        "every charged answer is stored"
    );
}
