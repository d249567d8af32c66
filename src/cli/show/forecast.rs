//! The arithmetic behind `quota`: the schedule's ticks, the forecast of calls against the daily
//! max, the key's days left, the warnings and the day chart's bars. Pure: no I/O, no clock.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::cron_schedule::CronSchedule;

/// Most ticks counted per Beijing day: a cron cannot fire more often than once a second.
const MAX_TICKS_PER_DAY: usize = 86_400;

/// Beijing days looked at to find the busiest one (a cron may fire only on some weekdays).
pub const FORECAST_DAYS: u32 = 7;

/// The expiry is warned about from this many days before.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The instants in `[from, to)` at which the 6-field cron `expression`, read in `timezone`, fires
/// (at most [`FORECAST_DAYS`] days' worth of seconds); `None` if the expression does not parse.
pub fn cron_ticks(
    expression: &str,
    timezone: chrono_tz::Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<Vec<DateTime<Utc>>> {
    let schedule = CronSchedule::parse(expression, timezone)?;
    Some(schedule.ticks(from, to, MAX_TICKS_PER_DAY * FORECAST_DAYS as usize))
}

/// The most ticks on any of the Beijing days starting at `first_midnight` (one per
/// [`FORECAST_DAYS`]), given all ticks over those days in order.
pub fn busiest_day_ticks(ticks: &[DateTime<Utc>], first_midnight: DateTime<Utc>) -> u64 {
    (0..FORECAST_DAYS)
        .map(|day| {
            let start = first_midnight + Duration::days(i64::from(day));
            let end = start + Duration::days(1);
            ticks.iter().filter(|t| **t >= start && **t < end).count() as u64
        })
        .max()
        .unwrap_or(0)
}

/// `passes_per_day` ticks spread evenly from `now` (exclusive) to `until` (exclusive), for when the
/// ticks are only known as a rate (counted from the passes of the last day).
pub fn even_ticks(
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    passes_per_day: u64,
) -> Vec<DateTime<Utc>> {
    if passes_per_day == 0 {
        return Vec::new();
    }
    let step_ms = (86_400_000 / passes_per_day.min(86_400_000)).max(1);
    let step = Duration::milliseconds(i64::try_from(step_ms).unwrap_or(i64::MAX));
    let mut ticks = Vec::new();
    let mut tick = now + step;
    while tick < until && ticks.len() < MAX_TICKS_PER_DAY {
        ticks.push(tick);
        tick += step;
    }
    ticks
}

/// What the forecast starts from.
#[derive(Debug, Clone)]
pub struct ForecastInput<'a> {
    pub now: DateTime<Utc>,
    /// Active videos: one call each per pass, but for those `not_found`.
    pub active_videos: u64,
    /// Active videos found gone (2000), called once per `not_found_recheck`.
    pub not_found_videos: u64,
    /// `retry.not_found_recheck`; `None` (not known) or zero: `not_found` videos are called in
    /// every pass like the others.
    pub not_found_recheck: Option<std::time::Duration>,
    /// Passes on the busiest Beijing day.
    pub passes_per_day: u64,
    /// The passes still to come before the quota resets, in order.
    pub ticks_before_reset: &'a [DateTime<Utc>],
    /// Calls used today, as onebound last reported.
    pub today: Option<u64>,
    /// The daily max, as onebound last reported.
    pub max: Option<u64>,
    /// `quota.reserve`: calls never spent.
    pub reserve: u64,
}

/// Whether the schedule fits the quota, and when today's quota runs out at its pace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forecast {
    pub active_videos: u64,
    pub passes_per_day: u64,
    /// One call per active video not left out as `not_found` (retries of transient failures
    /// come on top).
    pub calls_per_pass: u64,
    /// Calls a day that check again videos found gone, once per `retry.not_found_recheck`.
    pub not_found_rechecks_per_day: u64,
    pub calls_per_day: u64,
    /// The daily max less the reserve.
    pub usable_per_day: Option<u64>,
    /// Whether `calls_per_day` fits in `usable_per_day`.
    pub covered: Option<bool>,
    pub passes_left_today: u64,
    /// Calls the passes left today need.
    pub calls_left_today: u64,
    /// Usable calls left today: `max - reserve - today`.
    pub usable_left_today: Option<u64>,
    /// Whether a pass today will find the quota spent.
    pub runs_out_today: Option<bool>,
    /// The start of the first pass that cannot make all its calls (`now` if none can be made).
    pub runs_out_at: Option<DateTime<Utc>>,
}

