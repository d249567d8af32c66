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
            "latest_snapshot_summaries",
            "latest_snapshots",
            "passes",
            "pauses",
            "quota_readings",
            "quota_samples",
            "snapshot_versions",
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
    let due = store.due_video_ids(Utc::now()).await.expect("due");
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
            "90".to_owned(),
        ),
        (
            "DOUYIN_WATCH__RETENTION__QUOTA_SAMPLES_DAYS".to_owned(),
            "30".to_owned(),
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
    // The first pass's rows are past both retentions; the second pass's, 60 days old, are past
    // the quota samples' only (a sample's time is its fetch's).
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    sqlx::query(
        "UPDATE fetches SET started_at = '2020-01-01T00:00:00.000Z', \
         finished_at = '2020-01-01T00:00:01.000Z' WHERE pass_id = 1",
    )
    .execute(&pool)
    .await
    .expect("age pass 1");
    let sixty_days_ago = douyin_watch::store::timestamp(Utc::now() - chrono::Days::new(60));
    sqlx::query("UPDATE fetches SET started_at = ?1, finished_at = ?1 WHERE pass_id = 2")
        .bind(&sixty_days_ago)
        .execute(&pool)
        .await
        .expect("age pass 2");
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

/// Records a successful fetch of `video` at `at` seeing `title`, with `api_info` as the answer's.
async fn record_ok(
    store: &Store,
    video: &str,
    at: chrono::DateTime<Utc>,
    title: &str,
    api_info: &str,
) -> douyin_watch::store::StoredAttempt {
    use douyin_watch::response::RawItem;
    use douyin_watch::store::{AttemptRecord, QuotaInput, SnapshotInput, VideoStatus};
    let content = douyin_watch::content::Content {
        title: Some(title.to_owned()),
        nick: Some("nick".to_owned()),
        item_imgs: vec!["https://p3.douyinpic.com/a.jpg".to_owned()],
        ..douyin_watch::content::Content::default()
    };
    let hash = content.hash();
    let parsed = douyin_watch::api_info::ApiInfo::parse(api_info).ok();
    store
        .record_attempt(AttemptRecord {
            pass_id: None,
            video_id: video,
            started_at: at - chrono::Duration::milliseconds(250),
            finished_at: at,
            attempt: 1,
            outcome: douyin_watch::attempt::Outcome::Ok,
            http_status: Some(200),
            error_code: Some("0000"),
            error: None,
            reason: None,
            message: None,
            charged: true,
            request_id: Some("gw-1.63353a5926054"),
            snapshot: Some(SnapshotInput {
                content,
                content_hash: hash,
                raw: RawItem::new(format!("{{\"num_iid\":\"{video}\",\"title\":\"{title}\"}}")),
            }),
            quota: Some(QuotaInput {
                api_info,
                parsed: parsed.as_ref(),
                server_time: Some("Beijing/2026-11-29 14:25:29"),
            }),
            video_status: VideoStatus::Ok,
        })
        .await
        .expect("record")
}

/// Every row of `sql` (which selects one text per row) in order.
async fn texts(pool: &SqlitePool, sql: &'static str) -> Vec<String> {
    sqlx::query_scalar(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `latest_snapshots` as JSON rows, every column, by video.
const LATEST_ROWS: &str = "SELECT json_object('id', id, 'video_id', video_id, 'version', version, \
    'content_hash', content_hash, 'first_seen_at', first_seen_at, 'last_seen_at', last_seen_at, \
    'seen_count', seen_count, 'title', title, 'nick', nick, 'item_imgs', item_imgs, 'raw', raw, \
    'changed_fields', changed_fields) FROM latest_snapshots ORDER BY video_id";

/// The newest version of every video, found the slow way (as `latest_snapshots` was first defined).
const NEWEST_BY_GROUPING: &str = "SELECT json_object('id', id, 'video_id', video_id, \
    'version', version, 'content_hash', content_hash, 'first_seen_at', first_seen_at, \
    'last_seen_at', last_seen_at, 'seen_count', seen_count, 'title', title, 'nick', nick, \
    'item_imgs', item_imgs, 'raw', raw, 'changed_fields', changed_fields) \
    FROM snapshots AS s WHERE version = (SELECT MAX(version) FROM snapshots AS n \
    WHERE n.video_id = s.video_id) ORDER BY video_id";

/// Each version's sightings, from `snapshots`, as "video vN xSEEN at LAST_SEEN".
const SIGHTINGS: &str = "SELECT video_id || ' v' || version || ' x' || seen_count || ' at ' \
    || last_seen_at FROM snapshots ORDER BY video_id, version";

/// Every column of every version, from `snapshots`, as JSON rows.
const SNAPSHOT_ROWS: &str = "SELECT json_object('id', id, 'video_id', video_id, \
    'version', version, 'content_hash', content_hash, 'first_seen_at', first_seen_at, \
    'last_seen_at', last_seen_at, 'seen_count', seen_count, 'title', title, 'nick', nick, \
    'signature', signature, 'detail_url', detail_url, 'item_type', item_type, \
    'author_uid', author_uid, 'short_id', short_id, 'video_url', video_url, \
    'video_url_raw', video_url_raw, 'cover_url', cover_url, 'music_title', music_title, \
    'music_nick', music_nick, 'music_url', music_url, 'music_cover_url', music_cover_url, \
    'item_imgs', item_imgs, 'raw', raw, 'changed_fields', changed_fields) \
    FROM snapshots ORDER BY id";

/// `latest_snapshots` once checked against [`NEWEST_BY_GROUPING`], as "video vN title xSEEN".
async fn checked_latest(pool: &SqlitePool) -> Vec<String> {
    assert_eq!(
        texts(pool, LATEST_ROWS).await,
        texts(pool, NEWEST_BY_GROUPING).await
    );
    texts(
        pool,
        "SELECT video_id || ' v' || version || ' ' || title || ' x' || seen_count \
         FROM latest_snapshots ORDER BY video_id",
    )
    .await
}

/// `quota_samples` as JSON rows, every column but `id` and `observed_at` (see migration 0003),
/// by fetch.
const QUOTA_ROWS: &str = "SELECT json_object('fetch_id', fetch_id, 'quota_day', quota_day, \
    'server_time', server_time, 'calls_today', calls_today, \
    'calls_max', calls_max, 'calls_total', calls_total, 'calls_total_parts', calls_total_parts, \
    'expires_on', expires_on, 'api_info', api_info) FROM quota_samples ORDER BY fetch_id";

#[tokio::test]
async fn quota_samples_give_back_every_api_info_as_sent_and_store_the_usual_ones_compactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(options(&dir)).await.expect("opens");
    // (text, whether the view rebuilds it from the parsed figures, so the text is not stored)
    let shapes = [
        (
            "today:39 max:10000 all[104=39+33+32];expires:2030-12-31",
            true,
        ),
        ("today:0 max:10000", true),
        ("today:5 max:100;expires:2031-01-01", true),
        ("today:7 max:100 all[7=7]", true),
        ("today: max:20000 all[=++];expires:2024-01-16", false),
        ("max:10000 today:39", false),
        ("today:39  max:10000", false),
        (
            "today:39 max:10000 all[104=39+33+32],expires:2030-12-31",
            false,
        ),
        ("no quota here", false),
        ("", false),
    ];
    let videos: Vec<String> = (0..shapes.len())
        .map(|i| format!("73000000000000001{i:02}"))
        .collect();
    let watched: Vec<&str> = videos.iter().map(String::as_str).collect();
    store
        .add_videos(&ids(&watched), None, Utc::now())
        .await
        .expect("add");
    // 2026-11-29 16:30 UTC is 00:30 on the 30th in Beijing.
    let at: chrono::DateTime<Utc> = "2026-11-29T16:30:00.123Z".parse().expect("time");
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    for ((text, compact), video) in shapes.iter().zip(&videos) {
        let fetch_id = record_ok(&store, video, at, "t", text).await.fetch_id;
        let row = sqlx::query(
            "SELECT s.api_info, s.observed_at, s.quota_day, s.server_time, s.id, \
                    q.api_info IS NULL AS compact \
             FROM quota_samples AS s JOIN quota_readings AS q ON q.fetch_id = s.fetch_id \
             WHERE s.fetch_id = ?",
        )
        .bind(fetch_id)
        .fetch_one(&pool)
        .await
        .expect("the sample");
        assert_eq!(row.get::<String, _>("api_info"), *text);
        assert_eq!(row.get::<bool, _>("compact"), *compact, "{text:?}");
        assert_eq!(
            row.get::<String, _>("observed_at"),
            "2026-11-29T16:29:59.873Z",
            "when the call started"
        );
        assert_eq!(row.get::<String, _>("quota_day"), "2026-11-30");
        assert_eq!(
            row.get::<String, _>("server_time"),
            "Beijing/2026-11-29 14:25:29"
        );
        assert_eq!(row.get::<i64, _>("id"), fetch_id);
    }
    let (today, max) = store
        .day_quota("2026-11-30".parse().expect("day"))
        .await
        .expect("day quota");
    assert_eq!((today, max), (Some(39), Some(10000)), "the day's figures");
    let (today, max) = store
        .day_quota("2026-11-29".parse().expect("day"))
        .await
        .expect("day quota");
    assert_eq!((today, max), (None, None), "no answer arrived that day");
}

#[tokio::test]
async fn latest_snapshots_follow_every_write_to_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(options(&dir)).await.expect("opens");
    let videos = [
        "7300000000000000201",
        "7300000000000000202",
        "7300000000000000203",
    ];
    store
        .add_videos(&ids(&videos), None, Utc::now())
        .await
        .expect("add");
    let start: chrono::DateTime<Utc> = "2026-11-01T00:00:00Z".parse().expect("time");
    let info = "today:1 max:100";
    // Video 1 changes twice, video 2 is seen again unchanged, video 3 is seen twice, then changes.
    let script = [
        (0, "a1"),
        (1, "b1"),
        (2, "c1"),
        (0, "a2"),
        (1, "b1"),
        (1, "b1"),
        (0, "a3"),
        (2, "c1"),
        (2, "c2"),
    ];
    for (step, (video, title)) in script.iter().enumerate() {
        let at = start + chrono::Duration::minutes(step as i64);
        record_ok(&store, videos[*video], at, title, info).await;
    }
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    assert_eq!(
        checked_latest(&pool).await,
        [
            "7300000000000000201 v3 a3 x1",
            "7300000000000000202 v1 b1 x3",
            "7300000000000000203 v2 c2 x1"
        ]
    );
    // The version it replaced keeps its sightings (migration 0006 settles them in its row).
    assert_eq!(
        texts(&pool, SIGHTINGS).await,
        [
            "7300000000000000201 v1 x1 at 2026-11-01T00:00:00.000Z",
            "7300000000000000201 v2 x1 at 2026-11-01T00:03:00.000Z",
            "7300000000000000201 v3 x1 at 2026-11-01T00:06:00.000Z",
            "7300000000000000202 v1 x3 at 2026-11-01T00:05:00.000Z",
            "7300000000000000203 v1 x2 at 2026-11-01T00:07:00.000Z",
            "7300000000000000203 v2 x1 at 2026-11-01T00:08:00.000Z",
        ]
    );
    // Hand edits through SQL (of the table `snapshots` shows) are followed too: fixes of newest
    // versions (one seen three times, which it still is), the deletion of an older version,
    // deletions (of every version of videos 2 and 3, then of video 1's newest), a renumbering
    // past the newest.
    let edits = [
        (
            "UPDATE snapshot_versions SET title = 'fixed' \
             WHERE video_id = '7300000000000000201' AND version = 3",
            &[
                "7300000000000000201 v3 fixed x1",
                "7300000000000000202 v1 b1 x3",
                "7300000000000000203 v2 c2 x1",
            ][..],
        ),
        (
            "UPDATE snapshot_versions SET nick = 'nick, fixed' \
             WHERE video_id = '7300000000000000202' AND version = 1",
            &[
                "7300000000000000201 v3 fixed x1",
                "7300000000000000202 v1 b1 x3",
                "7300000000000000203 v2 c2 x1",
            ][..],
        ),
        (
            "UPDATE fetches SET snapshot_id = NULL WHERE snapshot_id IN (SELECT id FROM snapshots \
             WHERE video_id = '7300000000000000203' AND version = 2); \
             DELETE FROM snapshot_versions \
             WHERE video_id = '7300000000000000203' AND version = 2",
            &[
                "7300000000000000201 v3 fixed x1",
                "7300000000000000202 v1 b1 x3",
                "7300000000000000203 v1 c1 x2",
            ][..],
        ),
        (
            "UPDATE fetches SET snapshot_id = NULL \
             WHERE video_id IN ('7300000000000000202', '7300000000000000203'); \
             DELETE FROM snapshot_versions \
             WHERE video_id IN ('7300000000000000202', '7300000000000000203')",
            &["7300000000000000201 v3 fixed x1"],
        ),
        (
            "UPDATE fetches SET snapshot_id = NULL WHERE snapshot_id IN (SELECT id FROM snapshots \
             WHERE video_id = '7300000000000000201' AND version = 3); \
             DELETE FROM snapshot_versions \
             WHERE video_id = '7300000000000000201' AND version = 3",
            &["7300000000000000201 v2 a2 x1"],
        ),
        (
            "UPDATE snapshot_versions SET version = 9 \
             WHERE video_id = '7300000000000000201' AND version = 1",
            &["7300000000000000201 v9 a1 x1"],
        ),
    ];
    for (sql, latest) in edits {
        sqlx::raw_sql(sql)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(checked_latest(&pool).await, latest, "after {sql}");
    }
}

/// A database in `dir` with the schema douyin-watch shipped before migration `first_left_out`
/// (its number, "0003"), made by its own migrator from the migrations before it.
async fn database_as_shipped_before(dir: &tempfile::TempDir, first_left_out: &str) -> SqlitePool {
    std::fs::create_dir_all(dir.path().join("nested/folder")).expect("folder");
    let shipped = tempfile::tempdir().expect("tempdir");
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&migrations).expect("migrations") {
        let name = entry.expect("entry").file_name();
        if name.to_string_lossy().as_ref() < first_left_out {
            std::fs::copy(migrations.join(&name), shipped.path().join(&name)).expect("copy");
        }
    }
    let pool = SqlitePool::connect_with(options(dir).create_if_missing(true))
        .await
        .expect("connect");
    sqlx::migrate::Migrator::new(shipped.path())
        .await
        .expect("migrations")
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrate to before {first_left_out}: {e}"));
    pool
}

