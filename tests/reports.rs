//! The reports as a user meets them: `quota` (figures, the day chart, the forecast, warnings),
//! `history --diff`, `export` (CSV and JSON Lines, filters, a large table) and `completions`.
//!
//! Data goes into a real SQLite file in a tempdir through the store's own write path
//! (`Store::record_attempt`), or for bulk rows through one SQL transaction on a separate
//! connection; the commands run as the real binary against that file.

use std::collections::BTreeMap;
use std::process::Output;

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use chrono_tz::Asia::Shanghai;
use douyin_watch::api_info::ApiInfo;
use douyin_watch::attempt::Outcome;
use douyin_watch::content::Content;
use douyin_watch::response::RawItem;
use douyin_watch::store::{
    AttemptRecord, QuotaInput, SnapshotInput, Store, VideoStatus, timestamp,
};
use douyin_watch::video_id::VideoId;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection, ValueRef};

const VIDEO_A: &str = "7300000000000000001";
const VIDEO_B: &str = "7300000000000000002";
const VIDEO_C: &str = "7300000000000000003";

/// A scratch database and the store writing to it.
struct Db {
    dir: tempfile::TempDir,
    store: Store,
}

impl Db {
    async fn new() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(SqliteConnectOptions::new().filename(dir.path().join("test.db")))
            .await
            .expect("store opens");
        Db { dir, store }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("test.db").display())
    }

    async fn watch(&self, ids: &[&str]) {
        let ids: Vec<VideoId> = ids.iter().map(|id| id.parse().expect("id")).collect();
        self.store
            .add_videos(&ids, None, Utc::now() - Duration::days(30))
            .await
            .expect("add");
    }

    /// A successful fetch of `video` at `at` seeing `title` and `nick`, with the quota reading
    /// `api_info` when given.
    async fn ok(
        &self,
        video: &str,
        at: DateTime<Utc>,
        title: &str,
        nick: &str,
        api_info: Option<&str>,
    ) {
        let content = Content {
            title: Some(title.to_owned()),
            nick: Some(nick.to_owned()),
            item_type: Some("video".to_owned()),
            item_imgs: vec!["https://p3.douyinpic.com/a.jpg".to_owned()],
            ..Content::default()
        };
        let raw = serde_json::json!({ "num_iid": video, "title": title, "nick": nick }).to_string();
        let hash = content.hash();
        let parsed = api_info.map(|text| ApiInfo::parse(text).expect("api_info parses"));
        self.store
            .record_attempt(AttemptRecord {
                pass_id: None,
                video_id: video,
                started_at: at - Duration::milliseconds(300),
                finished_at: at,
                attempt: 1,
                outcome: Outcome::Ok,
                http_status: Some(200),
                error_code: Some("0000"),
                error: None,
                reason: None,
                message: None,
                charged: true,
                request_id: Some("req-1"),
                snapshot: Some(SnapshotInput {
                    content,
                    content_hash: hash,
                    raw: RawItem::new(raw),
                }),
                quota: api_info.map(|text| QuotaInput {
                    api_info: text,
                    parsed: parsed.as_ref(),
                    server_time: Some("Beijing/2026-11-29 14:25:29"),
                }),
                video_status: VideoStatus::Ok,
            })
            .await
            .expect("record ok");
    }

    /// A failed fetch (an HTTP 502, not charged) of `video` at `at`.
    async fn failed(&self, video: &str, at: DateTime<Utc>) {
        self.store
            .record_attempt(AttemptRecord {
                pass_id: None,
                video_id: video,
                started_at: at - Duration::milliseconds(100),
                finished_at: at,
                attempt: 1,
                outcome: Outcome::HttpError,
                http_status: Some(502),
                error_code: None,
                error: Some("http_502"),
                reason: None,
                message: Some("HTTP 502, body \"bad gateway, \"upstream\"\""),
                charged: false,
                request_id: None,
                snapshot: None,
                quota: None,
                video_status: VideoStatus::Failing,
            })
            .await
            .expect("record failure");
    }

    /// A separate connection, as a user's `sqlite3` would have.
    async fn connection(&self) -> SqliteConnection {
        SqliteConnectOptions::new()
            .filename(self.dir.path().join("test.db"))
            .connect()
            .await
            .expect("connection")
    }

    /// Every row of `table` by id, every value as SQLite's own text conversion (NULL as None).
    async fn table(&self, table: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
        let mut connection = self.connection().await;
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(table)
                .fetch_all(&mut connection)
                .await
                .expect("columns");
        let rows: Vec<SqliteRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM {table} ORDER BY id"
        )))
        .fetch_all(&mut connection)
        .await
        .expect("rows");
        let rows = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        if row.try_get_raw(i).expect("value").is_null() {
                            None
                        } else {
                            Some(row.try_get_unchecked::<String, _>(i).expect("as text"))
                        }
                    })
                    .collect()
            })
            .collect();
        (columns, rows)
    }

    /// Runs the real binary on this database.
    fn run(&self, args: &[&str]) -> Output {
        self.run_on(&self.dir.path().join("test.db"), args)
    }

    /// Runs the real binary on the database file named `database` (a link to this one, say).
    fn run_on(&self, database: &std::path::Path, args: &[&str]) -> Output {
        let mut command = assert_cmd::cargo::cargo_bin_cmd!("douyin-watch");
        for (key, _) in std::env::vars() {
            if key.starts_with("DOUYIN_WATCH") || key == "RUST_LOG" || key == "NO_COLOR" {
                command.env_remove(key);
            }
        }
        command
            .env(
                "DOUYIN_WATCH__DATABASE__URL",
                format!("sqlite://{}", database.display()),
            )
            .env("DOUYIN_WATCH__LOG__LEVEL", "warn")
            .args(args);
        command.output().expect("the binary runs")
    }

    /// Runs with extra environment variables.
    fn run_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut command = assert_cmd::cargo::cargo_bin_cmd!("douyin-watch");
        for (key, _) in std::env::vars() {
            if key.starts_with("DOUYIN_WATCH") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command
            .env("DOUYIN_WATCH__DATABASE__URL", self.url())
            .env("DOUYIN_WATCH__LOG__LEVEL", "warn")
            .envs(env.iter().copied())
            .args(args);
        command.output().expect("the binary runs")
    }
}

