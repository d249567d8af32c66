//! One collection pass: fetch every due video once, store what came back, return a report.
//!
//! The pass orchestrates fetch → judge → store for each video. It holds the money rules: the
//! quota guard is asked before every call, charged answers are never retried, an account-level
//! code stops the pass at once, and after 4013 no call is made until the Beijing day rolls over.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use chrono::{DateTime, NaiveDate, Utc};
use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api_info::ApiInfo;
use crate::attempt::{Next, Outcome, Verdict, judge};
use crate::client::ApiClient;
use crate::content::Content;
use crate::error_code;
use crate::metrics;
use crate::notify::{Event, Notifier};
use crate::pace::{Pace, Slot};
use crate::quota::{
    QuotaGuard, ReserveReached, UsageWarning, counted_day, quota_day, quota_exceeded_until,
};
use crate::settings::Settings;
use crate::store::{
    AttemptRecord, PassTotals, Pause, QuotaInput, SnapshotInput, Store, StoreError, StoredAttempt,
    VideoIdList, VideoStatus, timestamp,
};
use crate::video_id::VideoId;

/// What started a pass; stored in `passes.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A cron tick of `run`.
    Schedule,
    /// `run`'s pass at start-up (`schedule.run_on_start`).
    Start,
    /// A `fetch` command.
    Fetch,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Start => "start",
            Trigger::Fetch => "fetch",
        }
    }
}

/// Why a pass stopped before every video was tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// onebound answered an account-level code (4005 bad credentials, 4013 calls exceeded...).
    Account { code: String, meaning: String },
    /// The next call would have spent the quota reserve.
    QuotaReserve { today: u64, max: u64, reserve: u64 },
    /// A pause recorded earlier (after 4013) is still in force.
    Paused { until: String, cause: String },
    /// SIGINT/SIGTERM arrived.
    Shutdown,
}

impl StopReason {
    /// The value stored in `passes.stopped_by`.
    fn key(&self) -> String {
        match self {
            StopReason::Account { code, .. } => code.clone(),
            StopReason::QuotaReserve { .. } => "quota_reserve".to_owned(),
            StopReason::Paused { .. } => "paused".to_owned(),
            StopReason::Shutdown => "shutdown".to_owned(),
        }
    }

    /// True for the stops that mean "no more calls today or until the account is fixed".
    pub fn is_account_or_quota(&self) -> bool {
        !matches!(self, StopReason::Shutdown)
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Account { code, meaning } => {
                write!(f, "onebound answered {code} ({meaning}): no further calls")
            }
            StopReason::QuotaReserve {
                today,
                max,
                reserve,
            } => write!(
                f,
                "quota reserve reached: {today} of {max} calls used today, {reserve} kept in reserve (quota.reserve)"
            ),
            StopReason::Paused { until, cause } => {
                write!(f, "calls are paused until {until} ({cause})")
            }
            StopReason::Shutdown => write!(f, "shutting down"),
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub pass_id: i64,
    pub trigger: Trigger,
    #[serde(flatten)]
    pub totals: PassTotals,
    pub stop: Option<StopReason>,
    pub elapsed_ms: u128,
}

impl PassReport {
    /// One line for `fetch` and the daemon's log.
    pub fn summary(&self) -> String {
        let t = &self.totals;
        let mut line = format!(
            "pass {}: {} videos, {} ok ({} new versions), {} not found, {} failed, {} skipped; {} calls, {} charged, {:.1}s",
            self.pass_id,
            t.videos,
            t.fetched_ok,
            t.new_versions,
            t.not_found,
            t.failed,
            t.skipped,
            t.calls,
            t.charged_calls,
            self.elapsed_ms as f64 / 1000.0
        );
        if t.removed > 0 {
            line.push_str(&format!(
                "; {} removed from the watch list during the pass, not called",
                t.removed
            ));
        }
        if let Some(stop) = &self.stop {
            line.push_str(&format!("; stopped: {stop}"));
        }
        line
    }
}

/// A pass that could not run or finish; nothing stored is lost.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The database failed.
    #[error("collection pass failed: {0}")]
    Store(#[from] StoreError),
    /// The database's disk is (nearly) full: what a call returns could not be stored.
    #[error(
        "the database's disk has {free_mib} MiB free, under database.min_free_mib ({min_mib}): \
         no call was made, since what it returns could not be stored; free some space"
    )]
    DiskNearlyFull { free_mib: u64, min_mib: u64 },
    /// Another process runs a pass on the same database; this one made no call.
    #[error(
        "another pass is running on this database (the daemon, or another fetch): no call was \
         made; try again once it has ended"
    )]
    AnotherPassRunning,
}