#[tokio::test]
async fn a_database_from_before_the_compact_tables_upgrades_with_every_row_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = database_as_shipped_before(&dir, "0003").await;
    // Rows as the old writer stored them: two versions of one video, one of another, a sample
    // per fetch (one with an api_info the view cannot rebuild), sample ids unlike fetch ids.
    sqlx::raw_sql(
        "INSERT INTO videos (video_id, added_at) VALUES \
           ('7300000000000000301', '2026-11-01T00:00:00.000Z'), \
           ('7300000000000000302', '2026-11-01T00:00:00.000Z'), \
           ('7300000000000000303', '2026-11-01T00:00:00.000Z'); \
         INSERT INTO snapshots (id, video_id, version, content_hash, first_seen_at, last_seen_at, \
           seen_count, title, item_imgs, raw, changed_fields) VALUES \
           (1, '7300000000000000301', 1, 'h1', '2026-11-01T01:00:00.000Z', '2026-11-01T01:00:00.000Z', 1, 'one', '[]', '{\"a\":1}', '[]'), \
           (2, '7300000000000000302', 1, 'h2', '2026-11-01T01:00:01.000Z', '2026-11-01T02:00:01.000Z', 2, 'two', '[]', '{\"b\":1}', '[]'), \
           (3, '7300000000000000301', 2, 'h3', '2026-11-01T02:00:00.000Z', '2026-11-01T02:00:00.000Z', 1, 'one again', '[]', '{\"a\":2}', '[\"title\"]'); \
         INSERT INTO fetches (id, video_id, started_at, finished_at, attempt, outcome, error_code, charged, snapshot_id) VALUES \
           (10, '7300000000000000301', '2026-11-01T00:59:59.900Z', '2026-11-01T01:00:00.000Z', 1, 'ok', '0000', 1, 1), \
           (11, '7300000000000000302', '2026-11-01T01:00:00.900Z', '2026-11-01T01:00:01.000Z', 1, 'ok', '0000', 1, 2), \
           (12, '7300000000000000302', '2026-11-01T02:00:00.900Z', '2026-11-01T02:00:01.000Z', 1, 'ok', '0000', 1, 2), \
           (13, '7300000000000000301', '2026-11-01T01:59:59.900Z', '2026-11-01T02:00:00.000Z', 1, 'ok', '0000', 1, 3), \
           (14, '7300000000000000303', '2026-11-01T16:00:00.000Z', '2026-11-01T16:00:00.500Z', 1, 'api_error', '5000', 0, NULL); \
         INSERT INTO quota_samples (id, fetch_id, observed_at, quota_day, server_time, calls_today, \
           calls_max, calls_total, calls_total_parts, expires_on, api_info) VALUES \
           (1, 10, '2026-11-01T01:00:00.000Z', '2026-11-01', 'Beijing/2026-11-01 09:00:00', 1, 10000, 5, '[1,2,2]', '2030-12-31', 'today:1 max:10000 all[5=1+2+2];expires:2030-12-31'), \
           (2, 11, '2026-11-01T01:00:01.000Z', '2026-11-01', NULL, 2, 10000, NULL, NULL, NULL, 'today:2 max:10000'), \
           (3, 12, '2026-11-01T02:00:01.000Z', '2026-11-01', NULL, 3, 10000, NULL, NULL, NULL, 'max:10000 today:3'), \
           (4, 13, '2026-11-01T02:00:00.000Z', '2026-11-01', NULL, NULL, NULL, NULL, NULL, NULL, 'garbled'), \
           (5, 14, '2026-11-01T16:00:00.500Z', '2026-11-02', NULL, 0, 10000, NULL, NULL, NULL, 'today:0 max:10000');",
    )
    .execute(&pool)
    .await
    .expect("old rows");
    let quota_before = texts(&pool, QUOTA_ROWS).await;
    let latest_before = texts(&pool, LATEST_ROWS).await;
    let snapshots_before = texts(&pool, SNAPSHOT_ROWS).await;
    pool.close().await;

    let store = Store::open(options(&dir)).await.expect("upgrades");
    assert_eq!(store.integrity_check().await.expect("check"), "ok");
    store.close().await;
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    assert_eq!(texts(&pool, QUOTA_ROWS).await, quota_before);
    assert_eq!(
        texts(
            &pool,
            "SELECT s.observed_at FROM quota_samples AS s \
             JOIN fetches AS f ON f.id = s.fetch_id AND f.started_at = s.observed_at"
        )
        .await
        .len(),
        5,
        "a sample's time is its call's start"
    );
    assert_eq!(texts(&pool, LATEST_ROWS).await, latest_before);
    assert_eq!(texts(&pool, SNAPSHOT_ROWS).await, snapshots_before);
    assert_eq!(
        texts(&pool, SIGHTINGS).await,
        [
            "7300000000000000301 v1 x1 at 2026-11-01T01:00:00.000Z",
            "7300000000000000301 v2 x1 at 2026-11-01T02:00:00.000Z",
            "7300000000000000302 v1 x2 at 2026-11-01T02:00:01.000Z",
        ]
    );
    assert_eq!(
        texts(
            &pool,
            "SELECT fetch_id || ':' || COALESCE(api_info, '-') FROM quota_readings ORDER BY fetch_id"
        )
        .await,
        ["10:-", "11:-", "12:max:10000 today:3", "13:garbled", "14:-"],
        "only the texts the view cannot rebuild are kept"
    );
}

