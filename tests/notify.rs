//! Webhook notifications against a local receiver (wiremock on 127.0.0.1) after real passes.

mod support;

use std::time::Duration;

use douyin_watch::collector::{Collector, PassReport};
use douyin_watch::notify::{Delivery, Notifier};
use douyin_watch::simulator::{Scripted, SimulatorConfig};
use serde_json::Value;
use support::{API_KEY, API_SECRET, PassHarness, run_full_pass_within};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const GONE: &str = "7100000000000000404";

/// A harness watching three videos (the last is `GONE`) whose collector sends its webhook to
/// `receiver`, with the notifier's delivery task.
struct Setup {
    harness: PassHarness,
    collector: Collector,
    /// The collector's notifier, for another collector (a restarted process) to use.
    notifier: Notifier,
    delivery: Delivery,
}

async fn setup(receiver: &MockServer, simulator: SimulatorConfig, warn_at: &str) -> Setup {
    let harness = PassHarness::builder(simulator)
        .set("API__CONCURRENCY", "1")
        .set("QUOTA__WARN_AT", warn_at)
        .set("NOTIFY__WEBHOOK_URL", &format!("{}/hook", receiver.uri()))
        .set("NOTIFY__TIMEOUT", "300ms")
        .start()
        .await;
    harness
        .watch(&["7100000000000000001", "7100000000000000002", GONE])
        .await;
    let url = harness.settings.webhook_url().expect("valid").expect("set");
    let (notifier, delivery) =
        Notifier::start(url, harness.settings.notify.timeout).expect("notifier");
    let collector = harness.collector().with_notifier(notifier.clone());
    Setup {
        harness,
        collector,
        notifier,
        delivery,
    }
}

fn gone() -> SimulatorConfig {
    SimulatorConfig {
        not_found: [GONE.to_owned()].into(),
        ..SimulatorConfig::default()
    }
}

async fn pass(collector: &Collector) -> PassReport {
    run_full_pass_within(
        collector,
        Duration::from_secs(10),
        "a pass never waits for the webhook",
    )
    .await
}

async fn received(receiver: &MockServer) -> Vec<Value> {
    let requests = receiver.received_requests().await.expect("recorded");
    for request in &requests {
        let body = String::from_utf8_lossy(&request.body);
        assert!(
            !body.contains(API_SECRET) && !body.contains(API_KEY),
            "{body}"
        );
    }
    requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[tokio::test]
async fn versions_not_found_and_the_quota_warning_are_announced_once() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    // 3 of 4 calls reach warn_at 0.75.
    let s = setup(
        &receiver,
        SimulatorConfig {
            daily_max: 4,
            ..gone()
        },
        "0.75",
    )
    .await;
    let first = pass(&s.collector).await;
    assert_eq!(first.totals.new_versions, 2);
    s.harness.simulator.set_today(0);
    let second = pass(&s.collector).await;
    assert_eq!(second.totals.fetched_ok, 2, "{}", second.summary());
    // A restarted process (a new collector) knows from the stored answers that today's usage
    // already reached warn_at: it does not warn again (its 2 calls reach 3 of 4 once more).
    s.harness.simulator.set_today(1);
    let restarted = s.harness.collector().with_notifier(s.notifier.clone());
    let third = pass(&restarted).await;
    assert_eq!(third.totals.fetched_ok, 2, "{}", third.summary());
    drop((s.collector, restarted, s.notifier));
    s.delivery.finish(Duration::from_secs(5)).await;

    let events = received(&receiver).await;
    let versions = of_kind(&events, "new_version");
    assert_eq!(versions.len(), 2, "{events:?}");
    assert!(
        versions
            .iter()
            .all(|e| e["version"] == 1 && e["changed_fields"] == serde_json::json!([]))
    );
    let gone = of_kind(&events, "not_found");
    assert_eq!(
        gone.len(),
        1,
        "only when the video becomes not found: {events:?}"
    );
    assert_eq!(gone[0]["video_id"], GONE);
    let warnings = of_kind(&events, "quota_warning");
    assert_eq!(warnings.len(), 1, "once per Beijing day: {events:?}");
    assert_eq!(warnings[0]["max"], 4);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_takes_the_event() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let s = setup(&receiver, SimulatorConfig::default(), "0").await;
    s.harness
        .simulator
        .script("7100000000000000001", vec![Scripted::Code("4005".into())]);
    let report = pass(&s.collector).await;
    assert!(report.stop.is_some());
    drop(s.collector);
    s.delivery.finish(Duration::from_secs(10)).await;
    let events = received(&receiver).await;
    assert_eq!(events.len(), 3, "two refusals, then delivered: {events:?}");
    assert!(events.iter().all(|e| e["event"] == "account_stopped"));
    assert_eq!(events[2]["error_code"], "4005");
    assert!(events[2]["paused_until"].is_string());
}

#[tokio::test]
async fn a_hanging_receiver_never_blocks_a_pass() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&receiver)
        .await;
    let s = setup(&receiver, gone(), "0").await;
    // `pass` fails the test if the pass waits for the webhook.
    let report = pass(&s.collector).await;
    assert_eq!(report.totals.fetched_ok, 2);
    drop(s.collector);
    s.delivery.finish(Duration::from_millis(200)).await;
}
