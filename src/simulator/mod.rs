//! A local, faithful stand-in for onebound's paid `douyin/item_get_video` API.
//!
//! The demo, the integration tests and the benchmarks run against it, never against the real API.
//! It answers the real envelope (success, `2000 item-not-found` and every error code of the API's
//! table), keeps the daily call quota in `api_info` on the Beijing calendar, generates plausible
//! items deterministically from the video id (with cover-URL parts that change on every answer,
//! as the real CDN signatures do), and can misbehave on purpose: latency, a concurrency cap
//! (`4008`), an exhausted quota (`4013`), random transient faults (error codes, HTTP 502,
//! connection resets, hangs) and per-id scripted answers, hostile ones included (a body that
//! trickles in, a reset in the middle of the body, a redirect, a huge body).
//!
//! It speaks HTTP/1.1 itself (see `http`) so that it controls the socket: a reset really is a
//! TCP RST, a hang really holds the connection open and a trickle really drips. It depends on no
//! other project module.
//!
//! Admin endpoints, for tests that run the simulator as a separate process:
//! `GET /_sim/stats` (the [`SimulatorStats`] as JSON), `POST /_sim/script` with
//! `{"item_id": "...", "answers": [{"code": "4000"}, {"http": 502, "body": "..."}, {"body": "raw"},
//! {"reset": true}, {"hang": true}, {"delay_ms": 500}, {"item": {...}},
//! {"trickle": {"body": "...", "chunk": 1, "every_ms": 100}},
//! {"reset_mid_body": {"body": "...", "after": 10}}, {"redirect": "http://..."},
//! {"huge": 10485760}]}` and `POST /_sim/today` with `{"today": N}`.

mod admin;
mod answer;
mod engine;
mod http;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use engine::{Outcome, Shared};
use http::Connection;

/// The key-expiry date shown in `api_info` unless configured otherwise.
const DEFAULT_EXPIRES: NaiveDate = NaiveDate::from_ymd_opt(2030, 12, 31).expect("a valid date");

/// The calls allowed per Beijing day unless configured otherwise.
const DEFAULT_DAILY_MAX: u64 = 10_000;

/// Pause after a failed `accept` so that a persistent failure (out of file descriptors) does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// How the simulator behaves; every field has a CLI flag in [`SimulatorArgs`].
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// The accepted API key; `None` accepts any non-empty key (a missing key is always `4005`).
    pub key: Option<String>,
    /// The accepted API secret; `None` accepts any non-empty secret (a missing one is always `4005`).
    pub secret: Option<String>,
    /// Added before each answer (except a `4008`, which is answered at once).
    pub latency: Duration,
    /// A uniform extra latency in `0..=latency_jitter`.
    pub latency_jitter: Duration,
    /// Requests in flight above this are answered `4008` at once (not charged).
    pub max_concurrent: Option<usize>,
    /// Charged calls allowed per Beijing day; once reached, answers are `4013` (not charged).
    pub daily_max: u64,
    /// The key-expiry date shown in `api_info`.
    pub expires_on: NaiveDate,
    /// The chance (`0.0..=1.0`) that an answer is a transient fault drawn from `faults` instead.
    pub fault_rate: f64,
    /// The faults drawn from when `fault_rate` strikes (an empty list means no faults).
    pub faults: Vec<Fault>,
    /// These ids answer `2000 item-not-found` (charged).
    pub not_found: HashSet<String>,
    /// A video's title changes every N charged fetches of it; `None` keeps titles stable.
    pub change_every: Option<u64>,
    /// Seed of the random draws (jitter, faults, volatile URL parts) so that runs are reproducible.
    pub seed: u64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            key: None,
            secret: None,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            max_concurrent: None,
            daily_max: DEFAULT_DAILY_MAX,
            expires_on: DEFAULT_EXPIRES,
            fault_rate: 0.0,
            faults: Fault::ALL.to_vec(),
            not_found: HashSet::new(),
            change_every: None,
            seed: 0,
        }
    }
}

/// A transient fault the simulator can answer instead of the normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `4000 Server internal error` in the envelope (not charged).
    Code4000,
    /// `4001 Network error` in the envelope (not charged).
    Code4001,
    /// `4002 Target server error` in the envelope (not charged).
    Code4002,
    /// `4017 timeout error` in the envelope (not charged).
    Code4017,
    /// `5000 unknown error` in the envelope (not charged).
    Code5000,
    /// HTTP 502 with nginx's HTML error page.
    Http502,
    /// The connection is reset (TCP RST) without any response.
    Reset,
    /// No answer at all; the connection is held until the client gives up or the server stops.
    Hang,
}

impl Fault {
    /// Every fault kind; the default set drawn from.
    pub const ALL: [Fault; 8] = [
        Fault::Code4000,
        Fault::Code4001,
        Fault::Code4002,
        Fault::Code4017,
        Fault::Code5000,
        Fault::Http502,
        Fault::Reset,
        Fault::Hang,
    ];

