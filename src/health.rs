//! Is the collector healthy? The database answers and passes keep completing on schedule.
//!
//! Shared by the daemon's `/healthz` and the `healthcheck` command used by container health checks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::client::error_chain;
use crate::store::{Store, parse_timestamp, timestamp};

/// What is checked: passes must complete within twice the schedule interval.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// The time between two cron ticks.
    pub interval: Duration,
    /// When the daemon started (`None` from the command line): a fresh daemon gets two intervals.
    pub started_at: Option<DateTime<Utc>>,
}

/// The verdict, as `/healthz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    /// Why not, or what made it healthy.
    pub reason: String,
    pub last_pass_completed_at: Option<String>,
    pub checked_at: String,
}

impl HealthCheck {
    /// Asks the database for the last completed pass and judges it.
    pub async fn check(&self, store: &Store, now: DateTime<Utc>) -> Health {
        let last = store.last_completed_pass().await;
        let (verdict, last) = match last {
            Ok(last) => {
                let last = last.as_deref().and_then(parse_timestamp);
                (evaluate(last, self.started_at, self.interval, now), last)
            }
            Err(error) => (
                Err(format!(
                    "the database does not answer: {}",
                    error_chain(&error)
                )),
                None,
            ),
        };
        Health {
            healthy: verdict.is_ok(),
            reason: verdict.unwrap_or_else(|why| why),
            last_pass_completed_at: last.map(timestamp),
            checked_at: timestamp(now),
        }
    }
}

/// Healthy when a pass completed within twice `interval`, or the daemon started less than that ago.
pub fn evaluate(
    last_completed: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    interval: Duration,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let allowed =
        chrono::Duration::from_std(interval.saturating_mul(2)).unwrap_or(chrono::Duration::MAX);
    let shown = humantime::format_duration(interval.saturating_mul(2));
    if let Some(last) = last_completed
        && now - last <= allowed
    {
        return Ok(format!("a pass completed within {shown}"));
    }
    if let Some(started) = started_at
        && now - started <= allowed
    {
        return Ok(format!("started less than {shown} ago"));
    }
    Err(match last_completed {
        Some(last) => format!(
            "the last pass completed at {}, more than {shown} (twice the schedule interval) ago",
            timestamp(last)
        ),
        None => format!(
            "no pass has completed; one is expected every {}",
            humantime::format_duration(interval)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_timestamp(text).expect("timestamp")
    }

    #[test]
    fn passes_must_complete_within_twice_the_interval() {
        let hour = Duration::from_secs(3600);
        let now = at("2026-11-29T12:00:00Z");
        let cases = [
            (Some("2026-11-29T11:30:00Z"), None, true),
            (Some("2026-11-29T10:00:00Z"), None, true),
            (Some("2026-11-29T09:59:59Z"), None, false),
            (None, None, false),
            (None, Some("2026-11-29T11:00:00Z"), true),
            (
                Some("2026-11-28T12:00:00Z"),
                Some("2026-11-29T11:59:00Z"),
                true,
            ),
            (
                Some("2026-11-28T12:00:00Z"),
                Some("2026-11-29T09:00:00Z"),
                false,
            ),
        ];
        for (last, started, healthy) in cases {
            let verdict = evaluate(last.map(at), started.map(at), hour, now);
            assert_eq!(
                verdict.is_ok(),
                healthy,
                "last {last:?} started {started:?}: {verdict:?}"
            );
        }
    }
}