#[tokio::test]
async fn an_unusable_success_answer_is_known_by_its_key_after_the_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = database_as_shipped_before(&dir, "0008").await;
    // As the old writer stored them: the key of a 0000 failure lost in `last_error_code`.
    sqlx::raw_sql(
        "INSERT INTO videos (video_id, added_at, status, last_error_code) VALUES \
           ('7300000000000000401', '2026-11-01T00:00:00.000Z', 'failing', '0000'), \
           ('7300000000000000402', '2026-11-01T00:00:00.000Z', 'failing', '4000'); \
         INSERT INTO fetches (video_id, started_at, finished_at, attempt, outcome, error_code, \
           error, charged) VALUES \
           ('7300000000000000401', '2026-11-01T01:00:00.000Z', '2026-11-01T01:00:00.100Z', 1, \
            'decode_error', '0000', 'missing_item', 1), \
           ('7300000000000000401', '2026-11-01T02:00:00.000Z', '2026-11-01T02:00:00.100Z', 1, \
            'decode_error', '0000', 'item_mismatch', 1), \
           ('7300000000000000402', '2026-11-01T02:00:00.000Z', '2026-11-01T02:00:00.100Z', 1, \
            'api_error', '4000', NULL, 0);",
    )
    .execute(&pool)
    .await
    .expect("old rows");
    pool.close().await;

    let store = Store::open(options(&dir)).await.expect("upgrades");
    store.close().await;
    let pool = SqlitePool::connect_with(options(&dir))
        .await
        .expect("connect");
    assert_eq!(
        texts(
            &pool,
            "SELECT video_id || ' ' || last_error_code FROM videos ORDER BY video_id"
        )
        .await,
        [
            "7300000000000000401 item_mismatch",
            "7300000000000000402 4000"
        ],
        "the key of the video's latest such failure"
    );
    assert_eq!(
        texts(
            &pool,
            "SELECT code || ' ' || count || ' ' || charged || ' ' || meaning \
             FROM failures_by_code ORDER BY code"
        )
        .await,
        [
            "4000 1 0 Server internal error (服务器内部错误)",
            "item_mismatch 1 1 decode_error",
            "missing_item 1 1 decode_error",
        ]
    );
}

