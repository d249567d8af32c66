//! The quota day and the guard that keeps calls within `max - reserve`.
//!
//! onebound counts calls per Beijing (Asia/Shanghai) calendar day. The guard knows the latest
//! `today`/`max` figures and the calls in flight, and refuses a call that could spend the reserve.

use std::sync::Mutex;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;

use crate::api_info::ApiInfo;

/// The Beijing calendar date of `at`: the day onebound's quota counters belong to.
pub fn quota_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&Shanghai).date_naive()
}

/// The next Beijing midnight after `at`, when the quota counters reset.
pub fn next_quota_reset(at: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = quota_day(at)
        .checked_add_days(Days::new(1))
        .unwrap_or(NaiveDate::MAX);
    beijing_midnight(tomorrow).unwrap_or(at)
}

/// The instants a Beijing day starts and ends at (its midnight and the next), in UTC.
pub fn quota_day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = beijing_midnight(day).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let end = day
        .checked_add_days(Days::new(1))
        .and_then(beijing_midnight)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (start, end)
}

/// How far onebound's clock may run behind ours: an answer to a call that started this soon
/// after Beijing midnight, with a `server_time` still on the day before, counts against that day.
/// Migration 0009's `quota_samples.quota_day` writes the same rule in SQL.
pub const SERVER_CLOCK_LAG: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The Beijing day an answer's quota figures (and a `4013`) count against: the day its call
/// started, or the day before when the call started within [`SERVER_CLOCK_LAG`] after midnight
/// and the answer's `server_time` (onebound's Beijing clock, `Beijing/2022-09-29 14:25:29`) is
/// still on that day. So an answer to a call sent just after our midnight, by a server clock a
/// little behind ours, is not taken for the first figures of the new day: a `today` at the max
/// would stop every call of the new day. A server time any further off (later, far earlier, or
/// unreadable) is not believed.
pub fn counted_day(started_at: DateTime<Utc>, server_time: Option<&str>) -> NaiveDate {
    let started_day = quota_day(started_at);
    let Some(day_before) = started_at
        .checked_sub_signed(SERVER_CLOCK_LAG)
        .map(quota_day)
        .filter(|day| *day != started_day)
    else {
        return started_day;
    };
    // Compared as text, exactly as the SQL of migration 0009 does.
    let server_date = server_time
        .and_then(|text| text.strip_prefix("Beijing/"))
        .and_then(|text| text.get(..10));
    if server_date == Some(day_before.format("%Y-%m-%d").to_string().as_str()) {
        day_before
    } else {
        started_day
    }
}

/// When calls may start again after a `4013` (the day's quota used up): at the reset that ends
/// the quota day the answer counted against ([`counted_day`]), so that a call sent just before
/// midnight, or a server clock a little behind ours, is not taken for a `4013` of the new day,
/// which would stop every call until the day after. When that reset has already passed by the
/// time of the answer, the pause lasts `grace` instead.
pub fn quota_exceeded_until(
    started_at: DateTime<Utc>,
    server_time: Option<&str>,
    answered_at: DateTime<Utc>,
    grace: chrono::TimeDelta,
) -> DateTime<Utc> {
    let reset = quota_day_bounds(counted_day(started_at, server_time)).1;
    if reset > answered_at {
        reset
    } else {
        answered_at
            .checked_add_signed(grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

fn beijing_midnight(day: NaiveDate) -> Option<DateTime<Utc>> {
    // Asia/Shanghai has had no DST since 1991, so midnight always exists exactly once.
    Shanghai
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// The quota figures a call was refused by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "quota reserve reached: {today} of {max} calls used today (Beijing time), {in_flight} in flight, {reserve} kept in reserve"
)]
pub struct ReserveReached {
    pub today: u64,
    pub max: u64,
    pub in_flight: u64,
    pub reserve: u64,
}

#[derive(Debug)]
struct Known {
    day: NaiveDate,
    today: Option<u64>,
    max: Option<u64>,
    in_flight: u64,
}

/// Counts calls against the latest known quota so that `max - today <= reserve` never calls.
#[derive(Debug)]
pub struct QuotaGuard {
    reserve: u64,
    known: Mutex<Known>,
}

/// A call admitted by the guard; dropping it ends the call's "in flight" count.
#[derive(Debug)]
pub struct CallTicket<'a> {
    guard: &'a QuotaGuard,
}

impl Drop for CallTicket<'_> {
    fn drop(&mut self) {
        let mut known = self.guard.lock();
        known.in_flight = known.in_flight.saturating_sub(1);
    }
}

