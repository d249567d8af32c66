//! The daemon: a collection pass on every cron tick until shutdown. Cron is only the trigger.
//!
//! Ticks are found by [`CronSchedule`] in the schedule's time zone and waited for here, one at a
//! time: a tick that finds a pass still running is skipped (and logged) rather than overlapped,
//! ticks missed while the machine slept are skipped rather than piled up, and passes are tracked
//! so that shutdown stops new calls, lets calls in flight finish for `shutdown.grace`, then
//! abandons them. Abandoning is safe: each fetch's rows are written in one transaction, so nothing
//! half-written is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::collector::{Collector, PASS_END_WAIT, PassError, PassReport, Trigger};
use crate::cron_schedule::CronSchedule;
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
    /// When the passes run.
    pub fn ticks(&self) -> anyhow::Result<CronSchedule> {
        CronSchedule::parse(&self.cron, self.timezone)
            .with_context(|| format!("cannot schedule cron {:?}", self.cron))
    }
}

/// The longest single wait between two looks at the clock: tokio's timer follows the monotonic
/// clock, ticks the wall clock, and the two part when the clock is set or the machine sleeps.
const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// Calls `on_tick` at each tick of `ticks` until `shutdown`. The tick waited for is always the
/// first after the present, so ticks missed while the machine slept are skipped, not piled up.
async fn every_tick(ticks: CronSchedule, shutdown: CancellationToken, mut on_tick: impl FnMut()) {
    let mut next = ticks.next_after(Utc::now());
    while let Some(tick) = next {
        let wait = (tick - Utc::now()).to_std().unwrap_or_default();
        if !wait.is_zero() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait.min(LONGEST_WAIT)) => continue,
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
        on_tick();
        next = ticks.next_after(Utc::now().max(tick));
    }
    warn!("the cron schedule fires no more: no pass starts from now on");
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
    let ticks = schedule.ticks()?;
    if let Some(listen) = schedule.metrics_listen {
        let health = HealthCheck {
            ticks: ticks.clone(),
            started_at: Some(Utc::now()),
        };
        let store = passes.collector.store().clone();
        let listener_shutdown = shutdown.clone();
        // Bind before the first pass, so a taken port stops the daemon at once.
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on metrics.listen = {listen}"))?;
        // Installed here, not in the spawned listener: the first pass starts right away, and
        // whatever it counted before the recorder existed would be lost.
        metrics::handle();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(listener, store, health, listener_shutdown).await {
                error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    if schedule.run_on_start {
        passes.start(Trigger::Start);
    }
    let on_tick = passes.clone();
    tokio::spawn(every_tick(ticks, shutdown.clone(), move || {
        on_tick.start(Trigger::Schedule);
    }));
    if schedule.retention.enabled() {
        let prune_ticks = CronSchedule::parse(PRUNE_CRON, chrono_tz::Asia::Shanghai)
            .context("cannot schedule pruning")?;
        let store = passes.collector.store().clone();
        let retention = schedule.retention.clone();
        let tracker = passes.tracker.clone();
        tokio::spawn(every_tick(prune_ticks, shutdown.clone(), move || {
            tracker.spawn(prune_old_rows(store.clone(), retention.clone()));
        }));
    }
    info!(cron = %schedule.cron, timezone = %schedule.timezone, "daemon running; SIGINT or SIGTERM stops it");

    shutdown.cancelled().await;
    info!("shutting down: no new calls; waiting for calls in flight");
    passes.tracker.close();
    // A pass abandons its calls at the grace and records its end; one that cannot (another
    // process holds the database's write lock) is given up shortly after.
    if tokio::time::timeout(schedule.grace + PASS_END_WAIT, passes.tracker.wait())
        .await
        .is_err()
    {
        warn!(
            grace = ?schedule.grace,
            "a pass or a prune was still writing after the grace period; it is abandoned"
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
                Err(PassError::AnotherPassRunning) => warn!(
                    trigger = ?trigger,
                    "tick skipped: another process is running a pass on this database"
                ),
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
    fn the_pruning_schedule_parses() {
        assert!(CronSchedule::parse(PRUNE_CRON, chrono_tz::Asia::Shanghai).is_some());
        assert!(schedule("0 */5 * * * *").ticks().is_ok());
        assert!(schedule("0 */5 * * *").ticks().is_err());
    }
}
