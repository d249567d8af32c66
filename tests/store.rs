//! The store on real SQLite files: the schema users query, migrations, the watch list.

use chrono::Utc;
use douyin_watch::error_code::{self, Policy};
use douyin_watch::store::{Store, StoreError};
use douyin_watch::video_id::VideoId;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Row, SqlitePool};

fn options(dir: &tempfile::TempDir) -> SqliteConnectOptions {
    SqliteConnectOptions::new().filename(dir.path().join("nested/folder/test.db"))
}

fn ids(texts: &[&str]) -> Vec<VideoId> {
    texts.iter().map(|t| t.parse().expect("id")).collect()
}

#[tokio::test]
async fn opening_creates_the_folder_the_file_and_the_schema_users_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(options(&dir)).await.expect("opens");
    assert_eq!(store.integrity_check().await.expect("check"), "ok");
    store.close().await;
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE '\\_%' ESCAPE '\\' \
         AND name NOT LIKE 'sqlite%' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .expect("names");
    assert_eq!(
        names,
        [
            "error_codes",
            "failures",
            "failures_by_code",
            "fetches",
            "latest_snapshots",
            "passes",
            "pauses",
            "quota_samples",
            "snapshots",
            "videos"
        ]
    );
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .expect("pragma");
    assert_eq!(journal, "wal");
}

#[tokio::test]
async fn the_error_codes_table_matches_the_policy_the_collector_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    Store::open(options(&dir))
        .await
        .expect("opens")
        .close()
        .await;
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    let rows =
        sqlx::query("SELECT code, status, meaning, charged, policy FROM error_codes ORDER BY code")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows.len(), error_code::TABLE.len());
    for row in rows {
        let code: String = row.get("code");
        let known = error_code::lookup(&code).unwrap_or_else(|| panic!("{code} is not in TABLE"));
        assert_eq!(row.get::<String, _>("status"), known.status, "{code}");
        assert_eq!(
            row.get::<String, _>("meaning"),
            known.description_cn,
            "{code}"
        );
        assert_eq!(row.get::<bool, _>("charged"), known.charged, "{code}");
        let policy = serde_json::to_value(known.policy).expect("serializes");
        assert_eq!(
            Some(row.get::<String, _>("policy").as_str()),
            policy.as_str(),
            "{code}"
        );
    }
    assert_eq!(error_code::policy("4013"), Policy::Account);
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    Store::open(options(&dir))
        .await
        .expect("opens")
        .close()
        .await;
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .expect("insert");
    pool.close().await;
    let error = match Store::open(options(&dir)).await {
        Err(error) => error,
        Ok(_) => panic!("a newer schema must be refused"),
    };
    assert!(matches!(error, StoreError::NewerSchema { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("upgrade douyin-watch"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[tokio::test]
async fn the_watch_list_adds_idempotently_and_removal_keeps_the_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(options(&dir)).await.expect("opens");
    let first = store
        .add_videos(
            &ids(&["7118694749548072205", "7100000000000000001"]),
            Some("a"),
            Utc::now(),
        )
        .await
        .expect("add");
    assert_eq!(first.added.len(), 2);
    let again = store
        .add_videos(&ids(&["7118694749548072205"]), None, Utc::now())
        .await
        .expect("add again");
    assert_eq!(again.already_watched, ["7118694749548072205"]);
    let removed = store
        .remove_videos(
            &ids(&["7118694749548072205", "7100000000000000999"]),
            Utc::now(),
        )
        .await
        .expect("remove");
    assert_eq!(removed.removed, ["7118694749548072205"]);
    assert_eq!(removed.not_watched, ["7100000000000000999"]);
    let due = store.due_video_ids().await.expect("due");
    assert_eq!(due, ids(&["7100000000000000001"]));
    let back = store
        .add_videos(&ids(&["7118694749548072205"]), None, Utc::now())
        .await
        .expect("re-add");
    assert_eq!(back.reactivated, ["7118694749548072205"]);
    let listed = store.watched_videos().await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|v| v.active));
    assert!(
        listed.iter().all(|v| v.label.as_deref() == Some("a")),
        "re-adding without a label keeps the label"
    );
}

#[tokio::test]
async fn pruning_deletes_old_call_log_rows_and_keeps_snapshots() {
    use douyin_watch::simulator::{Simulator, SimulatorConfig};
    let simulator = Simulator::start(
        "127.0.0.1:0".parse().expect("addr"),
        SimulatorConfig::default(),
    )
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let environment = std::collections::HashMap::from([
        (
            "DOUYIN_WATCH__API__BASE_URL".to_owned(),
            simulator.base_url(),
        ),
        ("DOUYIN_WATCH__API__KEY".to_owned(), "k".to_owned()),
        ("DOUYIN_WATCH__API__SECRET".to_owned(), "s".to_owned()),
        (
            "DOUYIN_WATCH__RETENTION__FETCHES_DAYS".to_owned(),
            "30".to_owned(),
        ),
        (
            "DOUYIN_WATCH__RETENTION__QUOTA_SAMPLES_DAYS".to_owned(),
            "90".to_owned(),
        ),
    ]);
    let settings =
        douyin_watch::settings::Settings::load_from(None, environment).expect("settings");
    let store = Store::open(options(&dir)).await.expect("opens");
    let watched: Vec<String> = (1..=4)
        .map(|i| format!("71000000000000000{i:02}"))
        .collect();
    let watched: Vec<&str> = watched.iter().map(String::as_str).collect();
    store
        .add_videos(&ids(&watched), None, Utc::now())
        .await
        .expect("add");
    let collector = douyin_watch::collector::Collector::new(
        store.clone(),
        douyin_watch::client::ApiClient::new(&settings.api).expect("client"),
        douyin_watch::collector::PassOptions::from_settings(&settings),
    );
    for _ in 0..3 {
        collector
            .run_pass(
                douyin_watch::collector::Trigger::Fetch,
                None,
                &tokio_util::sync::CancellationToken::new(),
            )
            .await
            .expect("pass");
    }
    // Age the first pass's rows by 60 days: past the fetch retention, within the quota one.
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    sqlx::query("UPDATE fetches SET started_at = '2020-01-01T00:00:00.000Z' WHERE pass_id = 1")
        .execute(&pool)
        .await
        .expect("age fetches");
    sqlx::query(
        "UPDATE quota_samples SET observed_at = '2020-01-01T00:00:00.000Z' \
         WHERE fetch_id IN (SELECT id FROM fetches WHERE pass_id = 2)",
    )
    .execute(&pool)
    .await
    .expect("age samples");
    let (fetches_before, quota_before) = settings.retention.cutoffs(Utc::now());
    let pruned = store
        .prune(fetches_before, quota_before)
        .await
        .expect("prune");
    assert_eq!(pruned.fetches, 4, "the first pass's fetches");
    assert_eq!(
        pruned.quota_samples, 8,
        "their samples, and the old samples of pass 2"
    );
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM fetches").await, 8);
    assert_eq!(count("SELECT COUNT(*) FROM quota_samples").await, 4);
    assert_eq!(
        count("SELECT COUNT(*) FROM snapshots").await,
        4,
        "snapshots are never pruned"
    );
    assert_eq!(count("SELECT SUM(seen_count) FROM snapshots").await, 12);
    let dangling: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(&pool)
        .await
        .expect("fk check");
    assert!(dangling.is_empty(), "{dangling:?}");
}