    /// The name used on the command line and as the key in [`SimulatorStats::by_code`].
    pub fn label(self) -> &'static str {
        match self {
            Fault::Code4000 => "4000",
            Fault::Code4001 => "4001",
            Fault::Code4002 => "4002",
            Fault::Code4017 => "4017",
            Fault::Code5000 => "5000",
            Fault::Http502 => "http502",
            Fault::Reset => "reset",
            Fault::Hang => "hang",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A fault name that is not one of [`Fault::ALL`]'s labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {0:?}: expected one of 4000, 4001, 4002, 4017, 5000, http502, reset, hang")]
pub struct ParseFaultError(String);

impl FromStr for Fault {
    type Err = ParseFaultError;

    /// Reads a label (`4000`, `http502`, `reset`, …), case-insensitively; `code4000` and `502` work too.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        let wanted = wanted.strip_prefix("code").unwrap_or(&wanted);
        let wanted = if wanted == "502" { "http502" } else { wanted };
        Fault::ALL
            .into_iter()
            .find(|fault| fault.label() == wanted)
            .ok_or_else(|| ParseFaultError(text.to_owned()))
    }
}

/// Command-line arguments of `douyin-watch simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    /// Address to serve on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8780")]
    pub listen: SocketAddr,
    /// Accepted API key; when unset any non-empty key is accepted.
    #[arg(long)]
    pub key: Option<String>,
    /// Accepted API secret; when unset any non-empty secret is accepted.
    #[arg(long)]
    pub secret: Option<String>,
    /// Latency added before each answer, e.g. 50ms.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub latency: Duration,
    /// Uniform extra latency of up to this much, e.g. 20ms.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub latency_jitter: Duration,
    /// Requests in flight above this many are answered 4008 at once.
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub max_concurrent: Option<usize>,
    /// Charged calls allowed per Beijing day before answers turn 4013.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DAILY_MAX)]
    pub daily_max: u64,
    /// Key-expiry date shown in api_info (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", default_value = "2030-12-31")]
    pub expires: NaiveDate,
    /// Chance (0.0 to 1.0) that an answer is a transient fault instead.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_rate: f64,
    /// Faults to draw from: 4000,4001,4002,4017,5000,http502,reset,hang (default: all).
    #[arg(long, value_name = "FAULT,...", value_delimiter = ',')]
    pub faults: Vec<Fault>,
    /// Video ids that answer 2000 item-not-found.
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub not_found: Vec<String>,
    /// Change a video's title every N charged fetches of it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub change_every: Option<u64>,
    /// Seed of the random draws, for reproducible runs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SimulatorArgs {
    /// The address to serve on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The simulator configuration these arguments describe.
    pub fn config(&self) -> SimulatorConfig {
        SimulatorConfig {
            key: self.key.clone(),
            secret: self.secret.clone(),
            latency: self.latency,
            latency_jitter: self.latency_jitter,
            max_concurrent: self.max_concurrent,
            daily_max: self.daily_max,
            expires_on: self.expires,
            fault_rate: self.fault_rate,
            faults: if self.faults.is_empty() {
                Fault::ALL.to_vec()
            } else {
                self.faults.clone()
            },
            not_found: self
                .not_found
                .iter()
                .map(|id| id.trim().to_owned())
                .collect(),
            change_every: self.change_every,
            seed: self.seed,
        }
    }
}

/// Parses a humantime duration such as `50ms` or `1s`.
fn parse_duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// Parses a whole number of at least 1.
fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a probability in `0.0..=1.0`.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("must be between 0.0 and 1.0".to_owned())
    }
}

/// One scripted answer for an item id, used before the normal behaviour (first in, first out).
///
/// Scripted answers bypass the quota check and the fault draw; charged ones still count.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// This error code in the real envelope; `0000` is a normal success and `2000` item-not-found,
    /// both charged; other codes are not charged.
    Code(String),
    /// This HTTP status with this body (`text/html`).
    Http(u16, String),
    /// This raw body with status 200 (`application/json`), e.g. something that is not JSON.
    Body(Vec<u8>),
    /// The connection is reset without any response.
    Reset,
    /// No answer; the connection is held until the client gives up or the server stops.
    Hang,
    /// Waits this long (on top of the latency), then gives the normal answer.
    Delay(Duration),
    /// A charged `0000` answer with this item object.
    Item(serde_json::Value),
    /// This raw body with status 200 and its full `Content-Length`, written `chunk` bytes at a
    /// time (at least 1) with `every` between writes: a slow drip, for timeouts in the middle of
    /// the body. The connection closes after it.
    Trickle {
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
    /// The head of a status-200 answer with this raw body's full `Content-Length`, the first
    /// `after` bytes of the body, then a TCP reset (zero linger).
    ResetMidBody { body: Vec<u8>, after: usize },
    /// A `302 Found` with this `Location` (control characters dropped) and nginx's HTML page.
    Redirect(String),
    /// A charged `0000` answer with the generated item, padded to `bytes` bytes by an extra
    /// string field `padding` at the end of the envelope (no padding if the envelope alone is
    /// that long). It is written piece by piece, never held in memory whole, with its full
    /// `Content-Length`; the connection closes after it.
    Huge { bytes: usize },
}

