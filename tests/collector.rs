//! Collection passes against the real simulator over loopback HTTP and a real SQLite file.
//!
//! Each test drives `Collector::run_pass` directly (no cron) and checks what reached the database
//! and how many requests the simulator saw: versions, the error-code policy, the money rules.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{Days, Utc};
use douyin_watch::collector::{PassReport, StopReason, Trigger};
use douyin_watch::simulator::{Scripted, SimulatorConfig};
use douyin_watch::store::timestamp;
use serde_json::{Value, json};
use support::{API_SECRET, PassHarness, column, fixture_item, fixture_item_for, ids_starting};
use tokio_util::sync::CancellationToken;

const ID_A: &str = "7118694749548072205";

/// 19-digit ids for tests: 7100000000000000000 + n.
fn ids(n: usize) -> Vec<String> {
    ids_starting(71, n)
}

/// A harness with this file's tuning (`api.timeout` 2 s, fast retries), then `settings`.
async fn harness(simulator: SimulatorConfig, settings: &[(&str, &str)]) -> PassHarness {
    PassHarness::builder(simulator)
        .set("API__TIMEOUT", "2s")
        .fast_retries()
        .set_all(settings)
        .start()
        .await
}

/// The error code of the account-level answer that stopped the pass, if one did.
fn account_stop_code(report: &PassReport) -> Option<&str> {
    match &report.stop {
        Some(StopReason::Account { code, .. }) => Some(code),
        _ => None,
    }
}

/// calls_today, calls_max, calls_total, calls_total_parts, expires_on, api_info.
type QuotaRow = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
);