/// `oldest_unstored_wait` says how long a stored attempt has waited while another process holds
/// the write lock, and forgets an attempt whose caller went away (a pass dropped): counting it
/// would hold back the next pass's calls, the only thing that would write it, for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_unstored_wait_ignores_attempts_whose_caller_went_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(options(&dir)).await.expect("open");
    let now = Utc::now();
    let watched = ids(&["7118694749548072205", "7118694749548072206"]);
    store.add_videos(&watched, None, now).await.expect("add");
    assert_eq!(store.oldest_unstored_wait(), None, "nothing waits");

    let path = dir.path().join("nested/folder/test.db");
    let other = rusqlite::Connection::open(&path).expect("another process's connection");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");

    // The first attempt's group waits for the lock; the second waits behind it, then its caller
    // goes away.
    let writing = tokio::spawn({
        let store = store.clone();
        async move {
            record_ok(&store, "7118694749548072205", now, "one", "ok").await;
        }
    });
    // Past the group-commit window: the first attempt's group is taken and being written.
    while store
        .oldest_unstored_wait()
        .is_none_or(|waited| waited < std::time::Duration::from_millis(200))
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let dropped = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        record_ok(&store, "7118694749548072206", now, "two", "ok"),
    )
    .await;
    assert!(dropped.is_err(), "the second attempt cannot be stored yet");
    assert!(
        store
            .oldest_unstored_wait()
            .is_some_and(|waited| waited >= std::time::Duration::from_millis(300)),
        "the first attempt waits for the lock"
    );

    other.execute_batch("COMMIT").expect("released");
    writing.await.expect("the first attempt is stored");
    assert_eq!(
        store.oldest_unstored_wait(),
        None,
        "only an attempt nobody waits for is left"
    );
    store.close().await;
}