/// The forecast of `input`.
pub fn forecast(input: &ForecastInput<'_>) -> Forecast {
    let (calls_per_pass, not_found_rechecks_per_day) =
        match input.not_found_recheck.filter(|every| !every.is_zero()) {
            Some(every) => {
                let not_found = input.not_found_videos.min(input.active_videos);
                // Each is called once per `every`, and at most once per pass.
                let per_day = not_found
                    .saturating_mul(86_400)
                    .div_ceil(every.as_secs().max(1))
                    .min(not_found.saturating_mul(input.passes_per_day));
                (input.active_videos - not_found, per_day)
            }
            None => (input.active_videos, 0),
        };
    let calls_per_day = input
        .passes_per_day
        .saturating_mul(calls_per_pass)
        .saturating_add(not_found_rechecks_per_day);
    let usable_per_day = input.max.map(|max| max.saturating_sub(input.reserve));
    let passes_left_today = input.ticks_before_reset.len() as u64;
    let usable_left_today =
        usable_per_day.map(|usable| usable.saturating_sub(input.today.unwrap_or(0)));
    let (runs_out_today, runs_out_at) = match usable_left_today {
        None => (None, None),
        Some(_) if calls_per_pass == 0 => (Some(false), None),
        Some(0) => (Some(true), Some(input.now)),
        Some(mut left) => {
            let mut runs_out_at = None;
            for tick in input.ticks_before_reset {
                if left < calls_per_pass {
                    runs_out_at = Some(*tick);
                    break;
                }
                left -= calls_per_pass;
            }
            (Some(runs_out_at.is_some()), runs_out_at)
        }
    };
    Forecast {
        active_videos: input.active_videos,
        passes_per_day: input.passes_per_day,
        calls_per_pass,
        not_found_rechecks_per_day,
        calls_per_day,
        usable_per_day,
        covered: usable_per_day.map(|usable| calls_per_day <= usable),
        passes_left_today,
        calls_left_today: passes_left_today.saturating_mul(calls_per_pass),
        usable_left_today,
        runs_out_today,
        runs_out_at,
    }
}

/// Percent of the daily max used, one decimal; `None` without a (non-zero) max.
pub fn percent_used(today: Option<u64>, max: Option<u64>) -> Option<f64> {
    match (today, max) {
        (Some(today), Some(max)) if max > 0 => {
            Some((today as f64 * 1000.0 / max as f64).round() / 10.0)
        }
        _ => None,
    }
}

/// Whole days from the Beijing date `today` to `expires_on` (negative once expired).
pub fn days_left(expires_on: NaiveDate, today: NaiveDate) -> i64 {
    (expires_on - today).num_days()
}

/// The warning lines: the key expires within [`EXPIRY_WARNING_DAYS`], the schedule needs more
/// calls a day than the max allows, or today's quota runs out before the reset.
pub fn warnings(
    expires_on: Option<NaiveDate>,
    expires_in_days: Option<i64>,
    forecast: &Forecast,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let (Some(date), Some(days)) = (expires_on, expires_in_days) {
        if days < 0 {
            lines.push(format!("the API key expired on {date}"));
        } else if days <= EXPIRY_WARNING_DAYS {
            lines.push(format!(
                "the API key expires on {date}, in {days} day{}",
                if days == 1 { "" } else { "s" }
            ));
        }
    }
    if let (Some(false), Some(usable)) = (forecast.covered, forecast.usable_per_day) {
        lines.push(format!(
            "the schedule needs {} calls a day ({} passes × {} videos) but only {usable} are available (daily max less the reserve)",
            forecast.calls_per_day, forecast.passes_per_day, forecast.calls_per_pass
        ));
    }
    if forecast.runs_out_today == Some(true) {
        lines.push(match forecast.runs_out_at {
            Some(at) => format!(
                "today's quota runs out at this pace: passes from {} on cannot make all their calls",
                crate::store::timestamp(at)
            ),
            None => "today's quota runs out at this pace".to_owned(),
        });
    }
    lines
}