#[tokio::test]
async fn versions_change_only_with_content_and_record_what_changed() {
    let h = harness(SimulatorConfig::default(), &[]).await;
    h.watch(&[ID_A]).await;
    let original = fixture_item();
    // Same content, but the CDN shard, signature, expiry and tracking parameters differ.
    let mut volatile = original.clone();
    volatile["video"]["pic_url"] = json!(
        "https://p3-sign.douyinpic.com/tos-cn-p-0015/fd7cd149586445ffa92a54d0b0c505e9~c5_300x400.jpeg?x-expires=1999999999&x-signature=zzz&from=1&s=PackSourceEnum_DOUYIN_REFLOW&se=false&sc=cover&l=2099"
    );
    volatile["detail_url"] = json!(
        "https://www.iesdouyin.com/share/video/7118694749548072205/?region=&mid=1&u_code=9&did=X&iid=Y&with_sec_did=1&titleType=title"
    );
    let mut retitled = original.clone();
    retitled["title"] = json!("a new title");
    h.simulator.script(
        ID_A,
        vec![
            Scripted::Item(original.clone()),
            Scripted::Item(volatile),
            Scripted::Item(retitled),
            Scripted::Item(original),
        ],
    );
    let mut new_versions = Vec::new();
    for _ in 0..4 {
        let report = h.pass().await;
        assert_eq!(report.totals.fetched_ok, 1, "{}", report.summary());
        new_versions.push(report.totals.new_versions);
    }
    assert_eq!(
        new_versions,
        [1, 0, 1, 1],
        "v1, same, title change, change back"
    );

    let versions = h
        .rows("SELECT version, seen_count, changed_fields, title, raw FROM snapshots ORDER BY version")
        .await;
    let summary: Vec<(i64, i64, String)> = versions
        .iter()
        .map(|r| {
            (
                column(r, "version"),
                column(r, "seen_count"),
                column(r, "changed_fields"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, 2, "[]".to_owned()),
            (2, 1, r#"["title"]"#.to_owned()),
            (3, 1, r#"["title"]"#.to_owned()),
        ]
    );
    let raw: String = column(&versions[0], "raw");
    let raw: Value = serde_json::from_str(&raw).expect("raw is JSON");
    assert_eq!(raw["num_iid"], json!(ID_A), "the raw item is kept");
    let fetch_links = h
        .scalar(
            "SELECT COUNT(*) FROM fetches f JOIN snapshots s ON s.id = f.snapshot_id \
             WHERE f.outcome = 'ok'",
        )
        .await;
    assert_eq!(
        fetch_links, 4,
        "every ok fetch points at the version it saw"
    );
    let latest = h.rows("SELECT version, title FROM latest_snapshots").await;
    assert_eq!(latest.len(), 1);
    assert_eq!(column::<i64>(&latest[0], "version"), 3);
}

#[tokio::test]
async fn the_simulators_rotating_urls_make_no_new_versions() {
    let h = harness(SimulatorConfig::default(), &[]).await;
    let all = ids(5);
    h.watch(&all).await;
    let first = h.pass().await;
    let second = h.pass().await;
    assert_eq!((first.totals.fetched_ok, first.totals.new_versions), (5, 5));
    assert_eq!(
        (second.totals.fetched_ok, second.totals.new_versions),
        (5, 0)
    );
    assert_eq!(h.scalar("SELECT MIN(seen_count) FROM snapshots").await, 2);
}

#[tokio::test]
async fn not_found_marks_the_video_is_charged_and_is_not_retried() {
    let gone = "7100000000000000404";
    let h = harness(
        SimulatorConfig {
            not_found: HashSet::from([gone.to_owned()]),
            ..SimulatorConfig::default()
        },
        &[],
    )
    .await;
    h.watch(&[gone, ID_A]).await;
    let report = h.pass().await;
    assert_eq!(report.totals.not_found, 1);
    assert_eq!(report.totals.fetched_ok, 1);
    assert_eq!(report.totals.charged_calls, 2);
    assert_eq!(
        h.simulator.stats().per_item.get(gone),
        Some(&1),
        "never retried"
    );
    let rows = h
        .rows("SELECT status, status_changed_at, last_error_code FROM videos WHERE video_id = '7100000000000000404'")
        .await;
    assert_eq!(column::<String>(&rows[0], "status"), "not_found");
    assert!(column::<Option<String>>(&rows[0], "status_changed_at").is_some());
    assert_eq!(column::<String>(&rows[0], "last_error_code"), "2000");
    let fetch = h
        .rows("SELECT outcome, error_code, error, reason, charged FROM fetches WHERE video_id = '7100000000000000404'")
        .await;
    assert_eq!(column::<String>(&fetch[0], "outcome"), "api_error");
    assert_eq!(column::<String>(&fetch[0], "error"), "item-not-found");
    assert_eq!(column::<String>(&fetch[0], "reason"), "没找到");
    assert!(column::<bool>(&fetch[0], "charged"));

    // Later passes leave it out (2000 is charged) until retry.not_found_recheck, 7 days by
    // default, has passed since its answer; then one call checks whether it is back.
    let second = h.pass().await;
    assert_eq!((second.totals.videos, second.totals.fetched_ok), (1, 1));
    assert_eq!(h.simulator.stats().per_item.get(gone), Some(&1), "left out");
    let writer = sqlx::SqlitePool::connect_with(h.connect_options())
        .await
        .expect("a write connection");
    for (days_ago, calls) in [(6, 1), (8, 2)] {
        sqlx::query("UPDATE videos SET last_fetched_at = ?1 WHERE video_id = ?2")
            .bind(timestamp(Utc::now() - Days::new(days_ago)))
            .bind(gone)
            .execute(&writer)
            .await
            .expect("update");
        let report = h.pass().await;
        assert_eq!(report.totals.not_found, calls - 1, "{days_ago} days after");
        assert_eq!(
            h.simulator.stats().per_item.get(gone),
            Some(&calls),
            "{days_ago} days after"
        );
    }
}

#[tokio::test]
async fn transient_failures_are_retried_with_one_row_per_attempt() {
    let h = harness(SimulatorConfig::default(), &[("RETRY__MAX_ATTEMPTS", "5")]).await;
    h.watch(&[ID_A]).await;
    h.simulator.script(
        ID_A,
        vec![
            Scripted::Code("4000".into()),
            Scripted::Http(502, "<html>502 Bad Gateway</html>".into()),
            Scripted::Reset,
            Scripted::Code("5000".into()),
        ],
    );
    let report = h.pass().await;
    assert_eq!(report.totals.fetched_ok, 1, "{}", report.summary());
    assert_eq!(report.totals.calls, 5);
    assert_eq!(report.totals.charged_calls, 1);
    let attempts = h
        .rows("SELECT attempt, outcome, COALESCE(error_code, error) AS code, http_status, charged FROM fetches ORDER BY id")
        .await;
    let seen: Vec<(i64, String, String)> = attempts
        .iter()
        .map(|r| {
            (
                column(r, "attempt"),
                column(r, "outcome"),
                column(r, "code"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "api_error".into(), "4000".into()),
            (2, "http_error".into(), "http_502".into()),
            (3, "transport_error".into(), "connection_reset".into()),
            (4, "api_error".into(), "5000".into()),
            (5, "ok".into(), "0000".into()),
        ]
    );
    assert_eq!(
        column::<Option<i64>>(&attempts[1], "http_status"),
        Some(502)
    );
    assert_eq!(
        h.scalar("SELECT COUNT(*) FROM failures").await,
        4,
        "the failures view lists every failed attempt"
    );
}

#[tokio::test]
async fn a_failure_a_retry_mends_leaves_the_video_ok_since_it_was() {
    let h = harness(SimulatorConfig::default(), &[("RETRY__MAX_ATTEMPTS", "3")]).await;
    h.watch(&[ID_A]).await;
    h.pass().await;
    let status = "SELECT status, status_changed_at, last_ok_at, last_error_code, \
                  consecutive_failures FROM videos";
    let before = h.rows(status).await;
    assert_eq!(column::<String>(&before[0], "status"), "ok");

    h.simulator.script(
        ID_A,
        vec![Scripted::Code("4000".into()), Scripted::Code("5000".into())],
    );
    let report = h.pass().await;
    assert_eq!(report.totals.fetched_ok, 1, "{}", report.summary());
    assert_eq!(report.totals.calls, 3);
    let after = h.rows(status).await;
    assert_eq!(column::<String>(&after[0], "status"), "ok");
    assert_eq!(
        column::<String>(&after[0], "status_changed_at"),
        column::<String>(&before[0], "status_changed_at"),
        "ok since the first pass: the retry mended both failures"
    );
    assert_ne!(
        column::<String>(&after[0], "last_ok_at"),
        column::<String>(&before[0], "last_ok_at")
    );
    assert_eq!(column::<Option<String>>(&after[0], "last_error_code"), None);
    assert_eq!(column::<i64>(&after[0], "consecutive_failures"), 0);

    // Failures no retry mends: failing since the first of them.
    h.simulator
        .script(ID_A, vec![Scripted::Code("4000".into()); 3]);
    let report = h.pass().await;
    assert_eq!(report.totals.failed, 1, "{}", report.summary());
    let failed = h.rows(status).await;
    let first_failure = h
        .rows(
            "SELECT finished_at FROM fetches WHERE attempt = 1 AND error_code = '4000' \
             ORDER BY id DESC LIMIT 1",
        )
        .await;
    let first_failure: String = column(&first_failure[0], "finished_at");
    assert_eq!(column::<String>(&failed[0], "status"), "failing");
    assert_eq!(
        column::<String>(&failed[0], "status_changed_at"),
        first_failure
    );
    assert_eq!(column::<i64>(&failed[0], "consecutive_failures"), 3);

    // A video failing before the pass became ok when its retry succeeded: ok since then.
    h.simulator
        .script(ID_A, vec![Scripted::Code("4000".into())]);
    let report = h.pass().await;
    assert_eq!(report.totals.fetched_ok, 1, "{}", report.summary());
    let recovered = h.rows(status).await;
    assert_eq!(column::<String>(&recovered[0], "status"), "ok");
    assert_eq!(
        column::<String>(&recovered[0], "status_changed_at"),
        column::<String>(&recovered[0], "last_ok_at")
    );
}

/// Runs a pass alongside `side`, which is given the pass's shutdown token; returns the report.
async fn pass_alongside<F: Future<Output = ()>>(
    h: &PassHarness,
    side: impl FnOnce(CancellationToken) -> F,
) -> PassReport {
    let shutdown = CancellationToken::new();
    let collector = h.collector();
    let (report, ()) = tokio::join!(
        collector.run_pass(Trigger::Fetch, None, &shutdown),
        side(shutdown.clone())
    );
    report.expect("pass")
}

/// Waits until the simulator has had `requests` requests.
async fn requests_reach(h: &PassHarness, requests: u64) {
    while h.simulator.stats().requests < requests {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Takes `ids` off the watch list.
async fn remove(h: &PassHarness, ids: &[String]) {
    let ids: Vec<douyin_watch::video_id::VideoId> =
        ids.iter().map(|id| id.parse().expect("id")).collect();
    let done = h
        .store
        .remove_videos(&ids, Utc::now())
        .await
        .expect("remove");
    assert_eq!(done.removed.len(), ids.len());
}

/// Runs a pass and, once the simulator has had `requests` requests, takes `removed` off the
/// watch list; returns the pass's report.
async fn pass_removing(h: &PassHarness, requests: u64, removed: &str) -> PassReport {
    pass_alongside(h, |_| async move {
        requests_reach(h, requests).await;
        remove(h, &[removed.to_owned()]).await;
    })
    .await
}

#[tokio::test]
async fn a_video_removed_during_its_retry_wait_is_not_called_again() {
    let h = harness(
        SimulatorConfig::default(),
        &[("RETRY__BASE_DELAY", "5s"), ("RETRY__MAX_DELAY", "5s")],
    )
    .await;
    h.watch(&[ID_A]).await;
    h.simulator
        .script(ID_A, vec![Scripted::Code("4000".into())]);
    let report = pass_removing(&h, 1, ID_A).await;
    assert_eq!(h.simulator.stats().requests, 1, "{}", report.summary());
    assert_eq!(
        (report.totals.failed, report.totals.removed),
        (1, 0),
        "called once, it ends as its attempt did: {}",
        report.summary()
    );
    assert_eq!(report.stop, None, "removing a video stops nothing");
    assert_eq!(h.scalar("SELECT COUNT(*) FROM fetches").await, 1);
}

#[tokio::test]
async fn a_video_removed_before_its_turn_in_a_pass_is_not_called() {
    // Two calls a second: the eighth video's turn comes 3.5 s into the pass.
    let h = harness(SimulatorConfig::default(), &[("API__RATE_PER_SEC", "2")]).await;
    let all = ids(8);
    h.watch(&all).await;
    let report = pass_removing(&h, 1, &all[7]).await;
    assert_eq!(report.totals.fetched_ok, 7, "{}", report.summary());
    assert_eq!(
        (report.totals.skipped, report.totals.removed),
        (0, 1),
        "{}",
        report.summary()
    );
    assert!(
        report
            .summary()
            .ends_with("; 1 removed from the watch list during the pass, not called"),
        "{}",
        report.summary()
    );
    assert_eq!(h.simulator.stats().requests, 7);
    assert_eq!(
        h.scalar("SELECT removed FROM passes ORDER BY id DESC LIMIT 1")
            .await,
        1
    );
    assert_eq!(
        h.scalar("SELECT COUNT(*) FROM fetches WHERE video_id = '7100000000000000008'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_signal_after_the_last_call_of_a_pass_whose_rest_was_removed_cuts_nothing_short() {
    // One call at a time, each answered after a second: the last two videos, removed at once,
    // still wait for their start (6 and 7 s away) when the signal comes during the sixth call.
    let h = harness(
        SimulatorConfig {
            latency: Duration::from_secs(1),
            ..SimulatorConfig::default()
        },
        &[("API__CONCURRENCY", "1")],
    )
    .await;
    let all = ids(8);
    h.watch(&all).await;
    let (h, all) = (&h, &all);
    let report = pass_alongside(h, |shutdown| async move {
        requests_reach(h, 1).await;
        remove(h, &all[6..]).await;
        requests_reach(h, 6).await;
        shutdown.cancel();
    })
    .await;
    let t = &report.totals;
    assert_eq!(
        (t.fetched_ok, t.skipped, t.removed),
        (6, 0, 2),
        "{}",
        report.summary()
    );
    assert_eq!(report.stop, None, "{}", report.summary());
    assert_eq!(h.simulator.stats().requests, 6);
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let h = harness(SimulatorConfig::default(), &[("RETRY__MAX_ATTEMPTS", "3")]).await;
    h.watch(&[ID_A]).await;
    h.simulator
        .script(ID_A, vec![Scripted::Code("4001".into()); 5]);
    let report = h.pass().await;
    assert_eq!(report.totals.failed, 1);
    assert_eq!(report.totals.calls, 3);
    assert_eq!(h.scalar("SELECT MAX(attempt) FROM fetches").await, 3);
    let video = h
        .rows("SELECT status, last_error_code, consecutive_failures FROM videos")
        .await;
    assert_eq!(column::<String>(&video[0], "status"), "failing");
    assert_eq!(column::<String>(&video[0], "last_error_code"), "4001");
    assert_eq!(column::<i64>(&video[0], "consecutive_failures"), 3);
}

#[tokio::test]
async fn charged_or_hopeless_answers_are_never_retried() {
    let h = harness(SimulatorConfig::default(), &[("RETRY__MAX_ATTEMPTS", "5")]).await;
    let all = ids(5);
    h.watch(&all).await;
    let other = fixture_item_for("7999999999999999999");
    let scripts = [
        Scripted::Item(other),         // charged, but for another id
        Scripted::Code("4003".into()), // per-video
        Scripted::Code("9999".into()), // unknown code: per-video
        Scripted::Body(b"<html><body>oops</body></html>".to_vec()), // 200 that is not JSON
        Scripted::Body(br#"{"error_code":"0000","api_info":"today:1 max:10"}"#.to_vec()),
    ];
    for (id, script) in all.iter().zip(scripts) {
        h.simulator.script(id, vec![script]);
    }
    let report = h.pass().await;
    assert_eq!(report.totals.failed, 5, "{}", report.summary());
    assert_eq!(report.totals.calls, 5, "one call each, no retry");
    let outcomes = h
        .rows("SELECT outcome, COALESCE(error_code, '') || '/' || COALESCE(error, '') AS code, charged FROM fetches ORDER BY video_id")
        .await;
    let seen: Vec<(String, String, bool)> = outcomes
        .iter()
        .map(|r| {
            (
                column(r, "outcome"),
                column(r, "code"),
                column(r, "charged"),
            )
        })
        .collect();
    let expected = [
        ("decode_error", "0000/item_mismatch", true),
        ("api_error", "4003/param-error", false),
        ("api_error", "9999/unknown-error", false),
        ("decode_error", "/invalid_answer", false),
        ("decode_error", "0000/missing_item", true),
    ]
    .map(|(outcome, code, charged)| (outcome.to_owned(), code.to_owned(), charged));
    assert_eq!(seen, expected);
    assert_eq!(h.scalar("SELECT COUNT(*) FROM snapshots").await, 0);

    // Each failure is known by what went wrong: an unusable 0000 answer by our key, not by
    // "success", in the watch list, the `failures_by_code` view and `douyin-watch failures`.
    let keys = [
        "item_mismatch",
        "4003",
        "9999",
        "invalid_answer",
        "missing_item",
    ];
    let last_codes: Vec<String> = h
        .rows("SELECT last_error_code FROM videos ORDER BY video_id")
        .await
        .iter()
        .map(|r| column(r, "last_error_code"))
        .collect();
    assert_eq!(last_codes, keys);
    let view: Vec<(String, bool)> = h
        .rows("SELECT code, charged FROM failures_by_code ORDER BY code")
        .await
        .iter()
        .map(|r| (column(r, "code"), column(r, "charged")))
        .collect();
    let mut expected_view: Vec<(String, bool)> = keys
        .iter()
        .zip(&expected)
        .map(|(key, (_, _, charged))| (key.to_string(), *charged))
        .collect();
    expected_view.sort();
    assert_eq!(view, expected_view);
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut groups: Vec<(String, bool)> = h
        .store
        .failure_groups(since, None)
        .await
        .expect("failure groups")
        .into_iter()
        .map(|g| (g.code, g.charged > 0))
        .collect();
    groups.sort();
    assert_eq!(groups, expected_view);
}

#[tokio::test]
async fn an_account_level_code_stops_the_pass_at_once() {
    let h = harness(SimulatorConfig::default(), &[("API__CONCURRENCY", "1")]).await;
    let all = ids(6);
    h.watch(&all).await;
    h.simulator
        .script(&all[0], vec![Scripted::Code("4005".into())]);
    let report = h.pass().await;
    assert_eq!(
        account_stop_code(&report),
        Some("4005"),
        "{:?}",
        report.stop
    );
    assert_eq!(h.simulator.stats().requests, 1, "no call after 4005");
    assert_eq!(report.totals.skipped, 5);
    let pass = h.rows("SELECT stopped_by, skipped FROM passes").await;
    assert_eq!(column::<String>(&pass[0], "stopped_by"), "4005");
    // The account failed, not the video: it stays first in line for the next pass.
    let untouched = h
        .scalar("SELECT COUNT(*) FROM videos WHERE last_fetched_at IS NULL AND status = 'pending'")
        .await;
    assert_eq!(untouched, 6);
}

#[tokio::test]
async fn other_account_level_codes_pause_calls_with_a_doubling_backoff() {
    let h = harness(
        SimulatorConfig::default(),
        &[
            ("API__CONCURRENCY", "1"),
            ("RETRY__ACCOUNT_PAUSE", "2s"),
            ("RETRY__ACCOUNT_PAUSE_MAX", "1h"),
        ],
    )
    .await;
    let all = ids(3);
    h.watch(&all).await;
    h.simulator
        .script(&all[0], vec![Scripted::Code("4016".into()); 2]);
    let first = h.pass().await;
    assert_eq!(account_stop_code(&first), Some("4016"), "{:?}", first.stop);
    assert_eq!(h.simulator.stats().requests, 1);

    // The pause is long enough for this pass to start within it on a loaded machine.
    let during = h.pass().await;
    assert!(
        matches!(during.stop, Some(StopReason::Paused { .. })),
        "{:?}",
        during.stop
    );
    assert_eq!(h.simulator.stats().requests, 1, "no call while paused");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = h.pass().await;
    assert_eq!(account_stop_code(&after), Some("4016"), "{:?}", after.stop);
    assert_eq!(
        h.simulator.stats().requests,
        2,
        "one call after the pause, answered 4016 again"
    );

    let pauses = h
        .rows("SELECT created_at, until, cause FROM pauses ORDER BY id")
        .await;
    let lengths: Vec<i64> = pauses
        .iter()
        .map(|row| {
            let created =
                douyin_watch::store::parse_timestamp(&column::<String>(row, "created_at"));
            let until = douyin_watch::store::parse_timestamp(&column::<String>(row, "until"));
            (until.expect("until") - created.expect("created")).num_milliseconds()
        })
        .collect();
    assert_eq!(lengths, [2000, 4000], "the second pause doubles");
    assert!(
        pauses
            .iter()
            .all(|row| column::<String>(row, "cause") == "account_error")
    );

    tokio::time::sleep(Duration::from_millis(4100)).await;
    let recovered = h.pass().await;
    assert_eq!(recovered.totals.fetched_ok, 3, "{}", recovered.summary());
    assert!(recovered.stop.is_none());
}

#[tokio::test]
async fn after_an_account_pause_one_call_probes_before_the_others_go_out() {
    let h = harness(
        SimulatorConfig {
            latency: Duration::from_millis(50),
            ..SimulatorConfig::default()
        },
        &[("API__CONCURRENCY", "4"), ("RETRY__ACCOUNT_PAUSE", "200ms")],
    )
    .await;
    let all = ids(8);
    h.watch(&all).await;
    // The first pass's four calls in flight answer 4016, and the first video (still the first
    // due: an account stop does not count as fetching it) answers 4016 again after the pause.
    for (id, times) in all[..4].iter().zip([2, 1, 1, 1]) {
        h.simulator
            .script(id, vec![Scripted::Code("4016".into()); times]);
    }
    let first = h.pass().await;
    assert_eq!(account_stop_code(&first), Some("4016"), "{:?}", first.stop);
    assert_eq!(h.simulator.stats().requests, 4);

    tokio::time::sleep(Duration::from_millis(250)).await;
    let probe = h.pass().await;
    assert_eq!(account_stop_code(&probe), Some("4016"), "{:?}", probe.stop);
    assert_eq!(
        h.simulator.stats().requests,
        5,
        "one call found the account still stopped, not four: {}",
        probe.summary()
    );

    // The second pause doubles; then the probe succeeds and the rest go out.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let recovered = h.pass().await;
    assert!(recovered.stop.is_none(), "{}", recovered.summary());
    assert_eq!(recovered.totals.fetched_ok, 8, "{}", recovered.summary());
}

#[tokio::test]
async fn after_4013_no_call_is_made_until_the_beijing_day_rolls_over() {
    let h = harness(SimulatorConfig::default(), &[("API__CONCURRENCY", "1")]).await;
    let all = ids(6);
    h.watch(&all).await;
    // The quota figures did not warn us (another client of the same key spent them).
    h.simulator
        .script(&all[0], vec![Scripted::Code("4013".into())]);
    let first = h.pass().await;
    assert_eq!(account_stop_code(&first), Some("4013"), "{:?}", first.stop);
    assert_eq!(h.simulator.stats().requests, 1);

    // The next pass, as after a restart, makes no call at all.
    let second = h.pass().await;
    assert!(
        matches!(&second.stop, Some(StopReason::Paused { .. })),
        "{:?}",
        second.stop
    );
    assert_eq!(second.totals.skipped, 6);
    assert_eq!(h.simulator.stats().requests, 1);
    let pause = h.rows("SELECT until, cause, error_code FROM pauses").await;
    assert_eq!(column::<String>(&pause[0], "cause"), "quota_exceeded");
    assert_eq!(column::<String>(&pause[0], "error_code"), "4013");
    let until: String = column(&pause[0], "until");
    let reset = douyin_watch::quota::next_quota_reset(chrono::Utc::now());
    assert_eq!(until, douyin_watch::store::timestamp(reset));
}

#[tokio::test]
async fn a_4013_that_comes_back_after_the_reserve_stopped_the_pass_still_pauses_calls() {
    let h = harness(
        SimulatorConfig {
            daily_max: 1000,
            ..SimulatorConfig::default()
        },
        &[
            ("API__CONCURRENCY", "2"),
            ("API__RATE_PER_SEC", "1000"),
            ("API__TIMEOUT", "10s"),
            ("QUOTA__RESERVE", "5"),
        ],
    )
    .await;
    let all = ids(3);
    h.watch(&all).await;
    h.simulator.set_today(994);
    // The first two calls go out together. The first answer (today 995, after 300 ms) reaches
    // the reserve with the second call still out, held 4 s; meanwhile another client of the key
    // spends the rest, and the second call is answered 4013.
    h.simulator
        .script(&all[0], vec![Scripted::Delay(Duration::from_millis(300))]);
    h.simulator
        .script(&all[1], vec![Scripted::Delay(Duration::from_secs(4))]);
    let spend_the_rest = async {
        while h.simulator.stats().charged < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        h.simulator.set_today(1000);
    };
    let (report, ()) = tokio::join!(h.pass(), spend_the_rest);
    assert!(
        matches!(report.stop, Some(StopReason::QuotaReserve { .. })),
        "the reserve stopped the pass first: {:?}",
        report.stop
    );
    assert_eq!(
        h.scalar("SELECT COUNT(*) FROM fetches WHERE error_code = '4013'")
            .await,
        1
    );
    let pause = h.rows("SELECT cause, error_code FROM pauses").await;
    assert_eq!(pause.len(), 1, "the 4013 paused calls");
    assert_eq!(column::<String>(&pause[0], "cause"), "quota_exceeded");
}

#[tokio::test]
async fn the_daily_max_from_api_info_stops_calls_before_onebound_refuses_them() {
    let h = harness(
        SimulatorConfig {
            daily_max: 3,
            ..SimulatorConfig::default()
        },
        &[("API__CONCURRENCY", "1")],
    )
    .await;
    let all = ids(6);
    h.watch(&all).await;
    let first = h.pass().await;
    assert_eq!(first.totals.fetched_ok, 3);
    assert!(
        matches!(
            first.stop,
            Some(StopReason::QuotaReserve {
                today: 3,
                max: 3,
                reserve: 0
            })
        ),
        "{:?}",
        first.stop
    );
    assert_eq!(
        h.simulator.stats().requests,
        3,
        "no call was refused with 4013"
    );
    let second = h.pass().await;
    assert_eq!(second.totals.calls, 0);
    assert_eq!(h.simulator.stats().requests, 3);
}

#[tokio::test]
async fn the_quota_guard_counts_calls_in_flight() {
    let h = harness(
        SimulatorConfig {
            daily_max: 100,
            latency: Duration::from_millis(100),
            ..SimulatorConfig::default()
        },
        &[("API__CONCURRENCY", "32"), ("QUOTA__RESERVE", "6")],
    )
    .await;
    h.watch(&[ID_A]).await;
    h.simulator.set_today(90);
    // One call teaches the collector today = 91 of 100; 100 - 91 - 6 leaves 3 calls.
    assert_eq!(h.pass().await.totals.calls, 1);
    let all = ids(40);
    h.watch(&all).await;
    let report = h.pass().await;
    assert_eq!(report.totals.calls, 3, "{}", report.summary());
    assert!(matches!(report.stop, Some(StopReason::QuotaReserve { .. })));
    assert_eq!(h.simulator.stats().today, 94);
    // Reserve reached: the next pass calls nothing.
    let next = h.pass().await;
    assert_eq!(next.totals.calls, 0);
    assert!(matches!(
        next.stop,
        Some(StopReason::QuotaReserve {
            today: 94,
            max: 100,
            reserve: 6
        })
    ));
}

#[tokio::test]
async fn no_more_than_rate_per_sec_calls_start_in_a_second() {
    // 11 calls at 20 a second, with room for all of them in flight: 10 intervals of 50 ms.
    let h = harness(
        SimulatorConfig::default(),
        &[("API__CONCURRENCY", "20"), ("API__RATE_PER_SEC", "20")],
    )
    .await;
    h.watch(&ids(11)).await;
    let report = h.pass().await;
    assert_eq!(report.totals.fetched_ok, 11, "{}", report.summary());
    assert!(
        report.elapsed_ms >= 450,
        "11 calls at 20 a second took {} ms",
        report.elapsed_ms
    );
}

#[tokio::test]
async fn rate_limiting_lowers_the_pace_and_every_video_is_fetched() {
    let h = harness(
        SimulatorConfig {
            max_concurrent: Some(2),
            latency: Duration::from_millis(30),
            ..SimulatorConfig::default()
        },
        &[("API__CONCURRENCY", "8"), ("RETRY__MAX_ATTEMPTS", "6")],
    )
    .await;
    let all = ids(40);
    h.watch(&all).await;
    let report = h.pass().await;
    assert_eq!(report.totals.fetched_ok, 40, "{}", report.summary());
    let rate_limited = h
        .simulator
        .stats()
        .by_code
        .get("4008")
        .copied()
        .unwrap_or(0);
    assert!(rate_limited > 0, "the cap was hit at first");
    assert!(
        rate_limited < 40,
        "far fewer 4008 than videos: {rate_limited}"
    );
    assert_eq!(report.totals.charged_calls, 40);
}

#[tokio::test]
async fn passes_take_the_longest_unfetched_videos_first() {
    let h = harness(SimulatorConfig::default(), &[("API__CONCURRENCY", "1")]).await;
    let all = ids(3);
    h.watch(&all).await;
    h.pass().await;
    // Fetch the first one again on its own: it becomes the most recently fetched.
    h.collector()
        .run_pass(
            Trigger::Fetch,
            Some(vec![all[0].parse().expect("id")]),
            &CancellationToken::new(),
        )
        .await
        .expect("pass");
    let third = h.pass().await;
    let order: Vec<String> =
        sqlx::query_scalar("SELECT video_id FROM fetches WHERE pass_id = ? ORDER BY id")
            .bind(third.pass_id)
            .fetch_all(&h.read_only_pool().await)
            .await
            .expect("query");
    assert_eq!(order, [all[1].clone(), all[2].clone(), all[0].clone()]);
}

#[tokio::test]
async fn every_api_info_shape_is_stored_and_a_bad_one_never_fails_the_fetch() {
    let h = harness(SimulatorConfig::default(), &[]).await;
    let all = ids(3);
    h.watch(&all).await;
    let answer = |id: &str, api_info: &str| {
        let item = fixture_item_for(id);
        let body = json!({"item": item, "error_code": "0000", "api_info": api_info, "execution_time": 0.1});
        Scripted::Body(body.to_string().into_bytes())
    };
    h.simulator.script(
        &all[0],
        vec![answer(
            &all[0],
            "today:39 max:10000 all[104=39+33+32];expires:2030-12-31",
        )],
    );
    h.simulator.script(
        &all[1],
        vec![answer(
            &all[1],
            "today: max:20000 all[=++];expires:2024-01-16",
        )],
    );
    h.simulator
        .script(&all[2], vec![answer(&all[2], "quota: plenty")]);
    let report = h.pass().await;
    assert_eq!(report.totals.fetched_ok, 3, "{}", report.summary());
    let samples = h
        .rows("SELECT calls_today, calls_max, calls_total, calls_total_parts, expires_on, api_info FROM quota_samples ORDER BY api_info")
        .await;
    let seen: Vec<QuotaRow> = samples
        .iter()
        .map(|r| {
            (
                column(r, "calls_today"),
                column(r, "calls_max"),
                column(r, "calls_total"),
                column(r, "calls_total_parts"),
                column(r, "expires_on"),
                column(r, "api_info"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (None, None, None, None, None, "quota: plenty".to_owned()),
            (
                None,
                Some(20000),
                None,
                None,
                Some("2024-01-16".to_owned()),
                "today: max:20000 all[=++];expires:2024-01-16".to_owned()
            ),
            (
                Some(39),
                Some(10000),
                Some(104),
                Some("[39,33,32]".to_owned()),
                Some("2030-12-31".to_owned()),
                "today:39 max:10000 all[104=39+33+32];expires:2030-12-31".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn the_secret_never_reaches_the_database() {
    let h = harness(
        SimulatorConfig::default(),
        &[("API__TIMEOUT", "200ms"), ("RETRY__MAX_ATTEMPTS", "2")],
    )
    .await;
    let all = ids(4);
    h.watch(&all).await;
    h.simulator
        .script(&all[0], vec![Scripted::Hang, Scripted::Hang]);
    h.simulator
        .script(&all[1], vec![Scripted::Http(500, "server error".into())]);
    h.simulator
        .script(&all[2], vec![Scripted::Body(b"not json".to_vec())]);
    h.simulator.script(&all[3], vec![Scripted::Reset]);
    let report = h.pass().await;
    assert!(report.totals.failed >= 1, "{}", report.summary());
    let timeouts = h
        .scalar("SELECT COUNT(*) FROM fetches WHERE error = 'timeout'")
        .await;
    assert_eq!(timeouts, 2);
    h.store.close().await;
    let db = h.db_path();
    let wal = db.with_file_name(format!("{}-wal", PassHarness::DB_FILE));
    for path in [db, wal] {
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes
                    .windows(API_SECRET.len())
                    .any(|w| w == API_SECRET.as_bytes()),
                "the secret is in {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn the_progress_hook_sees_every_video_end() {
    let h = harness(SimulatorConfig::default(), &[]).await;
    let all = ids(12);
    h.watch(&all).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_seen = std::sync::Arc::clone(&seen);
    let report = h
        .collector()
        .with_progress(std::sync::Arc::new(move |totals| {
            hook_seen.lock().expect("lock").push(totals.clone());
        }))
        .run_pass(Trigger::Fetch, None, &CancellationToken::new())
        .await
        .expect("pass");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 13, "once at the start and once per video");
    let done: Vec<u64> = seen.iter().map(|t| t.fetched_ok).collect();
    assert_eq!(done, (0..=12).collect::<Vec<u64>>());
    assert_eq!(
        seen.last().map(|t| t.fetched_ok),
        Some(report.totals.fetched_ok)
    );
}

#[tokio::test]
async fn an_enormous_account_pause_is_capped_instead_of_overflowing() {
    let h = harness(
        SimulatorConfig::default(),
        &[
            ("API__CONCURRENCY", "1"),
            ("RETRY__ACCOUNT_PAUSE", "300000years"),
            ("RETRY__ACCOUNT_PAUSE_MAX", "300000years"),
        ],
    )
    .await;
    h.watch(&[ID_A]).await;
    h.simulator
        .script(ID_A, vec![Scripted::Code("4016".into())]);
    let report = h.pass().await;
    assert_eq!(
        account_stop_code(&report),
        Some("4016"),
        "{:?}",
        report.stop
    );
    let until: String = column(&h.rows("SELECT until FROM pauses").await[0], "until");
    assert_eq!(until, "9999-12-31T23:59:59.000Z");
    let next = h.pass().await;
    assert!(
        matches!(next.stop, Some(StopReason::Paused { .. })),
        "{:?}",
        next.stop
    );
}

#[tokio::test]
async fn a_shutdown_while_a_video_waits_for_its_retry_stops_the_pass_as_shutdown() {
    let h = harness(
        SimulatorConfig::default(),
        &[("RETRY__BASE_DELAY", "30s"), ("RETRY__MAX_DELAY", "30s")],
    )
    .await;
    h.watch(&[ID_A]).await;
    h.pass().await;
    h.simulator
        .script(ID_A, vec![Scripted::Code("4000".into())]);
    let h = &h;
    let report = pass_alongside(h, |shutdown| async move {
        // The failed attempt is stored; its video then waits 30 s for the retry.
        while h.scalar("SELECT COUNT(*) FROM fetches").await < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.cancel();
    })
    .await;
    assert_eq!(report.totals.failed, 1, "{}", report.summary());
    assert_eq!(
        report.totals.stopped_by.as_deref(),
        Some("shutdown"),
        "a retry was left undone: {}",
        report.summary()
    );
    assert_eq!(
        h.simulator.stats().requests,
        2,
        "the first pass's and the 4000"
    );
    // The ok video is failing since the failure no retry came after.
    let video = h
        .rows("SELECT status, status_changed_at, last_error_code FROM videos")
        .await;
    let failed = h
        .rows("SELECT finished_at FROM fetches ORDER BY id DESC LIMIT 1")
        .await;
    assert_eq!(column::<String>(&video[0], "status"), "failing");
    assert_eq!(
        column::<Option<String>>(&video[0], "last_error_code").as_deref(),
        Some("4000")
    );
    assert_eq!(
        column::<String>(&video[0], "status_changed_at"),
        column::<String>(&failed[0], "finished_at")
    );
}
