//! The simulator's behaviour: routing, parameter checks, the concurrency cap, latency, scripted
//! answers, the quota on the Beijing calendar, fault draws, and the admin endpoints.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::http::Uri;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::admin::{AdminError, TodayRequest, admin_json, parse_script};
use super::answer::{self, Context, Item};
use super::http::{Request, Response, Streamed};
use super::{Fault, Scripted, SimulatorConfig, SimulatorStats};

/// The API's path, without the trailing slash (both forms are served).
const API_PATH: &str = "/douyin/item_get_video";

/// Where the admin endpoints live.
const ADMIN_PREFIX: &str = "/_sim/";

/// The longest `item_id` accepted (real ids have 19 digits).
const MAX_ITEM_ID_LEN: usize = 32;

/// What to do with a request's connection.
pub(super) enum Outcome {
    /// Send this answer.
    Respond(Response),
    /// Reset the connection without an answer.
    Reset,
    /// Never answer; the slot (if any) stays taken until the connection ends.
    Hang(Option<Slot>),
    /// Write this answer over time, then close; the slot (if any) stays taken until then.
    Stream(Streamed, Option<Slot>),
}

/// A taken place among the requests in flight; released when dropped.
pub(super) struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.stats.in_flight = state.stats.in_flight.saturating_sub(1);
    }
}

/// The charged-call counters of the quota, kept per Beijing day.
///
/// `api_info` shows `all[T=a+b+c]` with `a` today, `b` the previous day and `c` everything before,
/// so that `T` always equals the sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quota {
    /// The Beijing day `today` counts.
    pub day: NaiveDate,
    /// Charged calls on `day`.
    pub today: u64,
    /// Charged calls on the day before `day`.
    pub yesterday: u64,
    /// Charged calls on all earlier days.
    pub earlier: u64,
}

impl Quota {
    /// An empty quota for `day`.
    pub fn new(day: NaiveDate) -> Quota {
        Quota {
            day,
            today: 0,
            yesterday: 0,
            earlier: 0,
        }
    }

    /// Moves the counters on to `day`; a day in the past (the clock went back) changes nothing.
    pub fn roll_to(&mut self, day: NaiveDate) {
        match day.signed_duration_since(self.day).num_days() {
            ..=0 => return,
            1 => {
                self.earlier = self.earlier.saturating_add(self.yesterday);
                self.yesterday = self.today;
            }
            _ => {
                self.earlier = self
                    .earlier
                    .saturating_add(self.yesterday)
                    .saturating_add(self.today);
                self.yesterday = 0;
            }
        }
        self.today = 0;
        self.day = day;
    }

    /// The all-time total of charged calls.
    pub fn total(&self) -> u64 {
        self.today
            .saturating_add(self.yesterday)
            .saturating_add(self.earlier)
    }

    /// The `api_info` text, e.g. `today:39 max:10000 all[104=39+33+32];expires:2030-12-31`.
    pub fn api_info(&self, max: u64, expires_on: NaiveDate) -> String {
        format!(
            "today:{} max:{max} all[{}={}+{}+{}];expires:{}",
            self.today,
            self.total(),
            self.today,
            self.yesterday,
            self.earlier,
            expires_on.format("%Y-%m-%d")
        )
    }
}

/// The Beijing (Asia/Shanghai) calendar day of `now`, the day the quota counts.
pub(super) fn quota_day(now: DateTime<Utc>) -> NaiveDate {
    answer::beijing_time(now).date_naive()
}

/// Waits until `deadline` to within about a tenth of a millisecond, or less if `stop` is
/// cancelled first. tokio's timer ends a sleep on its next 1 ms tick, so answers would come 0.5–1 ms
/// late on average (2 % of a 50 ms latency, which the benchmarks compare against); the last two
/// milliseconds are slept on a blocking thread instead, whose sleep ends on time.
async fn sleep_precisely_until(deadline: Instant, stop: &CancellationToken) {
    const TIMER_SLACK: Duration = Duration::from_millis(2);
    if let Some(coarse) = deadline.checked_sub(TIMER_SLACK) {
        tokio::select! {
            () = tokio::time::sleep_until(coarse.into()) => {}
            () = stop.cancelled() => return,
        }
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if !remaining.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(remaining)).await;
    }
}

