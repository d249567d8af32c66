//! Prometheus metrics and the `/metrics` + `/healthz` listener.
//!
//! Counters are recorded where things happen (the collector); gauges that describe state (quota,
//! videos by status) are refreshed from the database at scrape time, so they are never stale.
//! Labels are outcomes and error codes, never video ids. The listener binds where `metrics.listen`
//! says (loopback in the defaults' examples), separate from everything else.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use metrics::{SharedString, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::attempt::Outcome;
use crate::error_code;
use crate::health::{Health, HealthCheck};
use crate::quota::next_quota_reset;
use crate::store::Store;

/// Calls made, by `outcome` and `error_code` (onebound's code, or our failure key).
pub const CALLS: &str = "douyin_watch_calls_total";
/// Calls answered with a charged code (0000, 2000).
pub const CHARGED_CALLS: &str = "douyin_watch_charged_calls_total";
/// Snapshot versions created.
pub const NEW_VERSIONS: &str = "douyin_watch_new_versions_total";
/// Passes ended, by `result`: completed, stopped (account, quota, pause, shutdown) or failed.
pub const PASSES: &str = "douyin_watch_passes_total";
/// How long passes take.
pub const PASS_DURATION: &str = "douyin_watch_pass_duration_seconds";
/// Unix time the last pass completed.
pub const LAST_PASS_COMPLETED: &str = "douyin_watch_last_pass_completed_timestamp_seconds";
/// Calls onebound counted today (Beijing day), from the latest `api_info`.
pub const QUOTA_TODAY: &str = "douyin_watch_quota_calls_today";
/// The daily maximum, from the latest `api_info`.
pub const QUOTA_MAX: &str = "douyin_watch_quota_calls_max";
/// `max - today`.
pub const QUOTA_REMAINING: &str = "douyin_watch_quota_calls_remaining";
/// Unix time the key expires (midnight UTC of the expiry date).
pub const QUOTA_EXPIRY: &str = "douyin_watch_quota_expiry_timestamp_seconds";
/// Seconds until the quota day resets at Beijing midnight.
pub const QUOTA_RESET: &str = "douyin_watch_quota_reset_seconds";
/// Watched (active) videos, by `status`.
pub const VIDEOS: &str = "douyin_watch_videos";
/// Unix time calls are paused until (after an account-level code or 4013); 0 when not paused.
/// A paused collector still completes its passes (they stop at once), so `/healthz` stays 200:
/// alert on this instead.
pub const PAUSED_UNTIL: &str = "douyin_watch_calls_paused_until_timestamp_seconds";
/// Webhook notifications that could not be delivered after their retries.
pub const NOTIFICATIONS_FAILED: &str = "douyin_watch_notifications_failed_total";
/// Webhook notifications delivered.
pub const NOTIFICATIONS_SENT: &str = "douyin_watch_notifications_sent_total";

/// Every metric name this program exports (the dashboard may query only these).
pub const ALL: [&str; 16] = [
    CALLS,
    CHARGED_CALLS,
    NEW_VERSIONS,
    PASSES,
    PASS_DURATION,
    LAST_PASS_COMPLETED,
    QUOTA_TODAY,
    QUOTA_MAX,
    QUOTA_REMAINING,
    QUOTA_EXPIRY,
    QUOTA_RESET,
    VIDEOS,
    PAUSED_UNTIL,
    NOTIFICATIONS_FAILED,
    NOTIFICATIONS_SENT,
    "douyin_watch_up",
];

/// Buckets for pass durations, in seconds: from a few videos to a long watch list.
const PASS_DURATION_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(PASS_DURATION.to_owned()),
                &PASS_DURATION_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            warn!("a metrics recorder was already installed; /metrics shows only this one's");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(CALLS, "Calls to onebound by outcome and error code");
    metrics::describe_counter!(
        CHARGED_CALLS,
        "Calls answered with a charged code (0000, 2000)"
    );
    metrics::describe_counter!(NEW_VERSIONS, "Snapshot versions created");
    metrics::describe_counter!(PASSES, "Collection passes by result");
    metrics::describe_histogram!(PASS_DURATION, metrics::Unit::Seconds, "Pass duration");
    metrics::describe_gauge!(LAST_PASS_COMPLETED, "Unix time the last pass completed");
    metrics::describe_gauge!(QUOTA_TODAY, "Calls counted today (Beijing day)");
    metrics::describe_gauge!(QUOTA_MAX, "Daily call maximum");
    metrics::describe_gauge!(QUOTA_REMAINING, "Calls left today");
    metrics::describe_gauge!(QUOTA_EXPIRY, "Unix time the key expires");
    metrics::describe_gauge!(
        QUOTA_RESET,
        "Seconds until the quota resets (Beijing midnight)"
    );
    metrics::describe_gauge!(VIDEOS, "Watched videos by status");
    metrics::describe_gauge!(
        PAUSED_UNTIL,
        "Unix time calls are paused until (0: not paused)"
    );
    metrics::describe_counter!(NOTIFICATIONS_SENT, "Webhook notifications delivered");
    metrics::describe_counter!(NOTIFICATIONS_FAILED, "Webhook notifications given up on");
    metrics::describe_gauge!("douyin_watch_up", "1 while the daemon serves metrics");
}