/// A horizontal bar of `width` cells for `value` on a scale whose full width is `scale`, drawn
/// with Unicode block elements in eighths of a cell, padded with spaces to `width`.
pub fn bar(value: u64, scale: u64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = if scale == 0 {
        0
    } else {
        let total = u128::from(value.min(scale)) * (width as u128) * 8;
        // Round to the nearest eighth; a non-zero value always shows at least one eighth.
        let rounded = (total + u128::from(scale) / 2) / u128::from(scale);
        usize::try_from(rounded)
            .unwrap_or(usize::MAX)
            .max(usize::from(value > 0))
    };
    let full = eighths / 8;
    let mut out: String = "█".repeat(full);
    if full < width {
        out.push(PARTS[eighths % 8]);
        out.push_str(&" ".repeat(width - full - 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid timestamp")
            .with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().expect("valid date")
    }

    /// Beijing midnight of 2026-11-30 in UTC.
    const MIDNIGHT: &str = "2026-11-29T16:00:00Z";

    #[test]
    fn cron_ticks_count_the_busiest_beijing_day() {
        let cases: &[(&str, chrono_tz::Tz, u64)] = &[
            ("0 0 * * * *", Shanghai, 24),
            ("0 */30 * * * *", Shanghai, 48),
            ("0 */5 * * * *", Shanghai, 288),
            ("*/4 * * * * *", Shanghai, 21_600),
            ("* * * * * *", Shanghai, 86_400),
            ("0 0 9 * * *", Shanghai, 1),
            ("0 0 9,21 * * *", chrono_tz::UTC, 2),
            // Mondays only: the busiest of the 7 days has one.
            ("0 0 9 * * Mon", Shanghai, 1),
            ("0 0 0 1 1 *", Shanghai, 0),
        ];
        let from = utc(MIDNIGHT);
        let to = from + Duration::days(i64::from(FORECAST_DAYS));
        for (expression, timezone, expected) in cases {
            let ticks = cron_ticks(expression, *timezone, from, to).expect("valid cron");
            assert_eq!(
                busiest_day_ticks(&ticks, from),
                *expected,
                "{expression} in {timezone}"
            );
        }
        assert!(cron_ticks("not a cron", Shanghai, from, to).is_none());
    }

    #[test]
    fn cron_ticks_are_in_the_cron_timezone_and_half_open() {
        let from = utc(MIDNIGHT);
        let to = from + Duration::days(1);
        // 09:00 Beijing is 01:00 UTC.
        let ticks = cron_ticks("0 0 9 * * *", Shanghai, from, to).expect("valid");
        assert_eq!(ticks, vec![utc("2026-11-30T01:00:00Z")]);
        // A tick exactly at `from` counts, one exactly at `to` does not.
        let ticks = cron_ticks("0 0 0 * * *", Shanghai, from, to).expect("valid");
        assert_eq!(ticks, vec![from]);
    }

    #[test]
    fn even_ticks_spread_a_rate_until_the_reset() {
        let now = utc("2026-11-29T10:00:00Z");
        let reset = utc(MIDNIGHT);
        let cases: &[(u64, usize, Option<&str>)] = &[
            (0, 0, None),
            (24, 5, Some("2026-11-29T11:00:00Z")), // 11..15 h
            (1, 0, None),
            (48, 11, Some("2026-11-29T10:30:00Z")),
        ];
        for (per_day, count, first) in cases {
            let ticks = even_ticks(now, reset, *per_day);
            assert_eq!(ticks.len(), *count, "{per_day} a day");
            assert_eq!(ticks.first().copied(), first.map(utc), "{per_day} a day");
        }
    }

    struct Case {
        name: &'static str,
        videos: u64,
        passes_per_day: u64,
        ticks_left: usize,
        today: Option<u64>,
        max: Option<u64>,
        reserve: u64,
        calls_per_day: u64,
        covered: Option<bool>,
        usable_left: Option<u64>,
        runs_out_today: Option<bool>,
        /// Index into the hourly ticks (usize::MAX for `now`).
        runs_out_at: Option<usize>,
    }

    #[test]
    fn the_forecast_on_fixed_samples() {
        let now = utc("2026-11-29T10:00:00Z");
        let reset = utc(MIDNIGHT);
        // Hourly ticks from 11:00 UTC: 11, 12, 13, 14, 15 (5 before the reset).
        let hourly = even_ticks(now, reset, 24);
        let cases = [
            Case {
                name: "plenty: 100 videos hourly of 10000",
                videos: 100,
                passes_per_day: 24,
                ticks_left: 5,
                today: Some(1000),
                max: Some(10_000),
                reserve: 0,
                calls_per_day: 2400,
                covered: Some(true),
                usable_left: Some(9000),
                runs_out_today: Some(false),
                runs_out_at: None,
            },
            Case {
                name: "the schedule needs more than the max",
                videos: 500,
                passes_per_day: 24,
                ticks_left: 5,
                today: Some(8000),
                max: Some(10_000),
                reserve: 0,
                calls_per_day: 12_000,
                covered: Some(false),
                usable_left: Some(2000),
                // 2000 left: the passes at 11, 12, 13 and 14 take 500 each, the 15:00 one is short.
                runs_out_today: Some(true),
                runs_out_at: Some(4),
            },
            Case {
                name: "the reserve counts against the max",
                videos: 100,
                passes_per_day: 24,
                ticks_left: 5,
                today: Some(9500),
                max: Some(10_000),
                reserve: 250,
                calls_per_day: 2400,
                covered: Some(true),
                usable_left: Some(250),
                runs_out_today: Some(true),
                runs_out_at: Some(2),
            },
            Case {
                name: "exactly enough for the passes left",
                videos: 100,
                passes_per_day: 24,
                ticks_left: 5,
                today: Some(9500),
                max: Some(10_000),
                reserve: 0,
                calls_per_day: 2400,
                covered: Some(true),
                usable_left: Some(500),
                runs_out_today: Some(false),
                runs_out_at: None,
            },
            Case {
                name: "already spent",
                videos: 10,
                passes_per_day: 24,
                ticks_left: 5,
                today: Some(10_000),
                max: Some(10_000),
                reserve: 0,
                calls_per_day: 240,
                covered: Some(true),
                usable_left: Some(0),
                runs_out_today: Some(true),
                runs_out_at: Some(usize::MAX),
            },
            Case {
                name: "the max is not known yet",
                videos: 10,
                passes_per_day: 24,
                ticks_left: 5,
                today: None,
                max: None,
                reserve: 0,
                calls_per_day: 240,
                covered: None,
                usable_left: None,
                runs_out_today: None,
                runs_out_at: None,
            },
            Case {
                name: "no video, nothing is spent",
                videos: 0,
                passes_per_day: 24,
                ticks_left: 5,
                today: Some(10_000),
                max: Some(10_000),
                reserve: 0,
                calls_per_day: 0,
                covered: Some(true),
                usable_left: Some(0),
                runs_out_today: Some(false),
                runs_out_at: None,
            },
            Case {
                name: "a reserve above the max leaves nothing",
                videos: 1,
                passes_per_day: 1,
                ticks_left: 0,
                today: Some(0),
                max: Some(10),
                reserve: 20,
                calls_per_day: 1,
                covered: Some(false),
                usable_left: Some(0),
                runs_out_today: Some(true),
                runs_out_at: Some(usize::MAX),
            },
        ];
        for case in cases {
            let ticks = &hourly[..case.ticks_left];
            let result = forecast(&ForecastInput {
                now,
                active_videos: case.videos,
                not_found_videos: 0,
                not_found_recheck: None,
                passes_per_day: case.passes_per_day,
                ticks_before_reset: ticks,
                today: case.today,
                max: case.max,
                reserve: case.reserve,
            });
            let name = case.name;
            assert_eq!(result.calls_per_pass, case.videos, "{name}");
            assert_eq!(result.calls_per_day, case.calls_per_day, "{name}");
            assert_eq!(result.covered, case.covered, "{name}");
            assert_eq!(result.usable_left_today, case.usable_left, "{name}");
            assert_eq!(result.passes_left_today, case.ticks_left as u64, "{name}");
            assert_eq!(
                result.calls_left_today,
                case.ticks_left as u64 * case.videos,
                "{name}"
            );
            assert_eq!(result.runs_out_today, case.runs_out_today, "{name}");
            let expected_at = case
                .runs_out_at
                .map(|i| if i == usize::MAX { now } else { hourly[i] });
            assert_eq!(result.runs_out_at, expected_at, "{name}");
        }
    }

    #[test]
    fn videos_found_gone_count_once_per_recheck_not_once_per_pass() {
        let now = utc("2026-11-29T10:00:00Z");
        let ticks = [utc("2026-11-29T11:00:00Z"), utc("2026-11-29T12:00:00Z")];
        let with = |not_found_videos, recheck: Option<u64>| {
            forecast(&ForecastInput {
                now,
                active_videos: 100,
                not_found_videos,
                not_found_recheck: recheck.map(std::time::Duration::from_secs),
                passes_per_day: 24,
                ticks_before_reset: &ticks,
                today: Some(0),
                max: Some(10_000),
                reserve: 0,
            })
        };
        let week = 7 * 86_400;
        // 30 of 100 gone, each checked again once a week: 24 × 70 + ceil(30 / 7).
        let gone = with(30, Some(week));
        assert_eq!(
            (gone.calls_per_pass, gone.not_found_rechecks_per_day),
            (70, 5)
        );
        assert_eq!(gone.calls_per_day, 24 * 70 + 5);
        assert_eq!(gone.calls_left_today, 2 * 70);
        // Checked in every pass, or the recheck not known: every active video every pass.
        for recheck in [Some(0), None] {
            let every_pass = with(30, recheck);
            assert_eq!(every_pass.calls_per_pass, 100, "{recheck:?}");
            assert_eq!(every_pass.calls_per_day, 2400, "{recheck:?}");
        }
        // A recheck shorter than the passes' spacing is still at most one call per pass.
        let hourly_recheck = with(30, Some(60));
        assert_eq!(hourly_recheck.not_found_rechecks_per_day, 30 * 24);
        assert_eq!(with(0, Some(week)).calls_per_day, 2400, "none gone");
    }

    #[test]
    fn percent_used_on_fixed_samples() {
        let cases = [
            (Some(0), Some(100), Some(0.0)),
            (Some(412), Some(1000), Some(41.2)),
            (Some(1), Some(3), Some(33.3)),
            (Some(2), Some(3), Some(66.7)),
            (Some(120), Some(100), Some(120.0)),
            (Some(5), Some(0), None),
            (None, Some(100), None),
            (Some(5), None, None),
        ];
        for (today, max, expected) in cases {
            assert_eq!(percent_used(today, max), expected, "{today:?} of {max:?}");
        }
    }

    #[test]
    fn days_left_and_the_warnings() {
        let today = date("2026-11-29");
        assert_eq!(days_left(date("2026-12-29"), today), 30);
        assert_eq!(days_left(date("2026-11-29"), today), 0);
        assert_eq!(days_left(date("2026-11-28"), today), -1);
        let fits = forecast(&ForecastInput {
            now: utc("2026-11-29T10:00:00Z"),
            active_videos: 10,
            not_found_videos: 0,
            not_found_recheck: None,
            passes_per_day: 24,
            ticks_before_reset: &[],
            today: Some(0),
            max: Some(10_000),
            reserve: 0,
        });
        let too_many = Forecast {
            covered: Some(false),
            ..fits.clone()
        };
        let cases: &[(&str, Option<&str>, &Forecast, &[&str])] = &[
            ("far expiry, fits", Some("2030-12-31"), &fits, &[]),
            ("no expiry known", None, &fits, &[]),
            ("31 days", Some("2026-12-30"), &fits, &[]),
            (
                "30 days",
                Some("2026-12-29"),
                &fits,
                &["expires on 2026-12-29, in 30 days"],
            ),
            ("1 day", Some("2026-11-30"), &fits, &["in 1 day"]),
            (
                "expired",
                Some("2026-11-01"),
                &fits,
                &["expired on 2026-11-01"],
            ),
            (
                "over the max",
                Some("2030-12-31"),
                &too_many,
                &["needs 240 calls a day (24 passes × 10 videos)"],
            ),
        ];
        for (name, expires_on, forecast, expected) in cases {
            let expires_on = expires_on.map(date);
            let lines = warnings(
                expires_on,
                expires_on.map(|d| days_left(d, today)),
                forecast,
            );
            assert_eq!(lines.len(), expected.len(), "{name}: {lines:?}");
            for (line, part) in lines.iter().zip(expected.iter()) {
                assert!(line.contains(part), "{name}: {line:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn bars_scale_to_the_width_in_eighths() {
        let cases = [
            (0, 100, 4, "    "),
            (100, 100, 4, "████"),
            (50, 100, 4, "██  "),
            (1, 100, 4, "▏   "),   // a non-zero value always shows
            (55, 100, 4, "██▎ "),  // 17.6 eighths round to 18
            (60, 100, 4, "██▍ "),  // 19.2 → 19
            (200, 100, 4, "████"), // capped
            (5, 0, 4, "    "),
        ];
        for (value, scale, width, expected) in cases {
            let drawn = bar(value, scale, width);
            assert_eq!(drawn, expected, "{value} of {scale}");
            assert_eq!(drawn.chars().count(), width, "{value} of {scale}");
        }
    }
}