/// The knobs of a pass, from the settings.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub concurrency: usize,
    pub rate_per_sec: NonZeroU32,
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub reserve: u64,
    pub account_pause: Duration,
    pub account_pause_max: Duration,
    /// How long a `not_found` video is left out of passes over the watch list.
    pub not_found_recheck: Duration,
    /// Warn once a Beijing day when today's calls reach this fraction of the max.
    pub warn_at: f64,
    /// A pass does not start while the database's disk has fewer bytes free (0: never checked).
    pub min_free_bytes: u64,
    /// After shutdown, how long calls in flight get to finish before the pass abandons them and
    /// records its end (`shutdown.grace`).
    pub shutdown_grace: Duration,
}

impl PassOptions {
    /// Takes the `[api]`, `[retry]` and `[quota]` values.
    pub fn from_settings(settings: &Settings) -> PassOptions {
        PassOptions {
            concurrency: settings.api.concurrency.max(1),
            rate_per_sec: NonZeroU32::new(settings.api.rate_per_sec).unwrap_or(NonZeroU32::MIN),
            max_attempts: settings.retry.max_attempts.max(1),
            base_delay: settings.retry.base_delay,
            max_delay: settings.retry.max_delay,
            reserve: settings.quota.reserve,
            account_pause: settings.retry.account_pause,
            account_pause_max: settings.retry.account_pause_max,
            not_found_recheck: settings.retry.not_found_recheck,
            warn_at: settings.quota.warn_at,
            min_free_bytes: settings.database.min_free_mib.saturating_mul(1024 * 1024),
            shutdown_grace: settings.shutdown.grace,
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        backon::ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts as usize)
            .build()
    }
}

/// Runs passes: the store, the client and the options they share.
#[derive(Clone)]
pub struct Collector {
    store: Store,
    client: ApiClient,
    options: PassOptions,
    notifier: Notifier,
    usage_warning: Arc<UsageWarning>,
    progress: Option<ProgressHook>,
}

/// Receives a pass's running totals each time a video ends.
pub type ProgressHook = Arc<dyn Fn(&PassTotals) + Send + Sync>;

/// How one video's part of a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoEnd {
    Stored {
        new_version: bool,
    },
    NotFound,
    Failed,
    /// No call was made for it.
    Skipped,
    /// It was taken off the watch list before its first call.
    Removed,
}

#[derive(Debug, Default)]
struct Calls {
    made: u64,
    charged: u64,
}

/// `api.rate_per_sec` as governor keeps it, on the standard monotonic clock: governor's default
/// clock (quanta) calibrates itself when first read, about 10 million instructions (3 ms) at
/// every start of `fetch`, for a limiter read a few times per call.
type RateLimit =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

/// State shared by the tasks of one pass.
struct PassContext {
    store: Store,
    client: ApiClient,
    options: PassOptions,
    pass_id: i64,
    guard: QuotaGuard,
    pace: Pace,
    /// Videos started and not yet stored. A call's slot frees up as soon as its answer is judged,
    /// before the answer is stored (which waits for its group commit): this bounds the answers
    /// waiting to be stored, so that memory stays flat when storing falls behind calling.
    unstored: Arc<Semaphore>,
    rate: RateLimit,
    /// Cancelled to stop starting calls: shutdown, an account-level code, the reserve, a store error.
    stop: CancellationToken,
    stop_reason: Mutex<Option<StopReason>>,
    /// The stop cut short a video that had attempts left after a failure.
    retries_cut: AtomicBool,
    /// Cancelled when the shutdown grace is over: calls still waiting for their answer are
    /// given up (answers already in hand are still stored).
    abandon: CancellationToken,
    /// A call was given up that way.
    calls_abandoned: AtomicBool,
    /// A pause for an account-level answer has been recorded in this pass.
    account_paused: AtomicBool,
    /// Calls are held back because the store stopped storing (see [`store_keeping_up`]).
    store_stalled: AtomicBool,
    store_error: Mutex<Option<StoreError>>,
    calls: Mutex<Calls>,
    notifier: Notifier,
    usage_warning: Arc<UsageWarning>,
    /// Videos `watch remove` took off the list since the pass began (see `watch_removals`).
    removed: Mutex<HashSet<VideoId>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each guarded value is replaced whole, so a panic elsewhere cannot leave it half-updated.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PassContext {
    /// `end` for a video whose course the stop cut short before `attempt`; remembered when
    /// retries were left. A video removed from the watch list meanwhile was not cut short.
    fn cut_short(&self, id: &VideoId, attempt: u32, end: VideoEnd) -> VideoEnd {
        if lock(&self.removed).contains(id) {
            return removed(attempt, end);
        }
        if matches!(end, VideoEnd::Failed) {
            self.retries_cut.store(true, Ordering::Relaxed);
        }
        end
    }

    /// Stops the pass for `reason`; the first reason given is the one reported, and only then is
    /// `true` returned.
    fn stop_for(&self, reason: StopReason) -> bool {
        let mut stop_reason = lock(&self.stop_reason);
        let first = stop_reason.is_none();
        stop_reason.get_or_insert(reason);
        self.stop.cancel();
        first
    }

    fn fail(&self, error: StoreError) {
        error!(error = %crate::client::error_chain(&error), "storing a fetch failed; stopping the pass");
        lock(&self.store_error).get_or_insert(error);
        self.stop.cancel();
    }
}

impl Collector {
    /// A collector over `store` calling onebound through `client`.
    pub fn new(store: Store, client: ApiClient, options: PassOptions) -> Collector {
        Collector {
            store,
            client,
            usage_warning: Arc::new(UsageWarning::new(options.warn_at)),
            options,
            notifier: Notifier::disabled(),
            progress: None,
        }
    }

