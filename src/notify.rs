//! Webhook notifications: a JSON POST to `notify.webhook_url` for what a user wants to hear about.
//!
//! Events are queued after their data is committed and sent by a background task with retries,
//! so a slow or broken receiver never blocks a pass. Events carry no key or secret.

use std::time::Duration;

use backon::BackoffBuilder;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::client::error_chain;
use crate::metrics::{NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT};

/// Events waiting to be sent; beyond this, new ones are dropped (and counted as failed).
const QUEUE: usize = 1024;
/// Attempts per event before it is given up.
const ATTEMPTS: usize = 5;

/// Something worth telling the user about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A video's content changed (or it was seen for the first time: version 1).
    NewVersion {
        video_id: String,
        version: i64,
        changed_fields: Vec<&'static str>,
        title: Option<String>,
        at: String,
    },
    /// onebound answered 2000 for a video that was not already known as not found.
    NotFound { video_id: String, at: String },
    /// Today's calls crossed `quota.warn_at` of the daily max.
    QuotaWarning {
        today: u64,
        max: u64,
        warn_at: f64,
        quota_day: String,
        at: String,
    },
    /// An account-level code stopped the pass; no calls until `paused_until`.
    AccountStopped {
        error_code: String,
        meaning: String,
        paused_until: Option<String>,
        at: String,
    },
}

/// The sending side: cheap to clone, never blocks.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    queue: Option<mpsc::Sender<Event>>,
}

/// The background task delivering events; wait for it with [`Delivery::finish`].
#[derive(Debug)]
pub struct Delivery {
    task: JoinHandle<()>,
    closing: CancellationToken,
}

impl Notifier {
    /// A notifier that drops every event (no webhook configured).
    pub fn disabled() -> Notifier {
        Notifier { queue: None }
    }

    /// Starts delivering to `url`; each POST times out after `timeout`.
    pub fn start(url: url::Url, timeout: Duration) -> Result<(Notifier, Delivery), reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("douyin-watch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(reqwest::Error::without_url)?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        let closing = CancellationToken::new();
        let task = tokio::spawn(deliver(http, url, receiver, closing.clone()));
        Ok((
            Notifier {
                queue: Some(sender),
            },
            Delivery { task, closing },
        ))
    }

    /// Queues `event` without waiting; a full queue drops it with a warning.
    pub fn send(&self, event: Event) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(event).is_err() {
            metrics::counter!(NOTIFICATIONS_FAILED).increment(1);
            warn!("notification dropped: the webhook queue is full");
        }
    }
}

impl Delivery {
    /// Sends what is queued, waiting up to `grace`, then stops.
    pub async fn finish(self, grace: Duration) {
        self.closing.cancel();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            warn!("notifications still queued after the grace period are dropped");
        }
    }
}

async fn deliver(
    http: reqwest::Client,
    url: url::Url,
    mut events: mpsc::Receiver<Event>,
    closing: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
            // Closing: send what is still queued, then stop.
            () = closing.cancelled() => match events.try_recv() {
                Ok(event) => event,
                Err(_) => return,
            },
        };
        let mut delays = backon::ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .with_max_times(ATTEMPTS - 1)
            .build();
        let mut attempt = 1;
        loop {
            let result = http
                .post(url.clone())
                .json(&event)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            match result {
                Ok(_) => {
                    metrics::counter!(NOTIFICATIONS_SENT).increment(1);
                    debug!(attempt, "notification sent");
                    break;
                }
                Err(error) => {
                    let error = error_chain(&error.without_url());
                    match delays.next() {
                        Some(delay) => {
                            debug!(attempt, %error, "notification failed; retrying");
                            tokio::time::sleep(delay).await;
                            attempt += 1;
                        }
                        None => {
                            metrics::counter!(NOTIFICATIONS_FAILED).increment(1);
                            warn!(attempt, %error, "notification given up");
                            break;
                        }
                    }
                }
            }
        }
    }
}