/// Waits `duration`, or less if `stop` is cancelled first.
pub(super) async fn sleep_or_stop(duration: Duration, stop: &CancellationToken) {
    if duration.is_zero() {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = stop.cancelled() => {}
    }
}

/// The item of a success answer.
#[derive(Serialize)]
#[serde(untagged)]
enum ItemBody {
    /// Generated from the id.
    Generated(Box<Item>),
    /// Scripted.
    Custom(serde_json::Value),
}

/// A decided answer, before encoding.
enum Answer {
    /// `0000` with this item.
    Success { item: ItemBody, api_info: String },
    /// An error code in the envelope (including `2000`).
    Error { code: String, api_info: String },
    /// This HTTP status with an HTML body.
    Http(u16, String),
    /// A raw 200 body.
    Body(Vec<u8>),
    /// A reset connection.
    Reset,
    /// No answer.
    Hang,
    /// A raw 200 body sent `chunk` bytes at a time, `every` apart.
    Trickle {
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
    /// A raw 200 body broken off by a reset after `after` bytes.
    ResetMidBody { body: Vec<u8>, after: usize },
    /// A 302 to this location.
    Redirect(String),
    /// `0000` with this item, padded to `bytes`.
    Huge {
        item: ItemBody,
        api_info: String,
        bytes: usize,
    },
}

impl Answer {
    /// The key in [`SimulatorStats::by_code`].
    fn label(&self) -> String {
        match self {
            Answer::Success { .. } => "0000".to_owned(),
            Answer::Error { code, .. } => code.clone(),
            Answer::Http(status, _) => format!("http{status}"),
            Answer::Body(_) => "body".to_owned(),
            Answer::Reset => "reset".to_owned(),
            Answer::Hang => "hang".to_owned(),
            Answer::Trickle { .. } => "trickle".to_owned(),
            Answer::ResetMidBody { .. } => "reset_mid_body".to_owned(),
            Answer::Redirect(_) => "redirect".to_owned(),
            Answer::Huge { .. } => "huge".to_owned(),
        }
    }
}

/// Mutable state, behind one lock so that every decision (and its charge) is atomic.
struct State {
    /// Charged calls per Beijing day.
    quota: Quota,
    /// The counters (`stats.today` is filled in on snapshots).
    stats: SimulatorStats,
    /// Scripted answers per item id.
    scripts: HashMap<String, VecDeque<Scripted>>,
    /// Charged answers per item id, which drive `change_every`.
    charged_per_item: HashMap<String, u64>,
    /// The seeded random source.
    rng: fastrand::Rng,
    /// The last `last_id` handed out.
    last_id: u64,
}

impl State {
    /// Moves the quota on to the current Beijing day.
    fn roll(&mut self) {
        self.quota.roll_to(quota_day(Utc::now()));
    }

    /// Charges one call for `item_id`; returns how many charged answers it had before.
    fn charge(&mut self, item_id: &str) -> u64 {
        // `today` can be set to anything through `set_today`, so saturate rather than overflow.
        self.quota.today = self.quota.today.saturating_add(1);
        self.stats.charged += 1;
        let count = self.charged_per_item.entry(item_id.to_owned()).or_default();
        *count += 1;
        *count - 1
    }

    /// Draws whether this answer is a fault, and which.
    fn draw_fault(&mut self, config: &SimulatorConfig) -> Option<Fault> {
        if config.faults.is_empty() {
            return None;
        }
        // A NaN or non-positive rate never strikes; 1.0 always does (`f64()` is below 1).
        let strikes = self.rng.f64() < config.fault_rate;
        strikes.then(|| config.faults[self.rng.usize(..config.faults.len())])
    }
}

/// Configuration and state shared by every connection.
pub(super) struct Shared {
    /// How to behave.
    config: SimulatorConfig,
    /// Everything that changes.
    state: Mutex<State>,
}

impl Shared {
    /// Fresh state for `config`.
    pub fn new(config: SimulatorConfig) -> Shared {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let last_id = rng.u64(1_000_000_000..2_000_000_000);
        Shared {
            state: Mutex::new(State {
                quota: Quota::new(quota_day(Utc::now())),
                stats: SimulatorStats::default(),
                scripts: HashMap::new(),
                charged_per_item: HashMap::new(),
                rng,
                last_id,
            }),
            config,
        }
    }