    /// Calls `hook` with the running totals as videos end (for a progress bar).
    pub fn with_progress(self, hook: ProgressHook) -> Collector {
        Collector {
            progress: Some(hook),
            ..self
        }
    }

    fn report_progress(&self, totals: &PassTotals) {
        if let Some(hook) = &self.progress {
            hook(totals);
        }
    }

    /// Sends events (new versions, not found, quota warning, account stops) through `notifier`.
    pub fn with_notifier(self, notifier: Notifier) -> Collector {
        Collector { notifier, ..self }
    }

    /// The store this collector writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs one pass over `only` (or every active video, longest-unfetched first, but for
    /// `not_found` ones not yet due for a recheck) until done, stopped by the money rules, or
    /// `shutdown` is cancelled.
    pub async fn run_pass(
        &self,
        trigger: Trigger,
        only: Option<Vec<VideoId>>,
        shutdown: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        let started = Instant::now();
        let result = self.run_pass_to_its_end(trigger, only, shutdown).await;
        // A pass that failed before any call (a disk nearly full, a database that refuses the
        // pass's row) counts as failed too; one that another pass kept from starting does not.
        if let Err(error) = &result
            && !matches!(error, PassError::AnotherPassRunning)
        {
            metrics::record_pass("failed", started.elapsed().as_secs_f64(), Utc::now());
        }
        result
    }

