//! Is the collector healthy? The database answers and passes keep completing on schedule.
//!
//! Shared by the daemon's `/healthz` and the `healthcheck` command used by container health checks.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::client::error_chain;
use crate::cron_schedule::CronSchedule;
use crate::store::{Store, parse_timestamp, timestamp};

/// Ticks of the schedule that may come after the last completed pass before the collector is
/// unhealthy: a pass started at a tick is still running at the next; two passes in a row may fail.
pub const TICKS_WITHOUT_A_PASS: usize = 3;

/// What is checked: a pass must complete before [`TICKS_WITHOUT_A_PASS`] ticks go by without one.
/// Counted in ticks, not time, so a schedule with a long gap (nights, weekends) is judged by it.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// When passes are due.
    pub ticks: CronSchedule,
    /// When the daemon started (`None` from the command line): a fresh daemon is counted from it.
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
                (evaluate(last, self.started_at, &self.ticks, now), last)
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

/// Healthy until the [`TICKS_WITHOUT_A_PASS`]th tick after the last completed pass, or after the
/// daemon's start if that is later.
pub fn evaluate(
    last_completed: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    ticks: &CronSchedule,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let since = match (last_completed, started_at) {
        (Some(last), Some(started)) => last.max(started),
        (Some(since), None) | (None, Some(since)) => since,
        (None, None) => return Err("no pass has completed".to_owned()),
    };
    let after = since + chrono::Duration::nanoseconds(1);
    let missed = ticks.ticks(
        after,
        now + chrono::Duration::nanoseconds(1),
        TICKS_WITHOUT_A_PASS,
    );
    let what = match last_completed {
        Some(last) if last >= since => format!("the last pass completed at {}", timestamp(last)),
        Some(last) => format!(
            "the daemon started at {} (the last pass completed at {})",
            timestamp(since),
            timestamp(last)
        ),
        None => format!(
            "the daemon started at {} and no pass has completed",
            timestamp(since)
        ),
    };
    if missed.len() < TICKS_WITHOUT_A_PASS {
        Ok(format!(
            "{what}; {} tick(s) of the schedule since",
            missed.len()
        ))
    } else {
        Err(format!(
            "{what}, and {TICKS_WITHOUT_A_PASS} ticks of the schedule have come since (the last at {})",
            timestamp(missed[TICKS_WITHOUT_A_PASS - 1])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_timestamp(text).expect("timestamp")
    }

    #[test]
    fn a_pass_must_complete_before_the_third_tick_since_the_last_one() {
        let hourly = CronSchedule::parse("0 0 * * * *", chrono_tz::Asia::Shanghai).expect("cron");
        let now = at("2026-11-29T12:00:00Z");
        let cases = [
            (Some("2026-11-29T11:30:00Z"), None, true),
            (Some("2026-11-29T10:00:01Z"), None, true),
            // 10:00, 11:00 and 12:00 have come since.
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
            let verdict = evaluate(last.map(at), started.map(at), &hourly, now);
            assert_eq!(
                verdict.is_ok(),
                healthy,
                "last {last:?} started {started:?}: {verdict:?}"
            );
        }
    }

    #[test]
    fn a_schedule_with_a_night_gap_is_healthy_through_the_night() {
        // Every minute from 09:00 to 17:59 UTC: the last pass of the day completes at 17:59:30.
        let day = CronSchedule::parse("0 * 9-17 * * *", chrono_tz::UTC).expect("cron");
        let last = Some(at("2026-12-03T17:59:30Z"));
        for (now, healthy) in [
            ("2026-12-03T18:30:00Z", true),
            ("2026-12-04T06:00:00Z", true),
            ("2026-12-04T09:01:30Z", true),
            ("2026-12-04T09:02:00Z", false),
        ] {
            let verdict = evaluate(last, None, &day, at(now));
            assert_eq!(verdict.is_ok(), healthy, "at {now}: {verdict:?}");
        }
    }
}