impl QuotaGuard {
    /// A guard keeping `reserve` calls back, starting from the latest figures known for `day`.
    pub fn new(reserve: u64, day: NaiveDate, today: Option<u64>, max: Option<u64>) -> QuotaGuard {
        QuotaGuard {
            reserve,
            known: Mutex::new(Known {
                day,
                today,
                max,
                in_flight: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        // The state is plain counters: a panic elsewhere cannot leave it inconsistent.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one call at `now`, or says why not. Unknown figures admit the call.
    pub fn try_begin(&self, now: DateTime<Utc>) -> Result<CallTicket<'_>, ReserveReached> {
        let mut known = self.lock();
        roll_over(&mut known, quota_day(now));
        if let (Some(today), Some(max)) = (known.today, known.max) {
            let committed = today.saturating_add(known.in_flight);
            if max.saturating_sub(committed) <= self.reserve {
                return Err(ReserveReached {
                    today,
                    max,
                    in_flight: known.in_flight,
                    reserve: self.reserve,
                });
            }
        }
        known.in_flight += 1;
        Ok(CallTicket { guard: self })
    }

    /// Takes in the figures of an answer that count against `day` ([`counted_day`]); those of
    /// a day already over are of no use.
    pub fn observe(&self, day: NaiveDate, info: &ApiInfo) {
        let mut known = self.lock();
        if day < known.day {
            return;
        }
        roll_over(&mut known, day);
        if let Some(today) = info.today {
            // Answers overtake each other; the counter only grows within a day.
            known.today = Some(known.today.map_or(today, |t| t.max(today)));
        }
        if info.max.is_some() {
            known.max = info.max;
        }
    }

    /// Whether no call at all can be made now (the reserve is reached with nothing in flight).
    pub fn is_exhausted(&self, now: DateTime<Utc>) -> Option<ReserveReached> {
        let mut known = self.lock();
        roll_over(&mut known, quota_day(now));
        match (known.today, known.max) {
            (Some(today), Some(max)) if max.saturating_sub(today) <= self.reserve => {
                Some(ReserveReached {
                    today,
                    max,
                    in_flight: known.in_flight,
                    reserve: self.reserve,
                })
            }
            _ => None,
        }
    }
}

/// Says once per Beijing day when usage first reaches `warn_at` (a fraction) of the daily max.
#[derive(Debug)]
pub struct UsageWarning {
    warn_at: f64,
    warned_on: Mutex<Option<NaiveDate>>,
}

impl UsageWarning {
    /// Warns at `warn_at` of the max (e.g. 0.8); 0 or less never warns.
    pub fn new(warn_at: f64) -> UsageWarning {
        UsageWarning {
            warn_at,
            warned_on: Mutex::new(None),
        }
    }

    /// The fraction of the max this warns at.
    pub fn warn_at(&self) -> f64 {
        self.warn_at
    }

    /// Takes `today`, a figure already stored for `day`, as warned about if it reached the
    /// threshold: whoever stored it (this process before a restart, another one) warned then.
    pub fn already_stored(&self, day: NaiveDate, today: u64, max: u64) {
        self.crossed(day, today, max);
    }

    /// True the first time on `day` that `today` reaches the threshold of `max`.
    pub fn crossed(&self, day: NaiveDate, today: u64, max: u64) -> bool {
        if self.warn_at <= 0.0 || max == 0 || (today as f64) < self.warn_at * max as f64 {
            return false;
        }
        let mut warned_on = self.warned_on.lock().unwrap_or_else(|e| e.into_inner());
        // Once a day is warned about, so are the days before it (an answer counted against
        // yesterday can come in just after midnight).
        if warned_on.is_some_and(|warned| warned >= day) {
            return false;
        }
        *warned_on = Some(day);
        true
    }
}

fn roll_over(known: &mut Known, day: NaiveDate) {
    if day != known.day {
        known.day = day;
        known.today = None;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_4013_pauses_until_the_end_of_the_quota_day_it_counted_against() {
        let at = |text: &str| text.parse::<DateTime<Utc>>().expect("instant");
        let grace = chrono::TimeDelta::minutes(10);
        // Beijing 15:00: the day's quota is used up; calls wait for Beijing midnight (16:00 UTC).
        assert_eq!(
            quota_exceeded_until(
                at("2026-12-03T07:00:00Z"),
                Some("Beijing/2026-12-03 15:00:00"),
                at("2026-12-03T07:00:01Z"),
                grace
            ),
            at("2026-12-03T16:00:00Z")
        );
        // Sent at Beijing 00:00:00 by our clock, but onebound's still read 23:59:58: the answer
        // was the old day's, whose reset has passed. A short pause, not the whole new day.
        assert_eq!(
            quota_exceeded_until(
                at("2026-12-03T16:00:00Z"),
                Some("Beijing/2026-12-03 23:59:58"),
                at("2026-12-03T16:00:00.100Z"),
                grace
            ),
            at("2026-12-03T16:10:00.100Z")
        );
        // Sent before midnight, answered after it, no server time: the same.
        assert_eq!(
            quota_exceeded_until(
                at("2026-12-03T15:59:59.900Z"),
                None,
                at("2026-12-03T16:00:00.300Z"),
                grace
            ),
            at("2026-12-03T16:10:00.300Z")
        );
        // A server clock ahead of ours, or a server time that cannot be read, does not move
        // the day later than the call's start.
        for server_time in [Some("Beijing/2026-12-04 00:00:05"), Some("yesterday"), None] {
            assert_eq!(
                quota_exceeded_until(
                    at("2026-12-03T15:59:50Z"),
                    server_time,
                    at("2026-12-03T15:59:51Z"),
                    grace
                ),
                at("2026-12-03T16:00:00Z"),
                "{server_time:?}"
            );
        }
        // A grace past the calendar's end is a pause as long as can be, not none.
        assert_eq!(
            quota_exceeded_until(
                at("2026-12-03T15:59:59Z"),
                None,
                at("2026-12-03T16:00:01Z"),
                chrono::TimeDelta::MAX
            ),
            DateTime::<Utc>::MAX_UTC
        );
        // A 4013 of the new day, well after midnight, waits for the next one.
        assert_eq!(
            quota_exceeded_until(
                at("2026-12-03T16:30:00Z"),
                Some("Beijing/2026-12-04 00:30:00"),
                at("2026-12-03T16:30:01Z"),
                grace
            ),
            at("2026-12-04T16:00:00Z")
        );
    }

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid timestamp")
            .with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().expect("valid date")
    }

    #[test]
    fn a_quota_day_runs_from_beijing_midnight_to_the_next() {
        assert_eq!(
            quota_day_bounds(date("2026-11-30")),
            (utc("2026-11-29T16:00:00Z"), utc("2026-11-30T16:00:00Z"))
        );
        let (start, end) = quota_day_bounds(NaiveDate::MAX);
        assert!(start < end, "the last day ends at the end of time");
    }

    #[test]
    fn the_quota_day_is_the_beijing_date() {
        let cases = [
            ("2026-11-29T15:59:59Z", "2026-11-29"),
            ("2026-11-29T16:00:00Z", "2026-11-30"),
            ("2026-12-31T23:00:00Z", "2027-01-01"),
            ("2026-11-29T00:00:00Z", "2026-11-29"),
        ];
        for (at, day) in cases {
            assert_eq!(quota_day(utc(at)), date(day), "at {at}");
        }
    }

    #[test]
    fn the_quota_resets_at_the_next_beijing_midnight() {
        let cases = [
            ("2026-11-29T10:00:00Z", "2026-11-29T16:00:00Z"),
            ("2026-11-29T15:59:59Z", "2026-11-29T16:00:00Z"),
            ("2026-11-29T16:00:00Z", "2026-11-30T16:00:00Z"),
        ];
        for (at, reset) in cases {
            assert_eq!(next_quota_reset(utc(at)), utc(reset), "at {at}");
        }
    }

    fn info(today: Option<u64>, max: Option<u64>) -> ApiInfo {
        ApiInfo {
            today,
            max,
            ..ApiInfo::default()
        }
    }

    #[test]
    fn the_guard_counts_calls_in_flight_against_the_reserve() {
        let now = utc("2026-11-29T10:00:00Z");
        // 3 calls left above the reserve of 2.
        let guard = QuotaGuard::new(2, quota_day(now), Some(95), Some(100));
        let tickets: Vec<_> = (0..3)
            .map(|i| {
                guard
                    .try_begin(now)
                    .unwrap_or_else(|e| panic!("call {i}: {e}"))
            })
            .collect();
        let refused = guard
            .try_begin(now)
            .expect_err("the fourth call spends the reserve");
        assert_eq!(refused.in_flight, 3);
        drop(tickets);
        // The three calls were answered and counted by onebound.
        guard.observe(quota_day(now), &info(Some(98), Some(100)));
        assert!(guard.try_begin(now).is_err());
        assert!(guard.is_exhausted(now).is_some());
    }

    #[test]
    fn unknown_figures_admit_calls() {
        let now = utc("2026-11-29T10:00:00Z");
        for (today, max) in [(None, None), (Some(10), None), (None, Some(10))] {
            let guard = QuotaGuard::new(5, quota_day(now), today, max);
            assert!(guard.try_begin(now).is_ok(), "today {today:?} max {max:?}");
        }
    }

    #[test]
    fn a_new_beijing_day_forgets_yesterdays_count() {
        let evening = utc("2026-11-29T15:00:00Z");
        let guard = QuotaGuard::new(0, quota_day(evening), Some(100), Some(100));
        assert!(guard.try_begin(evening).is_err());
        let after_midnight = utc("2026-11-29T16:00:01Z");
        assert!(guard.try_begin(after_midnight).is_ok());
        assert!(guard.is_exhausted(after_midnight).is_none());
    }

    #[test]
    fn the_usage_warning_fires_once_per_beijing_day() {
        let warning = UsageWarning::new(0.8);
        let day = date("2026-11-29");
        let next = date("2026-11-30");
        let steps = [
            (day, 79, 100, false),
            (day, 80, 100, true),
            (day, 95, 100, false),
            (next, 10, 100, false),
            (next, 81, 100, true),
            (next, 100, 0, false),
            // An answer of the day before, counted after midnight: that day is over.
            (day, 99, 100, false),
        ];
        for (on, today, max, fires) in steps {
            assert_eq!(warning.crossed(on, today, max), fires, "{on} {today}/{max}");
        }
        assert!(
            !UsageWarning::new(0.0).crossed(day, 100, 100),
            "0 turns it off"
        );
    }

    #[test]
    fn an_answer_counts_against_the_day_before_only_just_after_midnight_by_a_lagging_clock() {
        // Beijing midnight of 2026-12-04 is 16:00 UTC.
        let cases = [
            // Called at Beijing 00:00:02; onebound's clock still on the 3rd.
            (
                "2026-12-03T16:00:02Z",
                Some("Beijing/2026-12-03 23:59:58"),
                "2026-12-03",
            ),
            (
                "2026-12-03T16:09:59Z",
                Some("Beijing/2026-12-03 23:59:58"),
                "2026-12-03",
            ),
            // Ten minutes on, a server time of the day before is not believed.
            (
                "2026-12-03T16:10:00Z",
                Some("Beijing/2026-12-03 23:59:58"),
                "2026-12-04",
            ),
            // The server on the same day, ahead of ours, far behind, or unreadable.
            (
                "2026-12-03T16:00:02Z",
                Some("Beijing/2026-12-04 00:00:03"),
                "2026-12-04",
            ),
            (
                "2026-12-03T15:59:59Z",
                Some("Beijing/2026-12-04 00:00:01"),
                "2026-12-03",
            ),
            (
                "2026-12-03T16:00:02Z",
                Some("Beijing/2022-09-29 14:25:29"),
                "2026-12-04",
            ),
            ("2026-12-03T16:00:02Z", Some("yesterday"), "2026-12-04"),
            ("2026-12-03T16:00:02Z", None, "2026-12-04"),
            // Midday, whatever the server says.
            (
                "2026-12-04T04:00:00Z",
                Some("Beijing/2026-12-03 12:00:00"),
                "2026-12-04",
            ),
        ];
        for (started, server_time, day) in cases {
            assert_eq!(
                counted_day(utc(started), server_time),
                date(day),
                "{started} {server_time:?}"
            );
        }
    }

    #[test]
    fn figures_of_a_day_over_do_not_count_for_the_new_one() {
        let after_midnight = utc("2026-12-03T16:00:02Z");
        let guard = QuotaGuard::new(0, quota_day(after_midnight), None, None);
        // An answer counted against yesterday, with its quota used up.
        guard.observe(date("2026-12-03"), &info(Some(100), Some(100)));
        assert!(guard.is_exhausted(after_midnight).is_none());
        assert!(guard.try_begin(after_midnight).is_ok());
        guard.observe(quota_day(after_midnight), &info(Some(100), Some(100)));
        assert!(
            guard.is_exhausted(after_midnight).is_some(),
            "today's own figures count"
        );
    }

    #[test]
    fn observed_counts_only_grow_within_a_day() {
        let now = utc("2026-11-29T10:00:00Z");
        let guard = QuotaGuard::new(0, quota_day(now), None, None);
        guard.observe(quota_day(now), &info(Some(10), Some(10)));
        guard.observe(quota_day(now), &info(Some(7), Some(10)));
        let refused = guard.try_begin(now).expect_err("10 of 10 used");
        assert_eq!((refused.today, refused.max), (10, 10));
    }
}