/// Standard output of a run that must have exited 0.
fn stdout_of(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn beijing_today() -> NaiveDate {
    Utc::now().with_timezone(&Shanghai).date_naive()
}

/// Today's Beijing midnight, in UTC.
fn beijing_midnight() -> DateTime<Utc> {
    douyin_watch::quota::next_quota_reset(Utc::now()) - Duration::days(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_json_has_the_figures_the_day_chart_the_forecast_and_warnings() {
    let db = Db::new().await;
    db.watch(&[VIDEO_A, VIDEO_B, VIDEO_C]).await;
    let today = beijing_today();
    let expires = today.checked_add_days(Days::new(10)).expect("date");
    let midnight = beijing_midnight();
    // Two days ago: onebound counted 50; we made one call.
    let two_days_ago = midnight - Duration::days(2) + Duration::hours(3);
    db.ok(
        VIDEO_A,
        two_days_ago,
        "t",
        "n",
        Some(&format!("today:50 max:200 expires:{expires}")),
    )
    .await;
    // Today, a minute after Beijing midnight: two charged calls, one failure; onebound counts 120.
    let this_morning = midnight + Duration::minutes(1);
    db.ok(
        VIDEO_A,
        this_morning,
        "t",
        "n",
        Some(&format!("today:119 max:200 expires:{expires}")),
    )
    .await;
    db.ok(
        VIDEO_B,
        this_morning,
        "t",
        "n",
        Some(&format!("today:120 max:200 expires:{expires}")),
    )
    .await;
    db.failed(VIDEO_C, this_morning).await;

    // Every 5 minutes: 288 passes × 3 videos = 864 calls a day, more than 200 - 10.
    let env = [
        ("DOUYIN_WATCH__SCHEDULE__CRON", "0 */5 * * * *"),
        ("DOUYIN_WATCH__QUOTA__RESERVE", "10"),
    ];
    let report: Value =
        serde_json::from_str(&stdout_of(&db.run_env(&env, &["quota", "--json"]))).expect("JSON");
    assert_eq!(report["quota_day"], today.to_string(), "{report}");
    assert_eq!(report["today"], 120, "{report}");
    assert_eq!(report["max"], 200, "{report}");
    assert_eq!(report["remaining"], 80, "{report}");
    assert_eq!(report["percent_used"], 60.0, "{report}");
    assert_eq!(report["expires_on"], expires.to_string(), "{report}");
    assert_eq!(report["expires_in_days"], 10, "{report}");
    let resets_in = report["resets_in_seconds"].as_i64().expect("seconds");
    assert!((0..=86_400).contains(&resets_in), "{report}");

    let days = report["days"].as_array().expect("days");
    assert_eq!(days.len(), 14, "{report}");
    assert_eq!(days[13]["day"], today.to_string());
    assert_eq!(days[13]["used"], 120);
    assert_eq!(days[13]["max"], 200);
    assert_eq!(days[13]["calls"], 3, "the failure is a call too");
    assert_eq!(days[13]["charged"], 2);
    let two_days_back = today.checked_sub_days(Days::new(2)).expect("date");
    assert_eq!(days[11]["day"], two_days_back.to_string());
    assert_eq!(days[11]["used"], 50);
    assert_eq!(days[11]["calls"], 1);
    assert_eq!(days[12]["used"], Value::Null);
    assert_eq!(days[12]["calls"], 0);
    assert_eq!(
        days[0]["day"],
        today
            .checked_sub_days(Days::new(13))
            .expect("date")
            .to_string()
    );

    let forecast = &report["forecast"];
    assert_eq!(forecast["source"], "schedule", "{forecast}");
    assert_eq!(forecast["cron"], "0 */5 * * * *");
    assert_eq!(forecast["timezone"], "Asia/Shanghai");
    assert_eq!(forecast["active_videos"], 3);
    assert_eq!(forecast["passes_per_day"], 288);
    assert_eq!(forecast["calls_per_pass"], 3);
    assert_eq!(forecast["calls_per_day"], 864);
    assert_eq!(forecast["usable_per_day"], 190);
    assert_eq!(forecast["covered"], false);
    assert_eq!(forecast["usable_left_today"], 70);
    // 70 calls are 23 passes of 3 and one short pass: unless the day ends within two hours, the
    // quota runs out today.
    let passes_left = forecast["passes_left_today"].as_u64().expect("passes");
    assert_eq!(forecast["calls_left_today"], passes_left * 3);
    assert_eq!(forecast["runs_out_today"], passes_left > 23, "{forecast}");

    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().expect("text"))
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("expires on {expires}, in 10 days"))),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("needs 864 calls a day")),
        "{warnings:?}"
    );

    // The same as text: the figures, the chart with bars, the forecast and the warnings.
    let text = stdout_of(&db.run_env(&env, &["quota"]));
    for part in [
        "60.0%",
        &format!("{expires} (10 days left)"),
        "calls per Beijing day",
        "█",
        "288 passes a day × 3 active videos = 864 calls a day",
        "NOT covered",
        "warning: the API key expires on",
        "warning: the schedule needs 864 calls a day",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
    let today_line = text
        .lines()
        .find(|l| l.starts_with(&today.to_string()))
        .expect("today's line");
    assert!(
        today_line.trim_end().ends_with("120        3        2"),
        "{today_line:?}"
    );
    assert!(!text.contains('\x1b'), "no colour when not a terminal");

    // A schedule that fits, with a far expiry: no warning.
    let quiet = [("DOUYIN_WATCH__SCHEDULE__CRON", "0 0 9 * * *")];
    let report: Value =
        serde_json::from_str(&stdout_of(&db.run_env(&quiet, &["quota", "--json"]))).expect("JSON");
    assert_eq!(report["forecast"]["passes_per_day"], 1, "{report}");
    assert_eq!(report["forecast"]["covered"], true, "{report}");
    assert_eq!(
        report["warnings"].as_array().map(Vec::len),
        Some(1),
        "only the expiry: {report}"
    );

    // A video found gone is called once per retry.not_found_recheck (7 days), not every pass.
    sqlx::query("UPDATE videos SET status = 'not_found' WHERE video_id = ?")
        .bind(VIDEO_A)
        .execute(&mut db.connection().await)
        .await
        .expect("one video gone");
    let report: Value =
        serde_json::from_str(&stdout_of(&db.run_env(&env, &["quota", "--json"]))).expect("JSON");
    let forecast = &report["forecast"];
    assert_eq!(forecast["active_videos"], 3, "{forecast}");
    assert_eq!(forecast["calls_per_pass"], 2, "{forecast}");
    assert_eq!(forecast["not_found_rechecks_per_day"], 1, "{forecast}");
    assert_eq!(forecast["calls_per_day"], 288 * 2 + 1, "{forecast}");
    let text = stdout_of(&db.run_env(&env, &["quota"]));
    assert!(
        text.contains(
            "288 passes a day × 2 videos + 1 call(s) checking again 1 found gone \
             (once per retry.not_found_recheck) = 577 calls a day"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_the_api_cannot_drive_the_terminal_in_any_report() {
    let db = Db::new().await;
    db.watch(&[VIDEO_A]).await;
    let start = Utc::now() - Duration::hours(2);
    let hostile = "a\x1b[31mRED\x1b[0m\r\nline\u{202e}desrever\0end";
    db.ok(VIDEO_A, start, "plain", "nick\x07", None).await;
    db.ok(
        VIDEO_A,
        start + Duration::hours(1),
        hostile,
        "nick\x07",
        None,
    )
    .await;
    for args in [
        &["history", VIDEO_A][..],
        &["history", VIDEO_A, "--diff"],
        &["watch", "list"],
    ] {
        let text = stdout_of(&db.run(args));
        assert!(text.contains("RED"), "{args:?}: {text:?}");
        for raw in ['\x1b', '\r', '\0', '\x07', '\u{202e}'] {
            assert!(!text.contains(raw), "{args:?} passed {raw:?}: {text:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_diff_shows_each_change_as_before_and_after() {
    let db = Db::new().await;
    db.watch(&[VIDEO_A, VIDEO_B]).await;
    let start = Utc::now() - Duration::hours(5);
    db.ok(VIDEO_A, start, "old title", "阿七", None).await;
    db.ok(
        VIDEO_A,
        start + Duration::hours(1),
        "old title",
        "阿七",
        None,
    )
    .await;
    db.ok(
        VIDEO_A,
        start + Duration::hours(2),
        "new title",
        "阿七",
        None,
    )
    .await;
    db.ok(
        VIDEO_A,
        start + Duration::hours(3),
        "new title",
        "阿七在路上",
        None,
    )
    .await;

    let text = stdout_of(&db.run(&["history", VIDEO_A, "--diff"]));
    assert!(text.contains("title: old title → new title"), "{text}");
    assert!(text.contains("nick: 阿七 → 阿七在路上"), "{text}");
    assert!(text.contains("version 1 ·"), "{text}");
    assert!(text.contains("(first version)"), "{text}");
    assert!(text.contains("seen 2 times"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "plain text when stdout is not a terminal: {text:?}"
    );
    // Each change sits under its own version.
    let v2 = text.find("version 2 ·").expect("version 2");
    let v3 = text.find("version 3 ·").expect("version 3");
    let title = text.find("title: old").expect("title change");
    let nick = text.find("nick: ").expect("nick change");
    assert!(v2 < title && title < v3 && v3 < nick, "{text}");
    assert!(!text[v2..v3].contains("nick:"), "{text}");

    let diffs: Value = serde_json::from_str(&stdout_of(
        &db.run(&["history", VIDEO_A, "--diff", "--json"]),
    ))
    .expect("JSON");
    let diffs = diffs.as_array().expect("versions");
    assert_eq!(diffs.len(), 3);
    assert_eq!(diffs[0]["changes"], serde_json::json!([]));
    assert_eq!(
        diffs[1]["changes"],
        serde_json::json!([{ "field": "title", "before": "old title", "after": "new title" }])
    );
    assert_eq!(diffs[2]["changes"][0]["field"], "nick");
    assert_eq!(diffs[1]["seen_count"], 1);

    // Without --diff: the versions with first seen, times seen and the changed fields.
    let text = stdout_of(&db.run(&["history", VIDEO_A]));
    assert!(text.contains("(first)"), "{text}");
    assert!(text.contains("title"), "{text}");
    assert!(text.contains("nick"), "{text}");

    // A watched video without snapshots, and one not watched.
    assert!(stdout_of(&db.run(&["history", VIDEO_B, "--diff"])).contains("no snapshot yet"));
    assert_eq!(
        db.run(&["history", VIDEO_C, "--diff"]).status.code(),
        Some(2)
    );
}

/// An export through a symbolic link leaves the link a link.
fn assert_is_link(path: &std::path::Path) {
    let meta = std::fs::symlink_metadata(path).expect("link");
    assert!(meta.file_type().is_symlink(), "{path:?} is still a link");
}

/// Fills the three tables with awkward text: commas, quotes, newlines, CJK, emoji, NULLs.
async fn awkward_rows(db: &Db) {
    db.watch(&[VIDEO_A, VIDEO_B]).await;
    let start = Utc::now() - Duration::hours(3);
    let info = "today:7 max:10000 all[104=39+33+32];expires:2030-12-31";
    db.ok(
        VIDEO_A,
        start,
        "a, \"quoted\"\ntitle 🎬",
        "阿七",
        Some(info),
    )
    .await;
    db.failed(VIDEO_B, start + Duration::minutes(1)).await;
    db.ok(
        VIDEO_A,
        start + Duration::minutes(2),
        "第二版\r\n标题",
        "阿七",
        Some("today:8 max:10000"),
    )
    .await;
    db.ok(
        VIDEO_B,
        start + Duration::minutes(3),
        "",
        "nick",
        Some("today: max:20000 all[=++];expires:2024-01-16"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_round_trips_every_column_of_every_table() {
    let db = Db::new().await;
    awkward_rows(&db).await;
    for (what, table) in [
        ("snapshots", "snapshots"),
        ("fetches", "fetches"),
        ("quota", "quota_samples"),
    ] {
        let (columns, rows) = db.table(table).await;
        assert!(!rows.is_empty(), "{table} has rows");
        let output = db.run(&["export", what]);
        let bytes = stdout_of(&output).into_bytes();
        // RFC 4180: CRLF after every record.
        assert!(bytes.ends_with(b"\r\n"), "{table}");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes.as_slice());
        let header: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            header, columns,
            "{table}: the header names every column in order"
        );
        let records: Vec<csv::StringRecord> = reader
            .records()
            .collect::<Result<_, _>>()
            .expect("valid CSV");
        assert_eq!(records.len(), rows.len(), "{table}");
        for (record, row) in records.iter().zip(&rows) {
            let expected: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("")).collect();
            let got: Vec<&str> = record.iter().collect();
            assert_eq!(got, expected, "{table}");
        }
        if table == "snapshots" {
            let raw = columns.iter().position(|c| c == "raw").expect("raw column");
            let changed = columns
                .iter()
                .position(|c| c == "changed_fields")
                .expect("column");
            for record in &records {
                let raw: Value = serde_json::from_str(&record[raw]).expect("raw is JSON text");
                assert!(raw["num_iid"].is_string());
                let changed: Value =
                    serde_json::from_str(&record[changed]).expect("changed_fields is JSON text");
                assert!(changed.is_array());
            }
        }

        // The same into a file.
        let path = db.dir.path().join(format!("{table}.csv"));
        let path_text = path.to_str().expect("UTF-8 path");
        let said = stdout_of(&db.run(&["export", what, "--output", path_text]));
        assert!(
            said.contains(&format!("wrote {} {table} row", rows.len())),
            "{said}"
        );
        assert_eq!(std::fs::read(&path).expect("file"), bytes, "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_round_trip_every_column_of_every_table() {
    let db = Db::new().await;
    awkward_rows(&db).await;
    for (what, table) in [
        ("snapshots", "snapshots"),
        ("fetches", "fetches"),
        ("quota", "quota_samples"),
    ] {
        let (columns, rows) = db.table(table).await;
        let text = stdout_of(&db.run(&["export", what, "--format", "jsonl"]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows.len(), "{table}: one line per row");
        for (line, row) in lines.iter().zip(&rows) {
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(line).expect("each line is a JSON object");
            let keys: Vec<&String> = object.keys().collect();
            let mut sorted_columns: Vec<&String> = columns.iter().collect();
            sorted_columns.sort();
            assert_eq!(keys, sorted_columns, "{table}: every column");
            // Keys come in column order on the line itself.
            let positions: Vec<usize> = columns
                .iter()
                .map(|c| line.find(&format!("\"{c}\":")).expect("key"))
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{table}: {line}");
            for (column, value) in columns.iter().zip(row) {
                let got = &object[column];
                match value {
                    None => assert!(got.is_null(), "{table}.{column}: {got}"),
                    Some(text) => {
                        let got_text = match got {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            other => panic!("{table}.{column}: unexpected {other}"),
                        };
                        assert_eq!(&got_text, text, "{table}.{column}");
                    }
                }
            }
            assert!(object["id"].is_i64(), "{table}: integers stay numbers");
        }
        if table == "fetches" {
            let first: Value = serde_json::from_str(lines[0]).expect("JSON");
            assert_eq!(first["charged"], 1);
            assert_eq!(first["http_status"], 200);
            assert_eq!(first["pass_id"], Value::Null);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_and_video_filter_the_rows() {
    let db = Db::new().await;
    db.watch(&[VIDEO_A, VIDEO_B]).await;
    let now = Utc::now();
    let old = now - Duration::days(3);
    let recent = now - Duration::hours(1);
    let info = Some("today:1 max:100");
    db.ok(VIDEO_A, old, "a1", "n", info).await;
    db.ok(VIDEO_B, old, "b1", "n", info).await;
    db.ok(VIDEO_A, recent, "a2", "n", info).await;
    db.failed(VIDEO_B, recent).await;

    let ids = |args: &[&str]| -> Vec<(String, String)> {
        let text = stdout_of(&db.run(args));
        text.lines()
            .map(|line| {
                let row: Value = serde_json::from_str(line).expect("JSON line");
                (
                    row["video_id"].as_str().unwrap_or("-").to_owned(),
                    row["id"].to_string(),
                )
            })
            .collect()
    };
    let videos = |rows: Vec<(String, String)>| -> Vec<String> {
        rows.into_iter().map(|(video, _)| video).collect()
    };
    let all = ["export", "fetches", "--format", "jsonl"];
    assert_eq!(videos(ids(&all)), [VIDEO_A, VIDEO_B, VIDEO_A, VIDEO_B]);
    assert_eq!(
        videos(ids(&[&all[..], &["--since", "1d"]].concat())),
        [VIDEO_A, VIDEO_B]
    );
    assert_eq!(
        videos(ids(&[&all[..], &["--video", VIDEO_A]].concat())),
        [VIDEO_A, VIDEO_A]
    );
    assert_eq!(
        videos(ids(
            &[&all[..], &["--video", VIDEO_B, "--since", "2h"]].concat()
        )),
        [VIDEO_B]
    );

    let snapshots = ["export", "snapshots", "--format", "jsonl"];
    assert_eq!(videos(ids(&snapshots)), [VIDEO_A, VIDEO_B, VIDEO_A]);
    assert_eq!(
        videos(ids(&[&snapshots[..], &["--since", "1d"]].concat())),
        [VIDEO_A]
    );
    assert_eq!(
        videos(ids(&[&snapshots[..], &["--video", VIDEO_B]].concat())),
        [VIDEO_B]
    );

    let quota = ["export", "quota", "--format", "jsonl"];
    assert_eq!(ids(&quota).len(), 3);
    assert_eq!(ids(&[&quota[..], &["--since", "1d"]].concat()).len(), 1);
    // CSV keeps its header even when nothing matches.
    let text = stdout_of(&db.run(&["export", "quota", "--since", "1s"]));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("id,fetch_id,observed_at,"), "{text}");

    // Bad usage exits 2: --video on the quota, a video not watched, a bad duration, an unknown
    // table, a folder that does not exist.
    let missing = db.dir.path().join("missing").join("out.csv");
    let missing = missing.to_str().expect("UTF-8 path");
    let folder = db.dir.path().to_str().expect("UTF-8 path");
    for args in [
        vec!["export", "fetches", "--output", missing],
        vec!["export", "fetches", "--output", folder],
        vec!["export", "fetches", "--output", "/dev/stdout"],
        vec!["export", "quota", "--video", VIDEO_A],
        vec!["export", "fetches", "--video", VIDEO_C],
        vec!["export", "fetches", "--since", "soon"],
        vec!["export", "everything"],
    ] {
        let output = db.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }

    // A symbolic link is written through, not replaced by a file.
    let target = db.dir.path().join("target.csv");
    std::fs::write(
        &target,
        "an older export, longer than the new one ".repeat(100),
    )
    .expect("old");
    let link = db.dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let link_text = link.to_str().expect("UTF-8 path");
    let output = db.run(&["export", "quota", "--output", link_text]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_is_link(&link);
    let written = std::fs::read_to_string(&target).expect("target");
    assert!(written.starts_with("id,fetch_id,observed_at,"), "{written}");
    assert_eq!(
        written.lines().count(),
        4,
        "the header and 3 rows, nothing older: {written}"
    );

    // A link to a file not there yet: the file is made, the link stays.
    let later = db.dir.path().join("later.csv");
    let dangling = db.dir.path().join("dangling.csv");
    std::os::unix::fs::symlink("later.csv", &dangling).expect("symlink");
    let output = db.run(&["export", "quota", "-o", dangling.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_is_link(&dangling);
    assert_eq!(std::fs::read_to_string(&later).expect("made"), written);

    // A chain of links to a file not there yet: the file at its end is made, every link stays.
    let first = db.dir.path().join("first.csv");
    std::os::unix::fs::symlink("second.csv", &first).expect("symlink");
    std::os::unix::fs::symlink("third.csv", db.dir.path().join("second.csv")).expect("symlink");
    let output = db.run(&["export", "quota", "-o", first.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    for link in ["first.csv", "second.csv"] {
        assert_is_link(&db.dir.path().join(link));
    }
    assert_eq!(
        std::fs::read_to_string(db.dir.path().join("third.csv")).expect("made"),
        written
    );
    // A loop of links is refused, and stays as it was.
    let loop_a = db.dir.path().join("loop-a.csv");
    std::os::unix::fs::symlink("loop-b.csv", &loop_a).expect("symlink");
    std::os::unix::fs::symlink("loop-a.csv", db.dir.path().join("loop-b.csv")).expect("symlink");
    let output = db.run(&["export", "quota", "-o", loop_a.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("too many levels of symbolic links"),
        "{output:?}"
    );
    for link in ["loop-a.csv", "loop-b.csv"] {
        assert_is_link(&db.dir.path().join(link));
    }

    // The database itself and the files SQLite keeps beside it, there or not, by their names
    // or through links (also when the database is named through a link), are never written.
    let database = db.dir.path().join("test.db");
    let to_database = db.dir.path().join("to-database.csv");
    std::os::unix::fs::symlink(&database, &to_database).expect("symlink");
    let journal = db.dir.path().join("test.db-journal");
    let before = std::fs::read(&database).expect("database");
    for path in [&database, &to_database, &journal] {
        let output = db.run(&["export", "quota", "-o", path.to_str().expect("UTF-8")]);
        assert_eq!(output.status.code(), Some(2), "{path:?}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("is the database itself"),
            "{output:?}"
        );
        assert_eq!(
            std::fs::read(&database).expect("database"),
            before,
            "{path:?}"
        );
    }
    assert!(!journal.exists());
    let linked_database = db.dir.path().join("linked.db");
    std::os::unix::fs::symlink(&database, &linked_database).expect("symlink");
    let wal = db.dir.path().join("test.db-wal");
    let output = db.run_on(
        &linked_database,
        &["export", "quota", "-o", wal.to_str().expect("UTF-8")],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_fetches_stream_out_whole_and_in_order() {
    const ROWS: i64 = 20_000;
    let db = Db::new().await;
    db.watch(&[VIDEO_A, VIDEO_B]).await;
    let now = Utc::now();
    let recent = timestamp(now - Duration::hours(1));
    let old = timestamp(now - Duration::days(10));
    {
        let mut connection = db.connection().await;
        let mut tx = connection.begin().await.expect("transaction");
        for i in 1..=ROWS {
            // Even ids are recent, odd ones old; A and B alternate in blocks of 3.
            let at = if i % 2 == 0 { &recent } else { &old };
            let video = if (i / 3) % 2 == 0 { VIDEO_A } else { VIDEO_B };
            sqlx::query(
                "INSERT INTO fetches (id, video_id, started_at, finished_at, attempt, outcome, \
                 http_status, error_code, charged, message) \
                 VALUES (?, ?, ?, ?, 1, 'ok', 200, '0000', 1, ?)",
            )
            .bind(i)
            .bind(video)
            .bind(at)
            .bind(at)
            .bind(format!("row {i}, \"quoted\""))
            .execute(&mut *tx)
            .await
            .expect("insert");
        }
        tx.commit().await.expect("commit");
    }

    let text = stdout_of(&db.run(&["export", "fetches"]));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let id_column = reader
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "id")
        .expect("id column");
    let ids: Vec<i64> = reader
        .records()
        .map(|r| r.expect("record")[id_column].parse().expect("id"))
        .collect();
    assert_eq!(
        ids,
        (1..=ROWS).collect::<Vec<_>>(),
        "every row once, in id order"
    );

    let text = stdout_of(&db.run(&["export", "fetches", "--format", "jsonl", "--since", "2h"]));
    let ids: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    assert_eq!(ids, (1..=ROWS).filter(|i| i % 2 == 0).collect::<Vec<_>>());

    let text = stdout_of(&db.run(&[
        "export", "fetches", "--format", "jsonl", "--since", "2h", "--video", VIDEO_B,
    ]));
    let expected: Vec<i64> = (1..=ROWS)
        .filter(|i| i % 2 == 0 && (i / 3) % 2 == 1)
        .collect();
    let ids: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    assert_eq!(ids, expected);

    // Into a file: the whole export, and no partial file left beside it.
    let path = db.dir.path().join("fetches.jsonl");
    let said = stdout_of(&db.run(&[
        "export",
        "fetches",
        "--format",
        "jsonl",
        "-o",
        path.to_str().expect("UTF-8 path"),
    ]));
    assert!(said.contains("wrote 20000 fetches rows"), "{said}");
    let written = std::fs::read_to_string(&path).expect("file");
    assert_eq!(written.lines().count(), ROWS as usize);
    let leftovers: Vec<_> = std::fs::read_dir(db.dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let mut scripts = BTreeMap::new();
    for shell in ["bash", "zsh", "fish"] {
        let mut command = assert_cmd::cargo::cargo_bin_cmd!("douyin-watch");
        command.env_remove("DOUYIN_WATCH__DATABASE__URL");
        let output = command.args(["completions", shell]).output().expect("runs");
        let text = stdout_of(&output);
        assert!(text.contains("douyin-watch"), "{shell}: {text}");
        assert!(
            text.contains("export"),
            "{shell}: the subcommands are completed"
        );
        scripts.insert(shell, text);
    }
    assert!(
        scripts["bash"].contains("complete -F"),
        "{}",
        scripts["bash"]
    );
    assert!(scripts["zsh"].starts_with("#compdef douyin-watch"));
    let mut command = assert_cmd::cargo::cargo_bin_cmd!("douyin-watch");
    let output = command
        .args(["completions", "tcsh"])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is bad usage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_gauges_start_a_new_beijing_day_at_zero() {
    let db = Db::new().await;
    let nothing = db.store.gauge_figures(Utc::now()).await.expect("figures");
    assert_eq!((nothing.today, nothing.max), (None, None), "no answer ever");

    db.watch(&[VIDEO_A]).await;
    let yesterday = beijing_midnight() - Duration::hours(2);
    db.ok(VIDEO_A, yesterday, "t", "n", Some("today:24 max:10000"))
        .await;
    let figures = db.store.gauge_figures(Utc::now()).await.expect("figures");
    assert_eq!(
        (figures.today, figures.max),
        (Some(0), Some(10000)),
        "yesterday's count is not today's"
    );
    db.ok(VIDEO_A, Utc::now(), "t", "n", Some("today:3 max:12000"))
        .await;
    let figures = db.store.gauge_figures(Utc::now()).await.expect("figures");
    assert_eq!((figures.today, figures.max), (Some(3), Some(12000)));
    assert_eq!(figures.paused_until, None);

    // A pause in force is a gauge of its own: passes it stops still complete.
    let until = Utc::now() + Duration::hours(1);
    db.store
        .insert_pause(&douyin_watch::store::Pause {
            created_at: timestamp(Utc::now()),
            until: timestamp(until),
            cause: "account_error".to_owned(),
            error_code: Some("4005".to_owned()),
            message: "bad secret".to_owned(),
        })
        .await
        .expect("pause");
    let figures = db.store.gauge_figures(Utc::now()).await.expect("figures");
    assert_eq!(
        figures.paused_until.map(|t| t.timestamp_millis()),
        Some(until.timestamp_millis())
    );
}