/// The `error_code` label: onebound's known codes and our failure keys; anything else is "other",
/// so a hostile server cannot create unbounded label values.
fn code_label(error_code: Option<&str>, error: Option<&str>, outcome: Outcome) -> SharedString {
    if let Some(code) = error_code {
        return SharedString::const_str(
            error_code::lookup(code).map_or("other", |known| known.code),
        );
    }
    match (outcome, error) {
        (Outcome::Ok, _) => SharedString::const_str("0000"),
        (Outcome::ApiError, _) => SharedString::const_str("other"),
        (_, Some(key))
            if key.len() <= 24 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            SharedString::from_owned(key.to_owned())
        }
        _ => SharedString::const_str("other"),
    }
}

/// Counts one finished call.
pub fn record_call(outcome: Outcome, error_code: Option<&str>, error: Option<&str>, charged: bool) {
    counter!(CALLS, "outcome" => outcome.as_str(), "error_code" => code_label(error_code, error, outcome))
        .increment(1);
    if charged {
        counter!(CHARGED_CALLS).increment(1);
    }
}

/// Counts a new snapshot version.
pub fn record_new_version() {
    counter!(NEW_VERSIONS).increment(1);
}

/// Records the end of a pass: `result` is completed, stopped or failed.
pub fn record_pass(result: &'static str, seconds: f64, finished_at: DateTime<Utc>) {
    counter!(PASSES, "result" => result).increment(1);
    histogram!(PASS_DURATION).record(seconds);
    if result != "failed" {
        gauge!(LAST_PASS_COMPLETED).set(finished_at.timestamp() as f64);
    }
}

/// Sets the state gauges from the database: quota figures and videos by status.
pub async fn refresh_gauges(store: &Store, now: DateTime<Utc>) {
    gauge!(QUOTA_RESET).set((next_quota_reset(now) - now).num_seconds() as f64);
    match store.gauge_figures(now).await {
        Ok(figures) => {
            let set = |name: &'static str, value: Option<u64>| {
                if let Some(value) = value {
                    gauge!(name).set(value as f64);
                }
            };
            set(QUOTA_TODAY, figures.today);
            set(QUOTA_MAX, figures.max);
            set(
                QUOTA_REMAINING,
                figures
                    .max
                    .zip(figures.today)
                    .map(|(m, t)| m.saturating_sub(t)),
            );
            if let Some(expiry) = figures.expires_on.and_then(|d| d.and_hms_opt(0, 0, 0)) {
                gauge!(QUOTA_EXPIRY).set(expiry.and_utc().timestamp() as f64);
            }
            for (status, count) in figures.videos_by_status {
                gauge!(VIDEOS, "status" => status).set(count as f64);
            }
            gauge!(PAUSED_UNTIL).set(
                figures
                    .paused_until
                    .map_or(0.0, |until| until.timestamp() as f64),
            );
        }
        Err(error) => warn!(%error, "cannot refresh the metrics from the database"),
    }
}

#[derive(Clone)]
struct ListenerState {
    store: Store,
    health: HealthCheck,
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    health: HealthCheck,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    handle();
    let app = axum::Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(health_page))
        .with_state(ListenerState { store, health });
    info!(address = %listener.local_addr()?, "metrics and health listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn metrics_page(State(state): State<ListenerState>) -> impl IntoResponse {
    refresh_gauges(&state.store, Utc::now()).await;
    gauge!("douyin_watch_up").set(1.0);
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        handle().render(),
    )
}

async fn health_page(State(state): State<ListenerState>) -> impl IntoResponse {
    let health: Health = state.health.check(&state.store, Utc::now()).await;
    let status = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(health))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_labels_stay_a_bounded_set() {
        let cases = [
            (Some("0000"), None, Outcome::Ok, "0000"),
            (
                Some("4013"),
                Some("calls-exceeded"),
                Outcome::ApiError,
                "4013",
            ),
            (Some("0"), None, Outcome::Ok, "0000"),
            (Some("12345678"), None, Outcome::ApiError, "other"),
            (None, Some("timeout"), Outcome::TransportError, "timeout"),
            (None, Some("http_502"), Outcome::HttpError, "http_502"),
            (None, Some("<script>"), Outcome::DecodeError, "other"),
            (None, None, Outcome::DecodeError, "other"),
        ];
        for (code, error, outcome, label) in cases {
            assert_eq!(
                &*code_label(code, error, outcome),
                label,
                "{code:?} {error:?}"
            );
        }
    }
}