    /// Locks the state; no code panics while holding the lock, so a poisoned lock is still sound.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimulatorStats {
        let mut state = self.state();
        state.roll();
        let mut stats = state.stats.clone();
        stats.today = state.quota.today;
        stats
    }

    /// Queues scripted answers for `item_id`; returns how many are queued for it now.
    pub fn script(&self, item_id: &str, answers: Vec<Scripted>) -> usize {
        let mut state = self.state();
        let queue = state.scripts.entry(item_id.to_owned()).or_default();
        queue.extend(answers);
        queue.len()
    }

    /// Sets the current Beijing day's charged-call counter.
    pub fn set_today(&self, n: u64) {
        let mut state = self.state();
        state.roll();
        state.quota.today = n;
    }

    /// Answers one request.
    pub async fn handle(
        self: &Arc<Self>,
        request: Request,
        client_ip: IpAddr,
        stop: &CancellationToken,
    ) -> Outcome {
        let started = Instant::now();
        let Ok(uri) = request.target.parse::<Uri>() else {
            return Outcome::Respond(Response::text(400, "unreadable request target"));
        };
        if let Some(endpoint) = uri.path().strip_prefix(ADMIN_PREFIX) {
            return Outcome::Respond(self.admin(&request.method, endpoint, &request.body));
        }
        self.api(&request.method, &uri, client_ip, started, stop)
            .await
    }

    /// Answers an API request (any path outside the admin endpoints).
    async fn api(
        self: &Arc<Self>,
        method: &str,
        uri: &Uri,
        client_ip: IpAddr,
        started: Instant,
        stop: &CancellationToken,
    ) -> Outcome {
        let params = Query::<HashMap<String, String>>::try_from_uri(uri).map(|query| query.0);
        let empty = HashMap::new();
        let param = |name: &str| {
            params
                .as_ref()
                .unwrap_or(&empty)
                .get(name)
                .map(|value| value.trim())
                .filter(|value| !value.is_empty())
        };
        let item_id = param("item_id");
        let context = Context {
            started,
            client_ip,
            translate_language: answer::translate_language(param("lang").unwrap_or("cn")),
            ascii: param("result_type") != Some("jsonu"),
        };
        {
            let mut state = self.state();
            state.stats.requests += 1;
            if let Some(id) = item_id {
                *state.stats.per_item.entry(id.to_owned()).or_default() += 1;
            }
        }
        if method != "GET" {
            let answer = Answer::Http(405, "<html><body>405 Not Allowed</body></html>".to_owned());
            return self.finish(&context, item_id, answer, None);
        }
        if uri.path().trim_end_matches('/') != API_PATH {
            let answer = self.error("4010");
            return self.finish(&context, item_id, answer, None);
        }
        let Some(slot) = self.admit() else {
            let answer = self.error("4008");
            return self.finish(&context, item_id, answer, None);
        };
        let latency = self.latency();
        if !latency.is_zero() {
            // From the request's arrival, as a server's latency is seen by its client.
            sleep_precisely_until(context.started + latency, stop).await;
        }

        let checked = if params.is_err() {
            Err("4003")
        } else {
            self.check(&param)
        };
        let item_id = match checked {
            Ok(id) => id,
            Err(code) => {
                let answer = self.error(code);
                return self.finish(&context, item_id, answer, Some(slot));
            }
        };
        let scripted = self
            .state()
            .scripts
            .get_mut(item_id)
            .and_then(VecDeque::pop_front);
        let answer = match scripted {
            Some(Scripted::Delay(delay)) => {
                sleep_or_stop(delay, stop).await;
                self.decide(item_id)
            }
            Some(scripted) => self.scripted(item_id, scripted),
            None => self.decide(item_id),
        };
        self.finish(&context, Some(item_id), answer, Some(slot))
    }

