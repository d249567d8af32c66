//! Storage faults: a read-only or full database fails the pass with one clear error, wastes
//! (almost) no paid call, loses nothing already stored, and the next pass on a healthy database
//! carries on. Long read transactions from another connection never make a pass fail.

use std::collections::HashMap;
use std::time::Duration;

use douyin_watch::client::ApiClient;
use douyin_watch::collector::{Collector, PassOptions, Trigger};
use douyin_watch::settings::Settings;
use douyin_watch::simulator::{Simulator, SimulatorConfig};
use douyin_watch::store::Store;
use douyin_watch::video_id::VideoId;
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;
use tokio_util::sync::CancellationToken;

struct Setup {
    dir: tempfile::TempDir,
    simulator: Simulator,
    settings: Settings,
}

async fn setup(videos: usize) -> Setup {
    let simulator = Simulator::start(
        "127.0.0.1:0".parse().expect("addr"),
        SimulatorConfig::default(),
    )
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let environment = HashMap::from([
        (
            "DOUYIN_WATCH__DATABASE__URL".to_owned(),
            format!("sqlite://{}", dir.path().join("t.db").display()),
        ),
        (
            "DOUYIN_WATCH__API__BASE_URL".to_owned(),
            simulator.base_url(),
        ),
        ("DOUYIN_WATCH__API__KEY".to_owned(), "k".to_owned()),
        ("DOUYIN_WATCH__API__SECRET".to_owned(), "s".to_owned()),
        ("DOUYIN_WATCH__API__CONCURRENCY".to_owned(), "2".to_owned()),
        (
            "DOUYIN_WATCH__API__RATE_PER_SEC".to_owned(),
            "1000".to_owned(),
        ),
    ]);
    let settings = Settings::load_from(None, environment).expect("settings");
    let store = Store::open(options(&dir)).await.expect("store");
    let ids: Vec<VideoId> = (1..=videos)
        .map(|i| {
            (7_100_000_000_000_000_000u64 + i as u64)
                .to_string()
                .parse()
                .expect("id")
        })
        .collect();
    store
        .add_videos(&ids, None, chrono::Utc::now())
        .await
        .expect("add");
    store.close().await;
    Setup {
        dir,
        simulator,
        settings,
    }
}

fn options(dir: &tempfile::TempDir) -> SqliteConnectOptions {
    SqliteConnectOptions::new().filename(dir.path().join("t.db"))
}

fn collector(setup: &Setup, store: Store) -> Collector {
    Collector::new(
        store,
        ApiClient::new(&setup.settings.api).expect("client"),
        PassOptions::from_settings(&setup.settings),
    )
}

async fn count(dir: &tempfile::TempDir, query: &'static str) -> i64 {
    let pool = SqlitePool::connect_with(options(dir).read_only(true))
        .await
        .expect("connect");
    sqlx::query_scalar(query)
        .fetch_one(&pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_read_only_database_fails_the_pass_before_any_call() {
    let setup = setup(5).await;
    // Root ignores file modes, so make SQLite itself refuse writes.
    let store = Store::open(options(&setup.dir).pragma("query_only", "true"))
        .await
        .expect("an up-to-date database opens read-only");
    let error = collector(&setup, store.clone())
        .run_pass(Trigger::Fetch, None, &CancellationToken::new())
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
    let store = Store::open(options(&setup.dir)).await.expect("store");
    let report = collector(&setup, store)
        .run_pass(Trigger::Fetch, None, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!(report.totals.fetched_ok, 5);
}

#[tokio::test]
async fn a_full_database_fails_the_pass_and_keeps_what_was_stored() {
    let setup = setup(400).await;
    let store = Store::open(options(&setup.dir)).await.expect("store");
    let first = collector(&setup, store.clone())
        .run_pass(Trigger::Fetch, None, &CancellationToken::new())
        .await
        .expect("first pass");
    assert_eq!(first.totals.fetched_ok, 400);
    store.close().await;
    let pages = count(&setup.dir, "PRAGMA page_count").await;
    let snapshots_before = count(&setup.dir, "SELECT COUNT(*) FROM snapshots").await;
    let fetches_before = count(&setup.dir, "SELECT COUNT(*) FROM fetches").await;

    // Room for a few more rows only: the database fills up during the pass.
    let full = options(&setup.dir).pragma("max_page_count", (pages + 2).to_string());
    let store = Store::open(full).await.expect("store");
    let error = collector(&setup, store.clone())
        .run_pass(Trigger::Fetch, None, &CancellationToken::new())
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

    let pool = SqlitePool::connect_with(options(&setup.dir).read_only(true))
        .await
        .expect("connect");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("check");
    assert_eq!(integrity, "ok");
    assert_eq!(
        count(&setup.dir, "SELECT COUNT(*) FROM snapshots").await,
        snapshots_before
    );
    assert!(count(&setup.dir, "SELECT COUNT(*) FROM fetches").await >= fetches_before);
    let orphans = count(
        &setup.dir,
        "SELECT COUNT(*) FROM fetches WHERE outcome = 'ok' AND snapshot_id IS NULL",
    )
    .await;
    assert_eq!(orphans, 0, "every stored ok fetch kept its snapshot");
}

#[tokio::test]
async fn long_readers_never_make_a_pass_fail() {
    let setup = setup(40).await;
    let store = Store::open(options(&setup.dir)).await.expect("store");
    let reader = SqlitePool::connect_with(options(&setup.dir).read_only(true))
        .await
        .expect("reader");
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
        let report = collector(&setup, store.clone())
            .run_pass(Trigger::Fetch, None, &CancellationToken::new())
            .await
            .expect("pass succeeds beside the reader");
        assert_eq!(report.totals.fetched_ok, 40, "{}", report.summary());
        assert_eq!(report.totals.failed, 0);
    }
    stop.cancel();
    assert!(busy_reader.await.expect("reader") > 0);
}
