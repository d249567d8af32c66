//! Hostile and broken answers, one video at a time, in an otherwise normal pass.
//!
//! Each test watches a few videos and scripts the simulator so that exactly one of them gets the
//! hostile answer. It then checks that the pass completes in time (a stall fails the test), that
//! every other video got its snapshot, and that the hostile video's attempts are in `fetches` with
//! the expected `outcome`, `error` key, a one-line message and the right `charged` flag.

mod support;

use std::time::Duration;

use douyin_watch::collector::PassReport;
use douyin_watch::simulator::{Scripted, SimulatorConfig};
use serde_json::{Value, json};
use support::{
    API_KEY, API_SECRET, PassHarness, column, fixture_item_for, ids_starting, run_full_pass_within,
};

/// The API document's example id, used as the hostile video.
const HOSTILE: &str = "7118694749548072205";

/// How long a pass may take before it counts as stalled: well above one request's `api.timeout`
/// (5 s unless a test lowers it), well below three attempts that each wait for it.
const PASS_DEADLINE: Duration = Duration::from_secs(10);

/// Videos answered normally next to the hostile one: 7100000000000000001, ...2, ...3.
fn others() -> Vec<String> {
    ids_starting(71, 3)
}

/// A harness with this file's tuning (a generous `api.timeout`, three quick attempts), then
/// `settings`.
async fn harness(settings: &[(&str, &str)]) -> PassHarness {
    PassHarness::builder(SimulatorConfig::default())
        // Generous: decoding megabytes in a debug build on a busy machine takes a while.
        .set("API__TIMEOUT", "5s")
        .set("RETRY__MAX_ATTEMPTS", "3")
        .fast_retries()
        .set_all(settings)
        .start()
        .await
}

/// One pass over every watched video; fails the test if it takes longer than `PASS_DEADLINE`.
async fn pass(h: &PassHarness) -> PassReport {
    run_full_pass_within(
        &h.collector(),
        PASS_DEADLINE,
        "the pass completes instead of stalling",
    )
    .await
}

/// The attempts recorded for `id`, in order.
async fn fetches_of(h: &PassHarness, id: &str) -> Vec<Fetch> {
    h.rows_for(
        "SELECT attempt, outcome, http_status, error_code, error, reason, message, charged, \
         snapshot_id FROM fetches WHERE video_id = ? ORDER BY id",
        id,
    )
    .await
    .iter()
    .map(|row| Fetch {
        attempt: column(row, "attempt"),
        outcome: column(row, "outcome"),
        http_status: column(row, "http_status"),
        error_code: column(row, "error_code"),
        error: column(row, "error"),
        reason: column(row, "reason"),
        message: column(row, "message"),
        charged: column(row, "charged"),
        snapshot_id: column(row, "snapshot_id"),
    })
    .collect()
}

/// `status`, `last_error_code`, `last_error` and `consecutive_failures` of one video.
async fn video_state(h: &PassHarness, id: &str) -> (String, Option<String>, Option<String>, i64) {
    let rows = h
        .rows_for(
            "SELECT status, last_error_code, last_error, consecutive_failures FROM videos \
             WHERE video_id = ?",
            id,
        )
        .await;
    let row = &rows[0];
    (
        column(row, "status"),
        column(row, "last_error_code"),
        column(row, "last_error"),
        column(row, "consecutive_failures"),
    )
}

/// The number of snapshots (versions) of one video.
async fn snapshot_count(h: &PassHarness, id: &str) -> usize {
    h.rows_for("SELECT id FROM snapshots WHERE video_id = ?", id)
        .await
        .len()
}

/// Requests the simulator received for one id.
fn requests_for(h: &PassHarness, id: &str) -> u64 {
    h.simulator.stats().per_item.get(id).copied().unwrap_or(0)
}

