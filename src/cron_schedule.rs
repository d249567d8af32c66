//! When a cron expression fires, read in a time zone: the daemon's ticks, what its health check
//! expects, the quota forecast. Pure: the time is always given, never read.
//!
//! Every tick is found in the zone's own wall-clock time (croner), so a zone with daylight saving
//! time fires at the same local hour on both sides of a change, once.

use chrono::{DateTime, Duration, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// The longest wall-clock time a change of clocks repeats (an hour; 30 minutes on Lord Howe).
const REPEATED_TIME_SECONDS: u32 = 3600;

/// A 6-field cron expression (seconds first) read in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    timezone: chrono_tz::Tz,
}

impl CronSchedule {
    /// `expression` with seconds first (`"0 */30 * * * *"`). When both a day of month and a day
    /// of week are given, either one matching is enough, as in standard (Vixie) cron: `0 0 0 1 *
    /// 1` fires on the 1st and on every Monday. As there too, a day field that starts with `*`
    /// (`*/10`) makes both have to match. `None` if it does not parse.
    pub fn parse(expression: &str, timezone: chrono_tz::Tz) -> Option<CronSchedule> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let either_day_starred = matches!(fields.as_slice(),
            [_, _, _, day_of_month, _, day_of_week, ..]
                if day_of_month.starts_with('*') || day_of_week.starts_with('*'));
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(either_day_starred)
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
            .ok()?
            .with_timezone(&Utc);
        if tick > after {
            return Some(tick);
        }
        // `after` is in the hour repeated when clocks go back, and croner read the wall-clock
        // time it found as its first occurrence, which is past. Look second by second (each
        // second's wall-clock time is unambiguous from UTC) through what is left of the repeat.
        let mut candidate = second;
        for _ in 0..REPEATED_TIME_SECONDS {
            candidate += Duration::seconds(1);
            if self
                .cron
                .is_time_matching(&candidate.with_timezone(&self.timezone))
                .unwrap_or(false)
            {
                return Some(candidate);
            }
        }
        self.next_after(candidate)
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
                Some(tick) if tick < to && tick > after => {
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
    use chrono::Datelike;
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
    fn the_hour_repeated_when_clocks_go_back_gives_only_later_ticks() {
        // Berlin, 2026-10-25: 03:00 CEST (01:00 UTC) becomes 02:00 CET, so 02:00–02:59 local
        // comes twice: 00:00–00:59 UTC and 01:00–01:59 UTC.
        for expression in [
            "0 */30 * * * *",
            "0 30 2 * * *",
            "* * * * * *",
            "0 0 * * * *",
        ] {
            let schedule = CronSchedule::parse(expression, Berlin).expect("valid");
            let mut instant = at("2026-10-24T23:50:00Z");
            while instant < at("2026-10-25T02:10:00Z") {
                let next = schedule.next_after(instant).expect("a next tick");
                assert!(next > instant, "{expression}: after {instant} came {next}");
                instant += Duration::seconds(97);
            }
        }
        // Started in the repeated hour, every half hour: 02:30 CET (01:30 UTC) is next, not the
        // 02:30 CEST that is past.
        let half_hourly = CronSchedule::parse("0 */30 * * * *", Berlin).expect("valid");
        assert_eq!(
            half_hourly.next_after(at("2026-10-25T01:10:00Z")),
            Some(at("2026-10-25T01:30:00Z"))
        );
        let ticks = half_hourly.ticks(at("2026-10-25T01:05:00Z"), at("2026-10-25T02:05:00Z"), 10);
        assert_eq!(
            ticks,
            [at("2026-10-25T01:30:00Z"), at("2026-10-25T02:00:00Z")]
        );
    }

    #[test]
    fn a_day_of_month_and_a_day_of_week_fire_on_either_as_standard_cron_does() {
        let january = |expression: &str| {
            CronSchedule::parse(expression, chrono_tz::UTC)
                .expect("valid")
                .ticks(at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z"), 100)
                .iter()
                .map(|tick| tick.day())
                .collect::<Vec<_>>()
        };
        // 2026-01-03 is a Saturday; the Mondays are the 5th, 12th, 19th and 26th.
        assert_eq!(january("0 0 0 3 * 1"), [3, 5, 12, 19, 26]);
        assert_eq!(
            january("0 0 0 * * 1"),
            [5, 12, 19, 26],
            "a day of week alone"
        );
        assert_eq!(january("0 0 0 3 * *"), [3], "a day of month alone");
        assert_eq!(january("0 0 0 3 * MON"), [3, 5, 12, 19, 26]);
        // A day field starting with `*` is a wildcard for this rule, as in Vixie cron.
        assert_eq!(january("0 0 0 3 * */1"), [3]);
        assert_eq!(january("0 0 0 */2 * 1"), [5, 19], "Mondays on odd days");
        assert_eq!(january("0 0 0 */10 * *"), [1, 11, 21, 31]);
        assert_eq!(
            january("0 0 0 * * */3"),
            [3, 4, 7, 10, 11, 14, 17, 18, 21, 24, 25, 28, 31]
        );
    }

    #[test]
    fn an_expression_that_never_fires_has_no_next_tick() {
        let never = CronSchedule::parse("0 0 0 31 2 *", Shanghai).expect("parses");
        assert_eq!(never.next_after(at("2026-11-29T10:00:00Z")), None);
        let leap_day = CronSchedule::parse("0 0 0 29 2 *", Shanghai).expect("parses");
        assert_eq!(
            leap_day.next_after(at("2026-11-29T10:00:00Z")),
            Some(at("2028-02-28T16:00:00Z")),
            "rare is not never"
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
