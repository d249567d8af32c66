//! The daemon: a collection pass on every cron tick until shutdown. Cron is only the trigger.
//!
//! tokio-cron-scheduler starts a job again while the previous run still goes on and does not wait
//! for running jobs on shutdown, so passes are guarded here: a tick that finds a pass running is
//! skipped (and logged) rather than overlapped, and passes are tracked so that shutdown stops new
//! calls, lets calls in flight finish for `shutdown.grace`, then abandons them. Abandoning is safe:
//! each fetch's rows are written in one transaction, so nothing half-written is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::collector::{Collector, PassReport, Trigger};
use crate::health::HealthCheck;
use crate::metrics;
use crate::settings::RetentionSettings;
use crate::store::Store;

/// What the daemon needs besides the collector.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// A 6-field cron expression (seconds first).
    pub cron: String,
    pub timezone: chrono_tz::Tz,
    pub run_on_start: bool,
    /// How long calls in flight may take to finish after shutdown is asked for.
    pub grace: Duration,
    /// Where to serve `/metrics` and `/healthz`, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How long the call log is kept; pruned daily at [`PRUNE_CRON`] Beijing time.
    pub retention: RetentionSettings,
}

/// When the daily pruning runs (Beijing time): a quiet hour for most watch lists.
pub const PRUNE_CRON: &str = "0 30 4 * * *";

impl Schedule {
    /// The longest time between two ticks over the next day's ticks (at least a second).
    pub fn interval(&self, now: DateTime<Utc>) -> Duration {
        let parsed = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&self.cron);
        let Ok(cron) = parsed else {
            return Duration::from_secs(24 * 3600);
        };
        let mut longest = Duration::from_secs(1);
        let mut tick = now.with_timezone(&self.timezone);
        for _ in 0..48 {
            let Ok(next) = cron.find_next_occurrence(&tick, false) else {
                break;
            };
            longest = longest.max((next - tick).to_std().unwrap_or_default());
            tick = next;
        }
        longest
    }
}

/// Called with the report of every pass that completes.
pub type OnPass = Arc<dyn Fn(&PassReport) + Send + Sync>;

/// Runs passes on `schedule` until `shutdown` is cancelled, then waits up to the grace period.
pub async fn run(
    collector: Collector,
    schedule: Schedule,
    shutdown: CancellationToken,
    on_pass: OnPass,
) -> anyhow::Result<()> {
    let passes = Passes {
        collector,
        running: Arc::new(Mutex::new(())),
        tracker: TaskTracker::new(),
        shutdown: shutdown.clone(),
        on_pass,
    };
    if let Some(listen) = schedule.metrics_listen {
        let health = HealthCheck {
            interval: schedule.interval(Utc::now()),
            started_at: Some(Utc::now()),
        };
        let store = passes.collector.store().clone();
        let listener_shutdown = shutdown.clone();
        // Bind before the first pass, so a taken port stops the daemon at once.
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on metrics.listen = {listen}"))?;
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(listener, store, health, listener_shutdown).await {
                error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    if schedule.run_on_start {
        passes.start(Trigger::Start);
    }
    let mut scheduler = JobScheduler::new()
        .await
        .context("cannot start the cron scheduler")?;
    let on_tick = passes.clone();
    let job = Job::new_async_tz(schedule.cron.as_str(), schedule.timezone, move |_, _| {
        on_tick.start(Trigger::Schedule);
        Box::pin(async {})
    })
    .with_context(|| format!("cannot schedule cron {:?}", schedule.cron))?;
    scheduler
        .add(job)
        .await
        .context("cannot add the pass job to the scheduler")?;
    if schedule.retention.enabled() {
        let store = passes.collector.store().clone();
        let retention = schedule.retention.clone();
        let tracker = passes.tracker.clone();
        let prune = Job::new_async_tz(PRUNE_CRON, chrono_tz::Asia::Shanghai, move |_, _| {
            let (store, retention) = (store.clone(), retention.clone());
            tracker.spawn(prune_old_rows(store, retention));
            Box::pin(async {})
        })
        .context("cannot schedule pruning")?;
        scheduler
            .add(prune)
            .await
            .context("cannot add the pruning job to the scheduler")?;
    }
    scheduler
        .start()
        .await
        .context("cannot start the cron scheduler")?;
    info!(cron = %schedule.cron, timezone = %schedule.timezone, "daemon running; SIGINT or SIGTERM stops it");

    shutdown.cancelled().await;
    info!("shutting down: no new calls; waiting for calls in flight");
    if let Err(e) = scheduler.shutdown().await {
        warn!(error = %e, "the cron scheduler did not stop cleanly");
    }
    passes.tracker.close();
    if tokio::time::timeout(schedule.grace, passes.tracker.wait())
        .await
        .is_err()
    {
        warn!(
            grace = ?schedule.grace,
            "calls still in flight after the grace period are abandoned; their fetches are not stored"
        );
    }
    info!("stopped");
    Ok(())
}

/// Deletes call-log rows older than the retention settings and logs what went.
pub async fn prune_old_rows(store: Store, retention: RetentionSettings) {
    let (fetches_before, quota_before) = retention.cutoffs(Utc::now());
    match store.prune(fetches_before, quota_before).await {
        Ok(pruned) => info!(
            fetches = pruned.fetches,
            quota_samples = pruned.quota_samples,
            "pruned old rows"
        ),
        Err(e) => {
            error!(error = %crate::client::error_chain(&e), "pruning failed; tried again tomorrow")
        }
    }
}

/// Starts passes one at a time.
#[derive(Clone)]
struct Passes {
    collector: Collector,
    running: Arc<Mutex<()>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    on_pass: OnPass,
}

impl Passes {
    /// Starts a pass unless one is running (then the tick is skipped) or shutdown began.
    fn start(&self, trigger: Trigger) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let Ok(running) = Arc::clone(&self.running).try_lock_owned() else {
            warn!(
                trigger = ?trigger,
                "tick skipped: the previous pass is still running"
            );
            return;
        };
        let this = self.clone();
        self.tracker.spawn(async move {
            let _running = running;
            match this.collector.run_pass(trigger, None, &this.shutdown).await {
                Ok(report) => (this.on_pass)(&report),
                Err(e) => error!(
                    error = %crate::client::error_chain(&e),
                    "pass failed; the next tick tries again"
                ),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str) -> Schedule {
        Schedule {
            cron: cron.to_owned(),
            timezone: chrono_tz::Asia::Shanghai,
            run_on_start: false,
            grace: Duration::from_secs(1),
            metrics_listen: None,
            retention: RetentionSettings {
                fetches_days: 0,
                quota_samples_days: 0,
            },
        }
    }

    #[test]
    fn the_interval_is_the_longest_gap_between_ticks() {
        let now = "2026-11-29T10:00:00Z".parse().expect("time");
        let cases = [
            ("0 0 * * * *", 3600),
            ("*/2 * * * * *", 2),
            ("0 */30 * * * *", 1800),
            // 09:00 and 18:00 Beijing: the night gap is the longest.
            ("0 0 9,18 * * *", 15 * 3600),
        ];
        for (cron, seconds) in cases {
            assert_eq!(
                schedule(cron).interval(now),
                Duration::from_secs(seconds),
                "{cron}"
            );
        }
    }
}