/// One `fetches` row.
#[derive(Debug)]
struct Fetch {
    attempt: i64,
    outcome: String,
    http_status: Option<i64>,
    error_code: Option<String>,
    error: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    charged: bool,
    snapshot_id: Option<i64>,
}

impl Fetch {
    /// The message, checked to be one short readable line without the secret.
    fn line(&self) -> &str {
        let message = self
            .message
            .as_deref()
            .unwrap_or_else(|| panic!("a failure has a message: {self:?}"));
        assert!(!message.trim().is_empty(), "{self:?}");
        assert!(
            !message.chars().any(char::is_control),
            "one line, no control characters: {message:?}"
        );
        assert!(
            message.chars().count() <= 500,
            "short: {} characters",
            message.chars().count()
        );
        assert!(
            !message.contains(API_SECRET),
            "the secret leaked: {message}"
        );
        message
    }
}

/// A complete `0000` envelope for `id`, encoded.
fn success_body(id: &str) -> Vec<u8> {
    json!({
        "item": fixture_item_for(id),
        "error": "",
        "reason": "",
        "error_code": "0000",
        "api_info": "today:1 max:10000 all[1=1+0+0];expires:2030-12-31",
        "execution_time": "0.1",
        "request_id": "gw-1.hostile",
    })
    .to_string()
    .into_bytes()
}

/// Watches the hostile video and the others, scripts `answers` for the hostile one, runs one
/// pass and checks that every other video was fetched once and got its snapshot.
async fn hostile_pass(env: &[(&str, &str)], answers: Vec<Scripted>) -> (PassHarness, PassReport) {
    let h = harness(env).await;
    let mut all = vec![HOSTILE.to_owned()];
    all.extend(others());
    h.watch(&all).await;
    h.simulator.script(HOSTILE, answers);
    let report = pass(&h).await;
    assert_eq!(report.totals.videos, 4, "{}", report.summary());
    assert!(report.stop.is_none(), "{}", report.summary());
    for id in others() {
        let fetches = fetches_of(&h, &id).await;
        assert_eq!(fetches.len(), 1, "{id}: {fetches:?}");
        assert_eq!(fetches[0].outcome, "ok", "{id}: {fetches:?}");
        assert!(fetches[0].charged);
        assert!(fetches[0].snapshot_id.is_some());
        assert_eq!(snapshot_count(&h, &id).await, 1, "{id}");
        assert_eq!(
            video_state(&h, &id).await,
            ("ok".to_owned(), None, None, 0),
            "{id}"
        );
        assert_eq!(requests_for(&h, &id), 1, "{id}");
    }
    (h, report)
}

/// Checks that the hostile video failed once, without a retry, and returns that attempt.
async fn single_failure(h: &PassHarness, report: &PassReport) -> Fetch {
    assert_eq!(report.totals.failed, 1, "{}", report.summary());
    assert_eq!(report.totals.fetched_ok, 3, "{}", report.summary());
    assert_eq!(requests_for(h, HOSTILE), 1, "not retried");
    let mut fetches = fetches_of(h, HOSTILE).await;
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    let fetch = fetches.remove(0);
    assert_eq!(fetch.attempt, 1);
    assert!(fetch.snapshot_id.is_none(), "{fetch:?}");
    assert_eq!(snapshot_count(h, HOSTILE).await, 0);
    let (status, last_code, last_error, failures) = video_state(h, HOSTILE).await;
    assert_eq!(status, "failing");
    // The failure key: onebound's code, or ours where there is none or it says "success".
    let key = match fetch.error_code.as_deref() {
        Some("0000") | None => fetch.error.as_deref(),
        code => code,
    };
    assert_eq!(last_code.as_deref(), key);
    assert_eq!(last_error, fetch.message);
    assert_eq!(failures, 1);
    fetch
}