/// Counters of what the simulator has answered (admin requests are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimulatorStats {
    /// API requests received (any path but `/_sim/…`).
    pub requests: u64,
    /// Charged answers (`0000` and `2000`), all days.
    pub charged: u64,
    /// Answers by kind: error codes (`"0000"`, `"4008"`, …), `"http502"` (any `"http{status}"`),
    /// `"body"` (a scripted raw body), `"reset"`, `"hang"`, and the scripted `"trickle"`,
    /// `"reset_mid_body"`, `"redirect"` and `"huge"`.
    pub by_code: BTreeMap<String, u64>,
    /// Admitted requests being processed right now (hung requests count until their client leaves).
    pub in_flight: u64,
    /// The most admitted requests ever in flight at once (never above `max_concurrent`).
    pub max_in_flight_seen: u64,
    /// Requests per `item_id` parameter.
    pub per_item: BTreeMap<String, u64>,
    /// Charged calls of the current Beijing day, as shown in `api_info`.
    pub today: u64,
    /// JSON answers (success or error code) timed from the request's arrival to its encoded body.
    #[serde(default)]
    pub timed_answers: u64,
    /// The sum of those times in microseconds: divided by `timed_answers`, how long an answer
    /// really takes beside the configured latency (timer ticks, the simulator's own work).
    #[serde(default)]
    pub answer_micros: u64,
}

/// A simulator serving on a bound socket; dropping it stops the server without waiting.
pub struct Simulator {
    /// The bound address.
    addr: SocketAddr,
    /// State shared with the connection tasks.
    shared: Arc<Shared>,
    /// Cancelled to stop accepting, close idle connections and end hangs.
    stop: CancellationToken,
    /// The accept loop and every connection task.
    tasks: TaskTracker,
}

impl Simulator {
    /// Binds `listen` (port 0 allowed), spawns the server and returns at once.
    pub async fn start(listen: SocketAddr, config: SimulatorConfig) -> io::Result<Simulator> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            stop.clone(),
            tasks.clone(),
        ));
        Ok(Simulator {
            addr,
            shared,
            stop,
            tasks,
        })
    }

    /// Serves on `listen` until `shutdown` is cancelled, then stops gracefully; logs the address.
    pub async fn run_until(
        listen: SocketAddr,
        config: SimulatorConfig,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let simulator = Simulator::start(listen, config).await?;
        tracing::info!(
            addr = %simulator.addr(),
            base_url = %simulator.base_url(),
            "onebound simulator listening"
        );
        shutdown.cancelled().await;
        simulator.shutdown().await;
        tracing::info!("onebound simulator stopped");
        Ok(())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients should use, e.g. `http://127.0.0.1:8780` (a wildcard bind maps to loopback).
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimulatorStats {
        self.shared.stats()
    }

    /// Queues answers for one item id, used before the normal behaviour (first in, first out).
    pub fn script(&self, item_id: &str, answers: Vec<Scripted>) {
        self.shared.script(item_id, answers);
    }

    /// Sets today's charged-call counter (for quota tests).
    pub fn set_today(&self, n: u64) {
        self.shared.set_today(n);
    }

    /// Stops gracefully: no new connections, idle ones closed, answers being delayed are sent at
    /// once, hangs dropped; returns when every connection task has ended.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Accepts connections until `stop` is cancelled, serving each on its own task.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(serve_connection(stream, peer, Arc::clone(&shared), stop.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "simulator: accept failed");
                    engine::sleep_or_stop(ACCEPT_BACKOFF, &stop).await;
                }
            },
        }
    }
}

/// Serves the requests of one connection (keep-alive) until it closes, fails or the server stops.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    // Nagle's algorithm would only delay small answers; failing to turn it off is harmless.
    let _ = stream.set_nodelay(true);
    let mut connection = Connection::new(stream);
    loop {
        let read = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            read = connection.read_request() => read,
        };
        let request = match read {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%peer, %error, "simulator: unreadable request");
                if let Some(response) = error.response() {
                    // The connection is closed right after; a failed write changes nothing.
                    let _ = connection.write_response(&response, false).await;
                }
                return;
            }
        };
        let keep_alive = request.keep_alive;
        match shared.handle(request, peer.ip(), &stop).await {
            Outcome::Respond(response) => {
                let keep_alive = keep_alive && !stop.is_cancelled();
                if connection
                    .write_response(&response, keep_alive)
                    .await
                    .is_err()
                    || !keep_alive
                {
                    return;
                }
            }
            Outcome::Reset => {
                connection.reset();
                return;
            }
            Outcome::Hang(slot) => {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = connection.wait_closed() => {}
                }
                drop(slot);
                return;
            }
            Outcome::Stream(streamed, slot) => {
                connection.write_streamed(streamed, &stop).await;
                drop(slot);
                return;
            }
        }
    }
}