    /// Checks credentials and parameters; the item id, or the error code to answer.
    fn check<'p>(&self, param: &impl Fn(&str) -> Option<&'p str>) -> Result<&'p str, &'static str> {
        let accepted = |given: Option<&str>, wanted: &Option<String>| match (given, wanted) {
            (None, _) => false,
            (Some(given), Some(wanted)) => given == wanted,
            (Some(_), None) => true,
        };
        if !accepted(param("key"), &self.config.key)
            || !accepted(param("secret"), &self.config.secret)
        {
            return Err("4005");
        }
        let Some(item_id) = param("item_id") else {
            return Err("4014");
        };
        if item_id.len() > MAX_ITEM_ID_LEN || !item_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err("4003");
        }
        if !matches!(param("lang"), None | Some("cn" | "en" | "ru"))
            || !matches!(param("result_type"), None | Some("json" | "jsonu"))
        {
            return Err("4003");
        }
        Ok(item_id)
    }

    /// Takes a place among the requests in flight, unless `max_concurrent` are in flight already.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.state();
        let cap = self
            .config
            .max_concurrent
            .map(|cap| u64::try_from(cap).unwrap_or(u64::MAX));
        if cap.is_some_and(|cap| state.stats.in_flight >= cap) {
            return None;
        }
        state.stats.in_flight += 1;
        state.stats.max_in_flight_seen = state.stats.max_in_flight_seen.max(state.stats.in_flight);
        Some(Slot(Arc::clone(self)))
    }

    /// The latency of one answer: the base plus a uniform draw of jitter.
    fn latency(&self) -> Duration {
        let jitter = self.config.latency_jitter;
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            let max = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(self.state().rng.u64(0..=max))
        };
        self.config.latency.saturating_add(extra)
    }

    /// An uncharged error answer with the current quota.
    fn error(&self, code: &str) -> Answer {
        let mut state = self.state();
        state.roll();
        Answer::Error {
            code: code.to_owned(),
            api_info: self.api_info(&state),
        }
    }

    /// `api_info` for the state's quota.
    fn api_info(&self, state: &State) -> String {
        state
            .quota
            .api_info(self.config.daily_max, self.config.expires_on)
    }

    /// The normal answer for a valid request: quota, fault draw, not-found ids, then the item.
    fn decide(&self, item_id: &str) -> Answer {
        let mut state = self.state();
        self.decide_locked(&mut state, item_id)
    }

    /// [`Shared::decide`] with the state already locked.
    fn decide_locked(&self, state: &mut State, item_id: &str) -> Answer {
        state.roll();
        if state.quota.today >= self.config.daily_max {
            return Answer::Error {
                code: "4013".to_owned(),
                api_info: self.api_info(state),
            };
        }
        if let Some(fault) = state.draw_fault(&self.config) {
            return match fault {
                Fault::Http502 => Answer::Http(502, answer::NGINX_502.to_owned()),
                Fault::Reset => Answer::Reset,
                Fault::Hang => Answer::Hang,
                code => Answer::Error {
                    code: code.label().to_owned(),
                    api_info: self.api_info(state),
                },
            };
        }
        if self.config.not_found.contains(item_id) {
            state.charge(item_id);
            return Answer::Error {
                code: "2000".to_owned(),
                api_info: self.api_info(state),
            };
        }
        self.success(state, item_id)
    }

    /// A charged `0000` answer with the generated item.
    fn success(&self, state: &mut State, item_id: &str) -> Answer {
        let (item, api_info) = self.charged_item(state, item_id);
        Answer::Success { item, api_info }
    }

    /// Charges a `0000` answer for `item_id`: its generated item and the `api_info` after the charge.
    fn charged_item(&self, state: &mut State, item_id: &str) -> (ItemBody, String) {
        let before = state.charge(item_id);
        let edition = self
            .config
            .change_every
            .filter(|every| *every > 0)
            .map_or(0, |every| before / every);
        let item = answer::generate(item_id, edition, &mut state.rng, Utc::now());
        (ItemBody::Generated(Box::new(item)), self.api_info(state))
    }

    /// The answer a script asks for (charged when it is a `0000` or `2000`).
    fn scripted(&self, item_id: &str, scripted: Scripted) -> Answer {
        let mut state = self.state();
        state.roll();
        match scripted {
            Scripted::Code(code) if code == "0000" => self.success(&mut state, item_id),
            Scripted::Code(code) => {
                if answer::is_charged(&code) {
                    state.charge(item_id);
                }
                Answer::Error {
                    code,
                    api_info: self.api_info(&state),
                }
            }
            Scripted::Item(item) => {
                state.charge(item_id);
                Answer::Success {
                    item: ItemBody::Custom(item),
                    api_info: self.api_info(&state),
                }
            }
            Scripted::Http(status, body) => Answer::Http(status, body),
            Scripted::Body(body) => Answer::Body(body),
            Scripted::Reset => Answer::Reset,
            Scripted::Hang => Answer::Hang,
            Scripted::Trickle { body, chunk, every } => Answer::Trickle { body, chunk, every },
            Scripted::ResetMidBody { body, after } => Answer::ResetMidBody { body, after },
            Scripted::Redirect(location) => Answer::Redirect(location),
            Scripted::Huge { bytes } => {
                let (item, api_info) = self.charged_item(&mut state, item_id);
                Answer::Huge {
                    item,
                    api_info,
                    bytes,
                }
            }
            // The caller waits delays out before deciding; here there is nothing left to wait for.
            Scripted::Delay(_) => self.decide_locked(&mut state, item_id),
        }
    }

    /// Counts and logs an answer, then turns it into what the connection does.
    fn finish(
        &self,
        context: &Context,
        item_id: Option<&str>,
        answer: Answer,
        slot: Option<Slot>,
    ) -> Outcome {
        let label = answer.label();
        let (last_id, memory_mb) = {
            let mut state = self.state();
            *state.stats.by_code.entry(label.clone()).or_default() += 1;
            state.last_id += 1;
            let memory_mb = 2.5 + 1.5 * state.rng.f64();
            (state.last_id, memory_mb)
        };
        tracing::debug!(
            item_id = item_id.unwrap_or(""),
            code = %label,
            elapsed_ms = u64::try_from(context.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "simulator answered"
        );
        let encoded = match answer {
            Answer::Success { item, api_info } => {
                answer::success_body(&item, &api_info, context, last_id, memory_mb)
            }
            Answer::Error { code, api_info } => answer::error_body(&code, &api_info, context),
            Answer::Http(status, body) => return Outcome::Respond(Response::html(status, body)),
            Answer::Body(body) => return Outcome::Respond(Response::json(200, body)),
            Answer::Reset => return Outcome::Reset,
            Answer::Hang => return Outcome::Hang(slot),
            Answer::Trickle { body, chunk, every } => {
                let response = Response::json(200, body);
                let streamed = Streamed::Trickle {
                    response,
                    chunk,
                    every,
                };
                return Outcome::Stream(streamed, slot);
            }
            Answer::ResetMidBody { body, after } => {
                let response = Response::json(200, body);
                return Outcome::Stream(Streamed::ResetMidBody { response, after }, slot);
            }
            Answer::Redirect(location) => return Outcome::Respond(Response::redirect(&location)),
            Answer::Huge {
                item,
                api_info,
                bytes,
            } => match answer::success_body(&item, &api_info, context, last_id, memory_mb) {
                Ok(body) => {
                    let (prefix, padding, suffix) = answer::padded(body, bytes);
                    let streamed = Streamed::Padded {
                        prefix,
                        padding,
                        suffix,
                    };
                    return Outcome::Stream(streamed, slot);
                }
                Err(error) => Err(error),
            },
        };
        {
            let micros = u64::try_from(context.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let mut state = self.state();
            state.stats.timed_answers += 1;
            state.stats.answer_micros = state.stats.answer_micros.saturating_add(micros);
        }
        Outcome::Respond(match encoded {
            Ok(body) => Response::json(200, body),
            Err(error) => {
                tracing::warn!(%error, "simulator: cannot encode an answer");
                Response::text(500, "cannot encode the answer")
            }
        })
    }

    /// Answers an admin endpoint (`stats`, `script`, `today` under `/_sim/`).
    fn admin(&self, method: &str, endpoint: &str, body: &[u8]) -> Response {
        let result = match (method, endpoint) {
            ("GET", "stats") => Ok(admin_json(200, &self.stats())),
            ("POST", "script") => parse_script(body).map(|request| {
                let queued = self.script(&request.item_id, request.answers);
                admin_json(
                    200,
                    &serde_json::json!({"item_id": request.item_id, "queued": queued}),
                )
            }),
            ("POST", "today") => serde_json::from_slice::<TodayRequest>(body)
                .map_err(AdminError::from)
                .map(|request| {
                    self.set_today(request.today);
                    admin_json(200, &serde_json::json!({"today": request.today}))
                }),
            (_, "stats" | "script" | "today") => Err(AdminError::Method),
            _ => Err(AdminError::NotFound),
        };
        result.unwrap_or_else(|error| {
            admin_json(
                error.status(),
                &serde_json::json!({"error": error.to_string()}),
            )
        })
    }
}