/// Checks a `decode_error`/`invalid_answer` attempt that was not charged.
fn assert_invalid_answer(fetch: &Fetch) {
    assert_eq!(fetch.outcome, "decode_error", "{fetch:?}");
    assert_eq!(fetch.error.as_deref(), Some("invalid_answer"), "{fetch:?}");
    assert_eq!(fetch.error_code, None, "{fetch:?}");
    assert_eq!(fetch.http_status, Some(200), "{fetch:?}");
    assert!(!fetch.charged, "{fetch:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_max_body_bytes_is_cut_off_and_not_retried() {
    let (h, report) = hostile_pass(
        &[("API__MAX_BODY_BYTES", "65536")],
        vec![Scripted::Huge {
            bytes: 10 * 1024 * 1024,
        }],
    )
    .await;
    let fetch = single_failure(&h, &report).await;
    assert_eq!(fetch.outcome, "transport_error", "{fetch:?}");
    assert_eq!(fetch.error.as_deref(), Some("body_too_large"));
    assert!(fetch.line().contains("max_body_bytes"), "{fetch:?}");
    assert!(!fetch.charged);
    // onebound did answer 0000 (the simulator billed it), but the client never saw the code.
    assert_eq!(report.totals.charged_calls, 3);
    assert_eq!(h.simulator.stats().charged, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_slower_than_the_timeout_times_out_on_every_attempt() {
    let trickle = Scripted::Trickle {
        body: vec![b' '; 100],
        chunk: 1,
        every: Duration::from_millis(100),
    };
    let (h, report) = hostile_pass(&[("API__TIMEOUT", "300ms")], vec![trickle; 3]).await;
    assert_eq!(report.totals.failed, 1, "{}", report.summary());
    assert_eq!(requests_for(&h, HOSTILE), 3, "retried up to max_attempts");
    let fetches = fetches_of(&h, HOSTILE).await;
    assert_eq!(
        fetches.iter().map(|f| f.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for fetch in &fetches {
        assert_eq!(fetch.outcome, "transport_error", "{fetch:?}");
        assert_eq!(fetch.error.as_deref(), Some("timeout"), "{fetch:?}");
        assert!(!fetch.charged);
        fetch.line();
    }
    assert_eq!(
        video_state(&h, HOSTILE).await.3,
        3,
        "three consecutive failures"
    );
    assert_eq!(report.totals.charged_calls, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_in_the_middle_of_the_body_is_retried() {
    let body = success_body(HOSTILE);
    let broken = Scripted::ResetMidBody {
        after: body.len() / 2,
        body,
    };
    let (h, report) = hostile_pass(&[], vec![broken.clone(), broken]).await;
    assert_eq!(report.totals.fetched_ok, 4, "{}", report.summary());
    assert_eq!(requests_for(&h, HOSTILE), 3);
    let fetches = fetches_of(&h, HOSTILE).await;
    assert_eq!(fetches.len(), 3, "{fetches:?}");
    for fetch in &fetches[..2] {
        assert_eq!(fetch.outcome, "transport_error", "{fetch:?}");
        assert_eq!(
            fetch.error.as_deref(),
            Some("connection_reset"),
            "{fetch:?}"
        );
        assert!(!fetch.charged);
        fetch.line();
    }
    assert_eq!(fetches[2].outcome, "ok");
    assert!(fetches[2].charged);
    assert_eq!(snapshot_count(&h, HOSTILE).await, 1);
    assert_eq!(report.totals.charged_calls, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_utf8_body_is_a_decode_error_with_an_excerpt() {
    // Bytes 0x80..=0xFF from a fixed generator; 0xFF first so that it is not GBK either.
    let mut state = 0x2545_f491_u32;
    let mut body = vec![0xff];
    body.extend((0..2000).map(|_| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        0x80 | (state >> 24) as u8
    }));
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(body)]).await;
    let fetch = single_failure(&h, &report).await;
    assert_invalid_answer(&fetch);
    let message = fetch.line();
    assert!(message.starts_with("answer is not JSON: \""), "{message}");
    assert!(message.contains('\u{fffd}'), "an excerpt: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gbk_encoded_not_found_envelope_is_read_as_chinese() {
    let not_found_in_gbk: &[u8] = &[0xc3, 0xbb, 0xd5, 0xd2, 0xb5, 0xbd];
    let (encoded, _, had_errors) = encoding_rs::GBK.encode("没找到");
    assert!(!had_errors);
    assert_eq!(&encoded[..], not_found_in_gbk);
    let mut body = br#"{"error":"item-not-found","reason":""#.to_vec();
    body.extend_from_slice(not_found_in_gbk);
    body.extend_from_slice(
        br#"","error_code":"2000","success":0,"api_info":"today:1 max:10000","execution_time":0.081}"#,
    );
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(body)]).await;
    assert_eq!(report.totals.not_found, 1, "{}", report.summary());
    assert_eq!(requests_for(&h, HOSTILE), 1, "not retried");
    let fetches = fetches_of(&h, HOSTILE).await;
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    let fetch = &fetches[0];
    assert_eq!(fetch.outcome, "api_error");
    assert_eq!(fetch.error_code.as_deref(), Some("2000"));
    assert_eq!(fetch.error.as_deref(), Some("item-not-found"));
    assert_eq!(fetch.reason.as_deref(), Some("没找到"));
    assert!(fetch.charged, "2000 is billed");
    fetch.line();
    assert_eq!(video_state(&h, HOSTILE).await.0, "not_found");
    assert_eq!(report.totals.charged_calls, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_open_brackets_are_a_decode_error_not_a_stack_overflow() {
    let body = "[".repeat(200_000).into_bytes();
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(body)]).await;
    let fetch = single_failure(&h, &report).await;
    assert_invalid_answer(&fetch);
    assert!(fetch.line().contains("[[[["), "{fetch:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_inside_the_item_is_ignored_field_by_field() {
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let mut envelope: Value = serde_json::from_slice(&success_body(HOSTILE)).expect("json");
    envelope["item"]["extra"] = json!("DEEP");
    envelope["item"]["title"] = json!("DEEP");
    let body = envelope.to_string().replace(r#""DEEP""#, &deep);
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(body.into_bytes())]).await;
    assert_eq!(report.totals.fetched_ok, 4, "{}", report.summary());
    let fetches = fetches_of(&h, HOSTILE).await;
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    assert_eq!(fetches[0].outcome, "ok", "{fetches:?}");
    let titles = h
        .rows_for("SELECT title FROM snapshots WHERE video_id = ?", HOSTILE)
        .await;
    assert_eq!(column::<Option<String>>(&titles[0], "title"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enormous_unknown_string_field_is_fine_under_a_raised_limit() {
    let (h, report) = hostile_pass(
        &[("API__MAX_BODY_BYTES", "8388608")],
        vec![Scripted::Huge {
            bytes: 5 * 1024 * 1024,
        }],
    )
    .await;
    assert_eq!(report.totals.fetched_ok, 4, "{}", report.summary());
    let fetches = fetches_of(&h, HOSTILE).await;
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    assert_eq!(fetches[0].outcome, "ok", "{fetches:?}");
    assert!(fetches[0].charged);
    assert_eq!(snapshot_count(&h, HOSTILE).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enormous_title_is_stored_whole_under_a_raised_limit() {
    let title = "长".repeat(5 * 1024 * 1024 / 3);
    let mut item = fixture_item_for(HOSTILE);
    item["title"] = json!(title);
    // `jsonu` keeps the Chinese as UTF-8 (3 bytes a character) instead of 6-byte `\uXXXX` escapes.
    let (h, report) = hostile_pass(
        &[
            ("API__MAX_BODY_BYTES", "8388608"),
            ("API__RESULT_TYPE", "jsonu"),
        ],
        vec![Scripted::Item(item)],
    )
    .await;
    assert_eq!(
        report.totals.fetched_ok,
        4,
        "{}: {:?}",
        report.summary(),
        fetches_of(&h, HOSTILE).await
    );
    let stored = h
        .rows_for(
            "SELECT length(title) AS chars FROM snapshots WHERE video_id = ?",
            HOSTILE,
        )
        .await;
    assert_eq!(
        column::<i64>(&stored[0], "chars"),
        i64::try_from(title.chars().count()).expect("fits")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0000_with_another_videos_item_is_a_charged_mismatch_and_not_retried() {
    let (h, report) = hostile_pass(
        &[],
        vec![Scripted::Item(fixture_item_for("7999999999999999999"))],
    )
    .await;
    let fetch = single_failure(&h, &report).await;
    assert_eq!(fetch.outcome, "decode_error");
    assert_eq!(fetch.error_code.as_deref(), Some("0000"));
    assert_eq!(fetch.error.as_deref(), Some("item_mismatch"));
    assert!(fetch.charged, "onebound billed it");
    let message = fetch.line();
    assert!(
        message.contains(HOSTILE) && message.contains("7999999999999999999"),
        "{message}"
    );
    assert_eq!(report.totals.charged_calls, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() {
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // Gateways often echo the request's query in the Location; it must not reach the message.
    let target = format!(
        "http://{}/douyin/item_get_video/?key={API_KEY}&secret={API_SECRET}&item_id={HOSTILE}",
        elsewhere.local_addr().expect("address")
    );
    let (h, report) = hostile_pass(&[], vec![Scripted::Redirect(target)]).await;
    let fetch = single_failure(&h, &report).await;
    assert_eq!(fetch.outcome, "transport_error");
    assert_eq!(fetch.error.as_deref(), Some("redirect"));
    assert!(fetch.line().contains("302"), "{fetch:?}");
    assert!(!fetch.charged);
    let contacted = tokio::time::timeout(Duration::from_millis(200), elsewhere.accept()).await;
    assert!(contacted.is_err(), "the redirect target was contacted");
    assert_eq!(report.totals.charged_calls, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_error_page_with_status_200_is_a_decode_error_with_an_excerpt() {
    let page = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n\
                <body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n\
                <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(page.into())]).await;
    let fetch = single_failure(&h, &report).await;
    assert_invalid_answer(&fetch);
    let message = fetch.line();
    assert!(
        message.contains("<title>503 Service Temporarily Unavailable</title>"),
        "{message}"
    );
}

/// A 200 page that echoes the request line, as PHP warnings and WAF block pages do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_echoes_the_request_url_keeps_the_secret_out_of_the_message() {
    let page = format!(
        "<html><body><b>Warning</b>: upstream failed for GET \
         /douyin/item_get_video/?key={API_KEY}&secret={API_SECRET}&item_id={HOSTILE}&cache=yes</body></html>"
    );
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(page.into_bytes())]).await;
    let fetch = single_failure(&h, &report).await;
    assert_invalid_answer(&fetch);
    // `line()` fails if the secret is in the stored message (and so in `videos.last_error` and
    // the warn log).
    let message = fetch.line();
    assert!(message.contains("upstream failed"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_where_strings_belong_and_the_reverse_still_make_a_snapshot() {
    let body = format!(
        r#"{{"item": {{"num_iid": {HOSTILE}, "title": 12345, "type": 4, "nick": null,
            "uid": 2362203779104899, "item_imgs": "x", "video": "", "music": []}},
            "error": 0, "reason": false, "error_code": 0, "execution_time": "0.1",
            "api_info": "today:1 max:10000", "request_id": 98765}}"#
    );
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(body.into_bytes())]).await;
    assert_eq!(report.totals.fetched_ok, 4, "{}", report.summary());
    let fetches = fetches_of(&h, HOSTILE).await;
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    assert_eq!(fetches[0].outcome, "ok", "{fetches:?}");
    assert_eq!(fetches[0].error_code.as_deref(), Some("0000"));
    assert!(fetches[0].charged);
    let snapshot = h
        .rows_for(
            "SELECT title, item_type, nick, author_uid, item_imgs FROM snapshots WHERE video_id = ?",
            HOSTILE,
        )
        .await;
    let row = &snapshot[0];
    assert_eq!(
        column::<Option<String>>(row, "title").as_deref(),
        Some("12345")
    );
    assert_eq!(
        column::<Option<String>>(row, "item_type").as_deref(),
        Some("4")
    );
    assert_eq!(column::<Option<String>>(row, "nick"), None);
    assert_eq!(
        column::<Option<String>>(row, "author_uid").as_deref(),
        Some("2362203779104899")
    );
    assert_eq!(column::<String>(row, "item_imgs"), r#"["x"]"#);
    let request_ids = h
        .rows_for("SELECT request_id FROM fetches WHERE video_id = ?", HOSTILE)
        .await;
    assert_eq!(
        column::<Option<String>>(&request_ids[0], "request_id").as_deref(),
        Some("98765")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_info_of_several_megabytes_does_not_fail_the_fetch() {
    let api_info = format!(
        "today:7 max:10000 all[7=7+0+0];expires:2030-12-31 {}",
        "x".repeat(3 * 1024 * 1024)
    );
    let mut envelope: Value = serde_json::from_slice(&success_body(HOSTILE)).expect("json");
    envelope["api_info"] = json!(api_info);
    let (h, report) = hostile_pass(
        &[("API__MAX_BODY_BYTES", "8388608")],
        vec![Scripted::Body(envelope.to_string().into_bytes())],
    )
    .await;
    assert_eq!(report.totals.fetched_ok, 4, "{}", report.summary());
    let fetches = fetches_of(&h, HOSTILE).await;
    assert_eq!(fetches[0].outcome, "ok", "{fetches:?}");
    let sample = h
        .rows_for(
            "SELECT calls_today, calls_max, length(q.api_info) AS stored FROM quota_samples q \
             JOIN fetches f ON f.id = q.fetch_id WHERE f.video_id = ?",
            HOSTILE,
        )
        .await;
    assert_eq!(sample.len(), 1, "the quota sample is stored");
    assert_eq!(column::<Option<i64>>(&sample[0], "calls_today"), Some(7));
    assert_eq!(column::<Option<i64>>(&sample[0], "calls_max"), Some(10_000));
    // The store keeps the start of `api_info` (1024 characters), not megabytes of it.
    let stored: i64 = column(&sample[0], "stored");
    assert!(
        stored <= 1024,
        "quota_samples.api_info is {stored} characters"
    );
    let kept = h
        .rows_for(
            "SELECT q.api_info FROM quota_samples q JOIN fetches f ON f.id = q.fetch_id \
             WHERE f.video_id = ?",
            HOSTILE,
        )
        .await;
    let kept: String = column(&kept[0], "api_info");
    assert!(kept.starts_with("today:7 max:10000 all[7=7+0+0];expires:2030-12-31 xxx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_200_body_is_a_decode_error_and_not_retried() {
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(Vec::new())]).await;
    let fetch = single_failure(&h, &report).await;
    assert_invalid_answer(&fetch);
    assert!(fetch.line().contains("empty"), "{fetch:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_json_body_is_a_decode_error_and_not_retried() {
    let body = success_body(HOSTILE);
    let half = body[..body.len() / 2].to_vec();
    let (h, report) = hostile_pass(&[], vec![Scripted::Body(half)]).await;
    let fetch = single_failure(&h, &report).await;
    assert_invalid_answer(&fetch);
    let message = fetch.line();
    assert!(message.contains("cut off"), "{message}");
    assert!(
        message.contains(r#"{"api_info":"today:1 max:10000"#),
        "an excerpt: {message}"
    );
}