    async fn run_pass_to_its_end(
        &self,
        trigger: Trigger,
        only: Option<Vec<VideoId>>,
        shutdown: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        // One pass at a time per database, across processes: two would call for the same
        // videos and each keep `quota.reserve` only against its own calls.
        let Some(_claim) = self.store.claim_pass() else {
            return Err(PassError::AnotherPassRunning);
        };
        if let Some(free) = self.store.free_bytes()
            && free < self.options.min_free_bytes
        {
            return Err(PassError::DiskNearlyFull {
                free_mib: free / (1024 * 1024),
                min_mib: self.options.min_free_bytes / (1024 * 1024),
            });
        }
        let started = Instant::now();
        let now = Utc::now();
        let ids = match only {
            Some(ids) => VideoIdList::from(ids),
            None => {
                let recheck_before = recheck_before(now, self.options.not_found_recheck);
                self.store.due_video_id_list(recheck_before).await?
            }
        };
        let videos = ids.len() as u64;
        let pass_id = self.store.begin_pass(trigger.as_str(), videos, now).await?;
        info!(pass_id, trigger = trigger.as_str(), videos, "pass started");

        let (today, max) = self.store.day_quota(quota_day(now)).await?;
        if let (Some(today), Some(max)) = (today, max) {
            self.usage_warning
                .already_stored(quota_day(now), today, max);
        }
        // After an account-level stop with no success since, one call finds out whether the
        // account is back before the others go out (see `Pace::probing`).
        let after_account_stop = self.store.account_pauses_since_last_success().await? > 0;
        let ctx = Arc::new(PassContext {
            store: self.store.clone(),
            client: self.client.clone(),
            options: self.options.clone(),
            pass_id,
            guard: QuotaGuard::new(self.options.reserve, quota_day(now), today, max),
            pace: if after_account_stop {
                Pace::probing(self.options.concurrency)
            } else {
                Pace::new(self.options.concurrency)
            },
            unstored: Arc::new(Semaphore::new(unstored_limit(self.options.concurrency))),
            // Calls start evenly, 1/rate apart: governor's default burst (a whole second's
            // calls at once) let twice `api.rate_per_sec` start within the first second.
            rate: RateLimiter::direct_with_clock(
                Quota::per_second(self.options.rate_per_sec).allow_burst(NonZeroU32::MIN),
                MonotonicClock,
            ),
            stop: shutdown.child_token(),
            stop_reason: Mutex::new(None),
            retries_cut: AtomicBool::new(false),
            abandon: CancellationToken::new(),
            calls_abandoned: AtomicBool::new(false),
            account_paused: AtomicBool::new(false),
            store_stalled: AtomicBool::new(false),
            store_error: Mutex::new(None),
            calls: Mutex::new(Calls::default()),
            notifier: self.notifier.clone(),
            usage_warning: Arc::clone(&self.usage_warning),
            removed: Mutex::default(),
        });

        if let Some(pause) = self.store.active_pause(now).await? {
            ctx.stop_for(StopReason::Paused {
                until: pause.until,
                cause: pause.cause,
            });
        } else if let Some(reached) = ctx.guard.is_exhausted(now) {
            ctx.stop_for(reserve_stop(reached));
        }

        let totals = PassTotals {
            videos,
            ..PassTotals::default()
        };
        // The loop runs as a task of its own, on a runtime worker: the videos' tasks it spawns
        // and joins then stay on the workers instead of waking the thread that called
        // `run_pass` (the `fetch` command's main thread) for every video. Dropping this future
        // still stops the pass: the task is aborted with it.
        let removals = tokio::spawn(watch_removals(Arc::clone(&ctx), now));
        let _stop_watching = AbortOnDrop(removals.abort_handle());
        let driver = tokio::spawn(drive(
            self.clone(),
            Arc::clone(&ctx),
            ids,
            totals,
            shutdown.clone(),
        ));
        let _abort = AbortOnDrop(driver.abort_handle());
        let mut totals = match driver.await {
            Ok(totals) => totals,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        {
            let calls = lock(&ctx.calls);
            totals.calls = calls.made;
            totals.charged_calls = calls.charged;
        }
        if let Some(error) = lock(&ctx.store_error).take() {
            return Err(PassError::Store(error));
        }
        let stop = lock(&ctx.stop_reason).clone().or_else(|| {
            let cut = totals.skipped > 0
                || ctx.retries_cut.load(Ordering::Relaxed)
                || ctx.calls_abandoned.load(Ordering::Relaxed);
            (shutdown.is_cancelled() && cut).then_some(StopReason::Shutdown)
        });
        totals.stopped_by = stop.as_ref().map(StopReason::key);
        let finished_at = Utc::now();
        self.store
            .finish_pass(pass_id, &totals, finished_at)
            .await?;
        let result = if stop.is_some() {
            "stopped"
        } else {
            "completed"
        };
        metrics::record_pass(result, started.elapsed().as_secs_f64(), finished_at);
        let report = PassReport {
            pass_id,
            trigger,
            totals,
            stop,
            elapsed_ms: started.elapsed().as_millis(),
        };
        match &report.stop {
            Some(stop) if stop.is_account_or_quota() => warn!("{}", report.summary()),
            _ => info!("{}", report.summary()),
        }
        Ok(report)
    }
}

/// Starts videos as slots free up, and tallies those that end meanwhile, so finished tasks never
/// pile up and progress is known as it happens; returns the totals once every video has ended.
async fn drive(
    collector: Collector,
    ctx: Arc<PassContext>,
    ids: VideoIdList,
    mut totals: PassTotals,
    shutdown: CancellationToken,
) -> PassTotals {
    let mut tasks = JoinSet::new();
    let mut waiting = ids.into_iter();
    let mut next = waiting.next();
    let grace = ctx.options.shutdown_grace;
    let grace_over = async move {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::pin!(grace_over);
    let mut abandoned = false;
    collector.report_progress(&totals);
    loop {
        tokio::select! {
            biased;
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                tally(&mut totals, joined);
                collector.report_progress(&totals);
            }
            // Calls still waiting for their answer after the grace are given up, so that the
            // pass can record its end before the process exits; answers already in hand are
            // still stored.
            () = &mut grace_over, if !abandoned && !tasks.is_empty() => {
                abandoned = true;
                warn!(
                    ?grace,
                    "calls still in flight after the grace period are abandoned; their answers are not stored"
                );
                ctx.abandon.cancel();
            }
            () = ctx.stop.cancelled(), if next.is_some() => {
                // Those removed meanwhile are counted as such, not as cut short by the stop.
                {
                    let removed = lock(&ctx.removed);
                    for id in next.take().into_iter().chain(waiting.by_ref()) {
                        if removed.contains(&id) {
                            totals.removed += 1;
                        } else {
                            totals.skipped += 1;
                        }
                    }
                }
                collector.report_progress(&totals);
            }
            (unstored, slot) = start(&ctx), if next.is_some() => {
                if let Some(id) = next.take() {
                    tasks.spawn(collect_video(Arc::clone(&ctx), id, slot, unstored));
                }
                next = waiting.next();
            }
            else => break,
        }
    }
    totals
}

/// How long, after `shutdown.grace`, a pass stopped by shutdown may take to record its end in
/// `passes` (it abandons its calls in flight at the grace); whoever waits for it gives up then,
/// as when another process holds the database's write lock.
pub const PASS_END_WAIT: Duration = Duration::from_secs(3);

/// How often a pass asks which videos were removed from the watch list since it began.
const REMOVAL_CHECK: Duration = Duration::from_secs(2);

/// Keeps `ctx.removed` up to date, so that a video taken off the list during a long pass (a low
/// `api.rate_per_sec`, a retry's backoff) gets no further paid call.
async fn watch_removals(ctx: Arc<PassContext>, since: DateTime<Utc>) {
    let mut checks =
        tokio::time::interval_at(tokio::time::Instant::now() + REMOVAL_CHECK, REMOVAL_CHECK);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        checks.tick().await;
        match ctx.store.removed_since(since).await {
            Ok(removed) => *lock(&ctx.removed) = removed,
            Err(error) => warn!(
                error = %error,
                "cannot read the watch list; videos removed during this pass may still be called"
            ),
        }
    }
}

/// True (and logged) when `id` was taken off the watch list during the pass.
fn was_removed(ctx: &PassContext, id: &VideoId, attempt: u32) -> bool {
    let removed = lock(&ctx.removed).contains(id);
    if removed {
        info!(video_id = %id, attempt, "removed from the watch list during the pass; no further call");
    }
    removed
}

/// How a video removed before `attempt` ends: removed if it was never called, else as its last
/// attempt left it.
fn removed(attempt: u32, end: VideoEnd) -> VideoEnd {
    if attempt == 1 { VideoEnd::Removed } else { end }
}

#[derive(Debug, PartialEq, Eq)]
enum Turn {
    Taken,
    Removed,
}

/// Waits for the call's turn under `api.rate_per_sec` (governor's `until_ready`, with the
/// removals looked at between tries): a video removed while it waits gives its turn up, so that
/// removing many videos does not stretch a slow pass by their turns.
async fn rate_turn(ctx: &PassContext, id: &VideoId, attempt: u32) -> Turn {
    loop {
        if was_removed(ctx, id, attempt) {
            return Turn::Removed;
        }
        match ctx.rate.check() {
            Ok(()) => return Turn::Taken,
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(ctx.rate.clock()));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// How many videos may be started and not yet stored, for `concurrency` calls in flight: enough
/// for full group commits (see `Store::record_attempt`), few enough to keep memory flat.
fn unstored_limit(concurrency: usize) -> usize {
    concurrency.saturating_mul(2).max(128)
}

/// Waits until the next video may start: room among the unstored answers, then a call slot.
async fn start(ctx: &PassContext) -> (OwnedSemaphorePermit, Slot) {
    let unstored = Arc::clone(&ctx.unstored)
        .acquire_owned()
        .await
        .unwrap_or_else(|_| unreachable!("the unstored semaphore is never closed"));
    (unstored, ctx.pace.acquire().await)
}

/// How long an answer may wait to be stored before the pass makes no further call. A group commit
/// takes milliseconds; an answer waiting this long means the database is held elsewhere
/// (another process's write lock: a `prune`, a `VACUUM`, a user's transaction) or stuck.
const STORE_STALL: Duration = Duration::from_secs(2);
/// How often a pass held up by the store looks again.
const STORE_STALL_CHECK: Duration = Duration::from_millis(100);

/// Waits while the store has left an answer unstored for over [`STORE_STALL`]: every call is
/// paid for, and an answer that cannot be stored is lost. Without this wait a stalled store
/// would let the pass go on calling until the bound on unstored answers (128 calls or more).
/// Asked right before each call, retries included, so that no call already admitted goes out.
/// True if it waited.
async fn store_keeping_up(ctx: &PassContext) -> bool {
    let stalled = || {
        ctx.store
            .oldest_unstored_wait()
            .filter(|waited| *waited > STORE_STALL)
    };
    let Some(waited) = stalled() else {
        return false;
    };
    if !ctx.store_stalled.swap(true, Ordering::Relaxed) {
        warn!(
            waited_s = waited.as_secs(),
            "the database has not stored an answer for {} s (another process holding its write \
             lock, or a slow disk?); no new call until it does",
            waited.as_secs()
        );
    }
    while stalled().is_some() {
        tokio::time::sleep(STORE_STALL_CHECK).await;
    }
    if ctx.store_stalled.swap(false, Ordering::Relaxed) {
        info!("the database stores answers again; calls go on");
    }
    true
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Adds one video's end to the pass totals.
fn tally(totals: &mut PassTotals, joined: Result<VideoEnd, tokio::task::JoinError>) {
    match joined {
        Ok(VideoEnd::Stored { new_version }) => {
            totals.fetched_ok += 1;
            totals.new_versions += u64::from(new_version);
        }
        Ok(VideoEnd::NotFound) => totals.not_found += 1,
        Ok(VideoEnd::Failed) => totals.failed += 1,
        Ok(VideoEnd::Skipped) => totals.skipped += 1,
        Ok(VideoEnd::Removed) => totals.removed += 1,
        Err(join_error) => {
            // Not the error's text: it repeats the panic's message, which the panic hook has
            // already logged with the secret blanked out.
            error!(task = %join_error.id(), "a video's task panicked; the pass goes on");
            totals.failed += 1;
        }
    }
}

fn reserve_stop(reached: ReserveReached) -> StopReason {
    StopReason::QuotaReserve {
        today: reached.today,
        max: reached.max,
        reserve: reached.reserve,
    }
}

/// Fetches one video, retrying transient failures, and stores every attempt.
async fn collect_video(
    ctx: Arc<PassContext>,
    id: VideoId,
    first_slot: Slot,
    _unstored: OwnedSemaphorePermit,
) -> VideoEnd {
    let mut delays = ctx.options.backoff();
    let mut slot = Some(first_slot);
    let mut end = VideoEnd::Skipped;
    // Set when a failure of this pass turned the video from ok to failing: a retry that succeeds
    // puts its `status_changed_at` back (see `VideoStatus::Mended`).
    let mut ok_since: Option<String> = None;
    for attempt in 1..=ctx.options.max_attempts {
        // Before the waits for a slot and the rate: a video removed meanwhile takes no turn.
        if was_removed(&ctx, &id, attempt) {
            return removed(attempt, end);
        }
        let held = match slot.take() {
            Some(held) => held,
            None => tokio::select! {
                held = ctx.pace.acquire() => held,
                () = ctx.stop.cancelled() => return ctx.cut_short(&id, attempt, end),
            },
        };
        // The rate comes before the quota ticket: a call admitted by the quota guard must not
        // then wait, and be cancelled, while a later one finds the reserve reached.
        tokio::select! {
            turn = rate_turn(&ctx, &id, attempt) => if turn == Turn::Removed {
                return removed(attempt, end);
            },
            () = ctx.stop.cancelled() => return ctx.cut_short(&id, attempt, end),
        }
        let waited = tokio::select! {
            waited = store_keeping_up(&ctx) => waited,
            () = ctx.stop.cancelled() => return ctx.cut_short(&id, attempt, end),
        };
        if waited && was_removed(&ctx, &id, attempt) {
            return removed(attempt, end);
        }
        if ctx.stop.is_cancelled() {
            return ctx.cut_short(&id, attempt, end);
        }
        let ticket = match ctx.guard.try_begin(Utc::now()) {
            Ok(ticket) => ticket,
            Err(reached) => {
                if attempt > 1 {
                    record_skipped_retry(&ctx, &id, attempt, &reached).await;
                }
                ctx.stop_for(reserve_stop(reached));
                return end;
            }
        };
        let started_at = Utc::now();
        let answer = tokio::select! {
            biased;
            answer = ctx.client.item_get_video(&id) => answer,
            () = ctx.abandon.cancelled() => {
                // Sent, perhaps charged, never answered: a call made, a video failed.
                lock(&ctx.calls).made += 1;
                ctx.calls_abandoned.store(true, Ordering::Relaxed);
                info!(video_id = %id, attempt, "call abandoned at the end of the shutdown grace");
                return VideoEnd::Failed;
            }
        };
        // Tests make a video's task panic here, after a paid call, to check what a panic shows.
        fail::fail_point!("collect-video");
        let finished_at = Utc::now();
        let mut verdict = judge(&id, answer.exchange());
        // The verdict holds what is kept; the body need not wait with it for the store.
        drop(answer);
        // The pace reacts before this call's slot frees up and before the attempt is stored
        // (which waits for its group commit), so that no further call starts at the old pace.
        match verdict.next {
            Next::StopPass => ctx.stop.cancel(),
            Next::SlowDown => {
                let limit = ctx.pace.slow_down();
                warn!(video_id = %id, limit, "rate limited; fewer calls in flight");
            }
            Next::Store => ctx.pace.succeeded(),
            Next::NotFound | Next::GiveUp | Next::Retry => {}
        }
        let api_info = verdict.api_info.as_deref().map(parse_api_info);
        if let Some(Some(info)) = &api_info {
            let day = counted_day(started_at, verdict.server_time.as_deref());
            ctx.guard.observe(day, info);
            warn_on_usage(&ctx, info, day, finished_at);
        }
        drop(ticket);
        // Only now, with the quota it reported known, may the next call start.
        drop(held);
        {
            let mut calls = lock(&ctx.calls);
            calls.made += 1;
            calls.charged += u64::from(verdict.charged);
        }
        // Answers come in bursts (the calls of a pass start together and take the same time):
        // let the freed slot start its next call before this answer is normalized and stored, so
        // that the calls of a burst go out again at once rather than one store apart.
        tokio::task::yield_now().await;

        // The content and the raw item move into the stored attempt; the announcement of a new
        // version needs only the title.
        let (snapshot, title) = match verdict.item.take() {
            Some((item, raw)) => {
                let content = Content::from_item(&item);
                let snapshot = SnapshotInput {
                    content_hash: content.hash(),
                    content,
                    raw,
                };
                (Some(snapshot), item.title)
            }
            None => (None, None),
        };
        let record = AttemptRecord {
            pass_id: Some(ctx.pass_id),
            video_id: id.as_str(),
            started_at,
            finished_at,
            attempt,
            outcome: verdict.outcome,
            http_status: verdict.http_status,
            error_code: verdict.error_code.as_deref(),
            error: verdict.error.as_deref(),
            reason: verdict.reason.as_deref(),
            message: verdict.message.as_deref(),
            charged: verdict.charged,
            request_id: verdict.request_id.as_deref(),
            snapshot,
            quota: verdict.api_info.as_deref().map(|text| QuotaInput {
                api_info: text,
                parsed: api_info.as_ref().and_then(Option::as_ref),
                server_time: verdict.server_time.as_deref(),
            }),
            video_status: video_status(verdict.next, &mut ok_since),
        };
        let mut stored = match ctx.store.record_attempt(record).await {
            Ok(stored) => stored,
            Err(error) => {
                ctx.fail(error);
                return VideoEnd::Failed;
            }
        };
        metrics::record_call(
            verdict.outcome,
            verdict.error_code.as_deref(),
            verdict.error.as_deref(),
            verdict.charged,
        );
        notify_stored(&ctx, &id, &stored, title, finished_at);
        ok_since = ok_since.or(stored.left_ok_since.take());
        if verdict.outcome != Outcome::Ok {
            log_failure(&id, attempt, &verdict);
        }

        end = match verdict.next {
            Next::Store => {
                let new_version = stored.snapshot.is_some_and(|s| s.is_new_version);
                return VideoEnd::Stored { new_version };
            }
            Next::NotFound => return VideoEnd::NotFound,
            Next::GiveUp => return VideoEnd::Failed,
            Next::StopPass => {
                stop_for_account(&ctx, &verdict, started_at, finished_at).await;
                return VideoEnd::Failed;
            }
            Next::Retry | Next::SlowDown => VideoEnd::Failed,
        };
        let Some(delay) = delays.next() else { break };
        if attempt < ctx.options.max_attempts {
            tokio::select! {
                () = tokio::time::sleep(delay) => {},
                () = ctx.stop.cancelled() => return ctx.cut_short(&id, attempt + 1, end),
            }
        }
    }
    end
}

/// Counts and announces what a stored attempt changed: a new version, a video gone.
fn notify_stored(
    ctx: &PassContext,
    id: &VideoId,
    stored: &StoredAttempt,
    title: Option<String>,
    at: DateTime<Utc>,
) {
    if let Some(snapshot) = stored.snapshot.as_ref().filter(|s| s.is_new_version) {
        metrics::record_new_version();
        ctx.notifier.send(Event::NewVersion {
            video_id: id.to_string(),
            version: snapshot.version,
            changed_fields: snapshot.changed_fields.clone(),
            title,
            at: timestamp(at),
        });
    }
    if stored.became_not_found {
        ctx.notifier.send(Event::NotFound {
            video_id: id.to_string(),
            at: timestamp(at),
        });
    }
}

/// Warns (log and webhook) the first time on a Beijing day that usage reaches `quota.warn_at`;
/// `day` is the one the figures count against.
fn warn_on_usage(ctx: &PassContext, info: &ApiInfo, day: NaiveDate, at: DateTime<Utc>) {
    let (Some(today), Some(max)) = (info.today, info.max) else {
        return;
    };
    if ctx.usage_warning.crossed(day, today, max) {
        warn!(
            today,
            max,
            warn_at = ctx.usage_warning.warn_at(),
            "quota usage crossed quota.warn_at"
        );
        ctx.notifier.send(Event::QuotaWarning {
            today,
            max,
            warn_at: ctx.usage_warning.warn_at(),
            quota_day: day.to_string(),
            at: timestamp(at),
        });
    }
}

fn parse_api_info(text: &str) -> Option<ApiInfo> {
    match ApiInfo::parse(text) {
        Ok(info) => Some(info),
        Err(error) => {
            warn!(%error, "api_info not understood; kept raw");
            None
        }
    }
}

/// What an attempt does to its video's row; `ok_since` is taken by a success that mends this
/// pass's failures.
fn video_status(next: Next, ok_since: &mut Option<String>) -> VideoStatus {
    match next {
        Next::Store => match ok_since.take() {
            Some(ok_since) => VideoStatus::Mended { ok_since },
            None => VideoStatus::Ok,
        },
        Next::NotFound => VideoStatus::NotFound,
        // The account failed, not the video: leave its row as it was.
        Next::StopPass => VideoStatus::Untouched,
        Next::Retry | Next::SlowDown | Next::GiveUp => VideoStatus::Failing,
    }
}

fn log_failure(id: &VideoId, attempt: u32, verdict: &Verdict) {
    let error_code = verdict.error_code.as_deref().unwrap_or("");
    let error = verdict.error.as_deref().unwrap_or("");
    let reason = verdict.reason.as_deref().unwrap_or("");
    let message = verdict.message.as_deref().unwrap_or("");
    if verdict.next == Next::StopPass {
        error!(video_id = %id, error_code, error, reason, attempt, outcome = verdict.outcome.as_str(), "{message}");
    } else {
        warn!(video_id = %id, error_code, error, reason, attempt, outcome = verdict.outcome.as_str(), "{message}");
    }
}

/// Videos found gone and last fetched before this instant are due again. A configured recheck
/// of ages must not overflow (a panic at the start of every pass): it means never.
fn recheck_before(now: DateTime<Utc>, recheck: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(recheck)
        .ok()
        .and_then(|recheck| now.checked_sub_signed(recheck))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How long calls pause after an account-level code, when `earlier` such pauses came before it
/// with no successful fetch in between: `base`, doubled each time, at most `max`.
fn account_pause(base: Duration, max: Duration, earlier: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(earlier)).min(max)
}

/// Stops the pass for an account-level code and, for the pass's first stop, records the pause
/// that keeps later passes quiet: until Beijing midnight after 4013, an exponentially growing one
/// after the others.
async fn stop_for_account(
    ctx: &PassContext,
    verdict: &Verdict,
    started_at: DateTime<Utc>,
    at: DateTime<Utc>,
) {
    let code = verdict.error_code.clone().unwrap_or_default();
    let meaning = error_code::meaning(&code);
    ctx.stop_for(StopReason::Account {
        code: code.clone(),
        meaning: meaning.clone(),
    });
    // Calls that were already in flight answer the same; one pause per pass is enough. It is
    // recorded even when the pass was already stopping for another reason (the quota reserve
    // reached as a 4013 came back): the pause is what holds the next passes.
    if ctx.account_paused.swap(true, Ordering::SeqCst) {
        return;
    }
    // A configured pause of centuries must neither overflow (a panic mid-pass) nor leave the
    // four-digit years that keep stored timestamps in time order as text.
    let last_storable = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_opt(23, 59, 59))
        .map(|end| end.and_utc())
        .unwrap_or(at);
    let (cause, until) = if code == "4013" {
        let grace = chrono::TimeDelta::from_std(ctx.options.account_pause)
            .unwrap_or(chrono::TimeDelta::MAX);
        let until = quota_exceeded_until(started_at, verdict.server_time.as_deref(), at, grace);
        ("quota_exceeded", until.min(last_storable))
    } else {
        let earlier = match ctx.store.account_pauses_since_last_success().await {
            Ok(earlier) => earlier,
            Err(error) => return ctx.fail(error),
        };
        let pause = account_pause(
            ctx.options.account_pause,
            ctx.options.account_pause_max,
            earlier,
        );
        let until = chrono::Duration::from_std(pause)
            .ok()
            .and_then(|pause| at.checked_add_signed(pause))
            .map_or(last_storable, |until| until.min(last_storable));
        ("account_error", until)
    };
    let until = timestamp(until);
    let pause = Pause {
        created_at: timestamp(at),
        until: until.clone(),
        cause: cause.to_owned(),
        error_code: Some(code.clone()),
        message: format!("onebound answered {code} ({meaning}); no calls until {until}"),
    };
    match ctx.store.insert_pause(&pause).await {
        Ok(()) => {
            error!(error_code = %code, until, "calls paused: {meaning}");
            ctx.notifier.send(Event::AccountStopped {
                error_code: code,
                meaning,
                paused_until: Some(until),
                at: timestamp(at),
            });
        }
        Err(error) => ctx.fail(error),
    }
}

async fn record_skipped_retry(
    ctx: &PassContext,
    id: &VideoId,
    attempt: u32,
    reached: &ReserveReached,
) {
    let now = Utc::now();
    let message = format!("retry not sent: {reached}");
    let record = AttemptRecord {
        pass_id: Some(ctx.pass_id),
        video_id: id.as_str(),
        started_at: now,
        finished_at: now,
        attempt,
        outcome: Outcome::Skipped,
        http_status: None,
        error_code: None,
        error: Some("quota_reserve"),
        reason: None,
        message: Some(&message),
        charged: false,
        request_id: None,
        snapshot: None,
        quota: None,
        video_status: VideoStatus::Untouched,
    };
    if let Err(error) = ctx.store.record_attempt(record).await {
        ctx.fail(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recheck_of_ages_means_never_rather_than_overflowing() {
        let now = Utc::now();
        assert_eq!(
            recheck_before(now, Duration::from_secs(7 * 86_400)),
            now - chrono::Days::new(7)
        );
        for ages in [Duration::from_secs(40_000_000_000_000), Duration::MAX] {
            assert_eq!(
                recheck_before(now, ages),
                DateTime::<Utc>::MIN_UTC,
                "{ages:?}"
            );
        }
    }

    #[test]
    fn account_pauses_double_up_to_the_maximum() {
        let base = Duration::from_secs(600);
        let max = Duration::from_secs(6 * 3600);
        let cases = [
            (0, 600),
            (1, 1200),
            (2, 2400),
            (5, 19200),
            (6, 21600),
            (40, 21600),
        ];
        for (earlier, seconds) in cases {
            assert_eq!(
                account_pause(base, max, earlier),
                Duration::from_secs(seconds),
                "after {earlier} earlier pauses"
            );
        }
    }
}
