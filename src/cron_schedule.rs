//! When a cron expression fires, read in a time zone: the daemon's ticks, what its health check
//! expects, the quota forecast. Pure: the time is always given, never read.
//!
//! Every tick is found in the zone's own wall-clock time (croner), so a zone with daylight saving
//! time fires at the same local hour on both sides of a change, once.

use chrono::{DateTime, Duration, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A 6-field cron expression (seconds first) read in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    timezone: chrono_tz::Tz,
}

impl CronSchedule {
    /// `expression` with seconds first (`"0 */30 * * * *"`); a day of month and a day of week
    /// must both match, as in Vixie cron's successors. `None` if it does not parse.
    pub fn parse(expression: &str, timezone: chrono_tz::Tz) -> Option<CronSchedule> {
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(expression)
            .ok()?;
        Some(CronSchedule { cron, timezone })
    }

    /// The first tick strictly after `after`, if the expression ever fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // croner counts in whole seconds: search from the start of `after`'s second, whose next
        // tick is at least a second later, so after `after` whatever its fraction.
        let second = after.with_nanosecond(0).unwrap_or(after);
        let tick = self
            .cron
            .find_next_occurrence(&second.with_timezone(&self.timezone), false)
            .ok()?;
        Some(tick.with_timezone(&Utc))
    }

    /// The ticks in `[from, to)`, in order, at most `limit` of them.
    pub fn ticks(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut ticks = Vec::new();
        // One nanosecond early, so that a tick exactly at `from` counts.
        let mut after = from - Duration::nanoseconds(1);
        while ticks.len() < limit {
            match self.next_after(after) {
                Some(tick) if tick < to => {
                    ticks.push(tick);
                    after = tick;
                }
                _ => break,
            }
        }
        ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{Asia::Shanghai, Europe::Berlin};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    #[test]
    fn ticks_are_in_the_zone_and_strictly_after() {
        let nine = CronSchedule::parse("0 0 9 * * *", Shanghai).expect("valid");
        // 09:00 Beijing is 01:00 UTC.
        assert_eq!(
            nine.next_after(at("2026-11-29T00:00:00Z")),
            Some(at("2026-11-29T01:00:00Z"))
        );
        assert_eq!(
            nine.next_after(at("2026-11-29T01:00:00Z")),
            Some(at("2026-11-30T01:00:00Z")),
            "strictly after"
        );
        let every_second = CronSchedule::parse("* * * * * *", Shanghai).expect("valid");
        assert_eq!(
            every_second.next_after(at("2026-11-29T01:00:00.300Z")),
            Some(at("2026-11-29T01:00:01Z"))
        );
        assert!(CronSchedule::parse("not a cron", Shanghai).is_none());
        assert!(
            CronSchedule::parse("*/30 * * * *", Shanghai).is_none(),
            "5 fields"
        );
    }

    #[test]
    fn a_daylight_saving_zone_fires_at_the_same_local_hour_once() {
        // Berlin: summer time starts 2026-03-29 at 02:00 (UTC+1 → UTC+2) and ends 2026-10-25 at
        // 03:00 (UTC+2 → UTC+1). 04:00 local is 03:00 UTC before the change, 02:00 UTC after.
        let four = CronSchedule::parse("0 0 4 * * *", Berlin).expect("valid");
        let ticks = four.ticks(at("2026-03-27T12:00:00Z"), at("2026-03-31T12:00:00Z"), 10);
        assert_eq!(
            ticks,
            [
                at("2026-03-28T03:00:00Z"),
                at("2026-03-29T02:00:00Z"),
                at("2026-03-30T02:00:00Z"),
                at("2026-03-31T02:00:00Z"),
            ]
        );
        let ticks = four.ticks(at("2026-10-24T12:00:00Z"), at("2026-10-26T12:00:00Z"), 10);
        assert_eq!(
            ticks,
            [at("2026-10-25T03:00:00Z"), at("2026-10-26T03:00:00Z")]
        );
        // An hour the spring change skips is not run twice, nor an hour early.
        let half_past_two = CronSchedule::parse("0 30 2 * * *", Berlin).expect("valid");
        let ticks = half_past_two.ticks(at("2026-03-28T12:00:00Z"), at("2026-03-30T12:00:00Z"), 10);
        assert!(ticks.len() <= 2, "{ticks:?}");
        assert!(
            ticks.windows(2).all(|w| w[1] - w[0] >= Duration::hours(23)),
            "{ticks:?}"
        );
    }

    #[test]
    fn ticks_are_half_open_and_limited() {
        let hourly = CronSchedule::parse("0 0 * * * *", Shanghai).expect("valid");
        let ticks = hourly.ticks(at("2026-11-29T10:00:00Z"), at("2026-11-29T13:00:00Z"), 10);
        assert_eq!(
            ticks,
            [
                at("2026-11-29T10:00:00Z"),
                at("2026-11-29T11:00:00Z"),
                at("2026-11-29T12:00:00Z"),
            ]
        );
        assert_eq!(
            hourly
                .ticks(at("2026-11-29T10:00:00Z"), at("2026-11-30T10:00:00Z"), 2)
                .len(),
            2
        );
        let every_second = CronSchedule::parse("* * * * * *", Shanghai).expect("valid");
        assert_eq!(
            every_second
                .ticks(at("2026-11-29T10:00:00Z"), at("2026-11-29T10:01:00Z"), 1000)
                .len(),
            60,
            "every second counts"
        );
    }
}
