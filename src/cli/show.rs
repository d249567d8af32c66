//! The read-only reports: `watch list`, `history` (and `--diff`), `quota`, `failures`. Tables or
//! `--json` on stdout.

mod forecast;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Asia::Shanghai;
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use super::{Failure, out, parse_ids};
use crate::attempt::describe_failure;
use crate::content::FIELD_NAMES;
use crate::quota::{next_quota_reset, quota_day};
use crate::settings::Settings;
use crate::store::{DayCalls, Pause, Store, VersionContent, WatchedVideo};
use crate::video_id::VideoId;
use forecast::{Forecast, ForecastInput};

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !header.is_empty() {
        table.set_header(header.iter().copied());
    }
    table
}

fn print_json<T: Serialize>(value: &T) -> Result<ExitCode, Failure> {
    let text = serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?;
    outln!("{text}")?;
    Ok(ExitCode::SUCCESS)
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

/// `watch list`.
pub(super) async fn watch_list(store: &Store, json: bool) -> Result<ExitCode, Failure> {
    let videos = store.watched_videos().await.map_err(anyhow::Error::from)?;
    if json {
        return print_json(&videos);
    }
    if videos.is_empty() {
        outln!("the watch list is empty: add videos with `douyin-watch watch add ID|URL`")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = table(&[
        "video_id",
        "label",
        "active",
        "status (since)",
        "versions",
        "last changed",
        "last fetched",
        "last error",
        "title",
    ]);
    for v in &videos {
        out.add_row(escaped(vec![
            v.video_id.clone(),
            or_dash(v.label.as_deref()).to_owned(),
            if v.active { "yes" } else { "no" }.to_owned(),
            format!("{} ({})", v.status, or_dash(v.status_changed_at.as_deref())),
            v.versions.to_string(),
            or_dash(v.last_changed_at.as_deref()).to_owned(),
            or_dash(v.last_fetched_at.as_deref()).to_owned(),
            or_dash(v.last_error_code.as_deref()).to_owned(),
            truncate(or_dash(v.title.as_deref()), 40),
        ]));
    }
    outln!("{out}")?;
    Ok(ExitCode::SUCCESS)
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The video `id` names, if it is in the watch list (active or removed), and its row there.
pub(super) async fn watched_video(
    store: &Store,
    id: &str,
) -> Result<(VideoId, WatchedVideo), Failure> {
    let id = parse_ids(&[id.to_owned()])?.remove(0);
    match store
        .watched_video(&id)
        .await
        .map_err(anyhow::Error::from)?
    {
        Some(video) => Ok((id, video)),
        None => Err(Failure::Usage(anyhow::anyhow!(
            "{id} is not in the watch list"
        ))),
    }
}

/// The line above a video's history: where it stands now, so that the history of a video that
/// is gone, failing or no longer watched does not read as current.
fn standing(video: &WatchedVideo) -> String {
    let since = video
        .status_changed_at
        .as_deref()
        .map(|at| format!(" since {at}"))
        .unwrap_or_default();
    let status = match video.status.as_str() {
        "pending" => "not fetched yet".to_owned(),
        "ok" => format!("ok{since}"),
        "not_found" if video.active => format!(
            "gone{since}: onebound answers 2000 (not found); asked again after \
             retry.not_found_recheck"
        ),
        "not_found" => format!("gone{since}: onebound answered 2000 (not found)"),
        "failing" => match video.last_error_code.as_deref() {
            Some(code) => format!("failing{since}, last error {code}"),
            None => format!("failing{since}"),
        },
        other => format!("{other}{since}"),
    };
    let watched = if video.active {
        ""
    } else {
        "; removed from the watch list"
    };
    escape_controls(&format!("{}: {status}{watched}", video.video_id))
}

/// `history ID`.
pub(super) async fn history(store: &Store, id: &str, json: bool) -> Result<ExitCode, Failure> {
    let (id, video) = watched_video(store, id).await?;
    let versions = store.versions(&id).await.map_err(anyhow::Error::from)?;
    if json {
        return print_json(&versions);
    }
    outln!("{}", standing(&video))?;
    if versions.is_empty() {
        outln!("no snapshot yet")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = table(&[
        "version",
        "first seen",
        "last seen",
        "seen",
        "changed",
        "title",
    ]);
    for v in &versions {
        let changed: Vec<String> = serde_json::from_str(&v.changed_fields).unwrap_or_default();
        out.add_row(escaped(vec![
            v.version.to_string(),
            v.first_seen_at.clone(),
            v.last_seen_at.clone(),
            v.seen_count.to_string(),
            if v.version == 1 {
                "(first)".to_owned()
            } else {
                changed.join(", ")
            },
            truncate(or_dash(v.title.as_deref()), 50),
        ]));
    }
    outln!("{out}")?;
    Ok(ExitCode::SUCCESS)
}

/// One field's change between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Change {
    field: &'static str,
    before: Option<String>,
    after: Option<String>,
}

/// One version and what changed in it, for `history --diff`.
#[derive(Debug, Serialize)]
struct VersionDiff {
    version: i64,
    first_seen_at: String,
    last_seen_at: String,
    seen_count: i64,
    /// Empty for the first version.
    changes: Vec<Change>,
}

/// The content columns that differ between `before` and `after`, in column order.
fn changes(before: &VersionContent, after: &VersionContent) -> Vec<Change> {
    FIELD_NAMES
        .into_iter()
        .filter(|field| before.field(field) != after.field(field))
        .map(|field| Change {
            field,
            before: before.field(field).map(str::to_owned),
            after: after.field(field).map(str::to_owned),
        })
        .collect()
}

/// ANSI styles for the diff, or none at all.
struct Style {
    colour: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), so that a value sent by the API
/// cannot break the line or drive the terminal; bidirectional overrides too (`\u{202e}`), which
/// would show the text after them reversed.
pub(super) fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(
                c,
                '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            );
            if c.is_control() || bidi {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A table row with every cell's control characters escaped ([`escape_controls`]).
fn escaped(cells: Vec<String>) -> Vec<String> {
    cells.iter().map(|cell| escape_controls(cell)).collect()
}

/// The diff as text under `heading`: a heading per version, then `field: before → after` per
/// change.
fn render_diff(heading: &str, diffs: &[VersionDiff], style: &Style) -> String {
    let value = |v: &Option<String>| v.as_deref().map_or("(none)".to_owned(), escape_controls);
    let mut out = format!("{heading}\n");
    for diff in diffs {
        let times = if diff.seen_count == 1 {
            "time"
        } else {
            "times"
        };
        out.push_str(&style.paint(
            "1",
            &format!(
                "version {} · first seen {} · seen {} {times} (last {})",
                diff.version, diff.first_seen_at, diff.seen_count, diff.last_seen_at
            ),
        ));
        out.push('\n');
        if diff.version == 1 {
            out.push_str("  (first version)\n");
        } else if diff.changes.is_empty() {
            out.push_str("  (no column differs)\n");
        }
        for change in &diff.changes {
            out.push_str(&format!(
                "  {}: {} → {}\n",
                change.field,
                style.paint("31", &value(&change.before)),
                style.paint("32", &value(&change.after)),
            ));
        }
    }
    out
}

/// `history ID --diff`.
pub(super) async fn history_diff(store: &Store, id: &str, json: bool) -> Result<ExitCode, Failure> {
    let (id, video) = watched_video(store, id).await?;
    let versions = store
        .version_contents(&id)
        .await
        .map_err(anyhow::Error::from)?;
    let diffs: Vec<VersionDiff> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| VersionDiff {
            version: v.version,
            first_seen_at: v.first_seen_at.clone(),
            last_seen_at: v.last_seen_at.clone(),
            seen_count: v.seen_count,
            changes: match i.checked_sub(1) {
                Some(previous) => changes(&versions[previous], v),
                None => Vec::new(),
            },
        })
        .collect();
    if json {
        return print_json(&diffs);
    }
    if diffs.is_empty() {
        outln!("{}", standing(&video))?;
        outln!("no snapshot yet")?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style {
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    out(render_diff(&standing(&video), &diffs, &style))?;
    Ok(ExitCode::SUCCESS)
}

/// Days shown in the chart of calls per Beijing day, today included.
const CHART_DAYS: u64 = 14;

/// Width of the chart's bars, in terminal cells.
const BAR_WIDTH: usize = 30;

/// Where the forecast's passes per day come from.
#[derive(Debug, Serialize)]
struct ForecastReport {
    /// `schedule` (the cron of the settings) or `history` (scheduled passes of the last 24 hours).
    source: &'static str,
    cron: Option<String>,
    timezone: Option<String>,
    reserve: u64,
    #[serde(flatten)]
    forecast: Forecast,
}

/// The figures `quota` shows (and `quota --json` prints).
#[derive(Debug, Serialize)]
struct QuotaReport {
    quota_day: String,
    today: Option<u64>,
    max: Option<u64>,
    remaining: Option<u64>,
    percent_used: Option<f64>,
    expires_on: Option<String>,
    expires_in_days: Option<i64>,
    resets_at: String,
    resets_in_seconds: i64,
    observed_at: Option<String>,
    pause: Option<Pause>,
    /// The last 14 Beijing days, oldest first, today last.
    days: Vec<DayCalls>,
    forecast: ForecastReport,
    warnings: Vec<String>,
}

/// What the forecast knows of the settings.
struct ScheduleSource<'a> {
    cron: &'a str,
    timezone: chrono_tz::Tz,
    reserve: u64,
    not_found_recheck: std::time::Duration,
}

/// `quota`, with the forecast taken from the scheduled passes of the last 24 hours.
pub(super) async fn quota(store: &Store, json: bool) -> Result<ExitCode, Failure> {
    let report = quota_report(store, None, Utc::now()).await?;
    print_quota(&report, json)
}

/// `quota`, with the forecast taken from the settings' cron and reserve.
pub(super) async fn quota_with_schedule(
    store: &Store,
    settings: &Settings,
    json: bool,
) -> Result<ExitCode, Failure> {
    let cron = settings.cron()?;
    let source = ScheduleSource {
        cron: &cron,
        timezone: settings.timezone()?,
        reserve: settings.quota.reserve,
        not_found_recheck: settings.retry.not_found_recheck,
    };
    let report = quota_report(store, Some(source), Utc::now()).await?;
    print_quota(&report, json)
}

async fn quota_report(
    store: &Store,
    schedule: Option<ScheduleSource<'_>>,
    now: DateTime<Utc>,
) -> Result<QuotaReport, Failure> {
    let day = quota_day(now);
    let (today, max) = store.day_quota(day).await.map_err(anyhow::Error::from)?;
    let newest = store
        .newest_quota_sample()
        .await
        .map_err(anyhow::Error::from)?;
    let reset = next_quota_reset(now);
    // Before the first answer of a Beijing day, nothing has been counted yet.
    let today = today.or(newest.as_ref().map(|_| 0));
    let max = max.or_else(|| {
        newest
            .as_ref()
            .and_then(|s| s.calls_max)
            .and_then(|m| u64::try_from(m).ok())
    });
    let expires_on = newest.as_ref().and_then(|s| s.expires_on.clone());
    let expiry_date = expires_on
        .as_deref()
        .and_then(|d| d.parse::<NaiveDate>().ok());
    let expires_in_days = expiry_date.map(|d| forecast::days_left(d, day));

    // Shanghai has no daylight saving time: Beijing days are 24 hours long.
    let chart_start = reset - chrono::Duration::days(CHART_DAYS as i64);
    let found = store
        .calls_per_day(chart_start)
        .await
        .map_err(anyhow::Error::from)?;
    let days = (0..CHART_DAYS)
        .rev()
        .filter_map(|back| day.checked_sub_days(Days::new(back)))
        .map(|d| {
            let d = d.to_string();
            found
                .iter()
                .find(|f| f.day == d)
                .cloned()
                .unwrap_or(DayCalls {
                    day: d,
                    used: None,
                    max: None,
                    calls: 0,
                    charged: 0,
                })
        })
        .collect();

    let active_videos = store
        .active_video_count()
        .await
        .map_err(anyhow::Error::from)?;
    let not_found_videos = store
        .not_found_video_count()
        .await
        .map_err(anyhow::Error::from)?;
    let (source, passes_per_day, ticks) = match &schedule {
        Some(s) => {
            let span = chrono::Duration::days(i64::from(forecast::FORECAST_DAYS));
            let ahead =
                forecast::cron_ticks(s.cron, s.timezone, reset, reset + span).unwrap_or_default();
            let ticks = forecast::cron_ticks(s.cron, s.timezone, now, reset).unwrap_or_default();
            (
                "schedule",
                forecast::busiest_day_ticks(&ahead, reset),
                ticks,
            )
        }
        None => {
            let passes = store
                .scheduled_passes_since(now - chrono::Duration::days(1))
                .await
                .map_err(anyhow::Error::from)?;
            ("history", passes, forecast::even_ticks(now, reset, passes))
        }
    };
    let reserve = schedule.as_ref().map_or(0, |s| s.reserve);
    let forecast = forecast::forecast(&ForecastInput {
        now,
        active_videos,
        not_found_videos,
        not_found_recheck: schedule.as_ref().map(|s| s.not_found_recheck),
        passes_per_day,
        ticks_before_reset: &ticks,
        today,
        max,
        reserve,
    });
    let warnings = forecast::warnings(expiry_date, expires_in_days, &forecast);
    Ok(QuotaReport {
        quota_day: day.to_string(),
        today,
        max,
        remaining: max.zip(today).map(|(max, today)| max.saturating_sub(today)),
        percent_used: forecast::percent_used(today, max),
        expires_on,
        expires_in_days,
        resets_at: crate::store::timestamp(reset),
        resets_in_seconds: (reset - now).num_seconds(),
        observed_at: newest.as_ref().map(|s| s.observed_at.clone()),
        pause: store.active_pause(now).await.map_err(anyhow::Error::from)?,
        days,
        forecast: ForecastReport {
            source,
            cron: schedule.as_ref().map(|s| s.cron.to_owned()),
            timezone: schedule.as_ref().map(|s| s.timezone.name().to_owned()),
            reserve,
            forecast,
        },
        warnings,
    })
}

/// `at` as Beijing wall-clock time, for the forecast's lines.
fn beijing_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Shanghai)
        .format("%Y-%m-%d %H:%M Beijing")
        .to_string()
}

fn print_quota(report: &QuotaReport, json: bool) -> Result<ExitCode, Failure> {
    if json {
        return print_json(report);
    }
    out(render_quota(report))?;
    Ok(ExitCode::SUCCESS)
}

fn render_quota(report: &QuotaReport) -> String {
    let mut text = String::new();
    if report.observed_at.is_none() {
        text.push_str("no answer has reported the quota yet: it shows after the first call\n");
    }
    let figure = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    let mut out = table(&[]);
    out.add_row(escaped(vec![
        "quota day (Beijing)".to_owned(),
        report.quota_day.clone(),
    ]));
    out.add_row(escaped(vec![
        "calls today".to_owned(),
        figure(report.today),
    ]));
    out.add_row(escaped(vec!["daily max".to_owned(), figure(report.max)]));
    out.add_row(escaped(vec![
        "remaining".to_owned(),
        figure(report.remaining),
    ]));
    out.add_row(escaped(vec![
        "used".to_owned(),
        report
            .percent_used
            .map_or("-".to_owned(), |p| format!("{p:.1}%")),
    ]));
    out.add_row(escaped(vec![
        "key expires on".to_owned(),
        match (&report.expires_on, report.expires_in_days) {
            (Some(date), Some(days)) if days >= 0 => format!("{date} ({days} days left)"),
            (Some(date), Some(_)) => format!("{date} (expired)"),
            (Some(date), None) => date.clone(),
            (None, _) => "-".to_owned(),
        },
    ]));
    out.add_row(escaped(vec![
        "resets at".to_owned(),
        format!(
            "{} (in {})",
            report.resets_at,
            humantime::format_duration(Duration::from_secs(
                u64::try_from(report.resets_in_seconds).unwrap_or(0)
            ))
        ),
    ]));
    out.add_row(escaped(vec![
        "last reported".to_owned(),
        or_dash(report.observed_at.as_deref()).to_owned(),
    ]));
    if let Some(pause) = &report.pause {
        out.add_row(escaped(vec![
            "calls paused until".to_owned(),
            format!("{} ({})", pause.until, pause.message),
        ]));
    }
    text.push_str(&format!("{out}\n\n"));
    text.push_str(&render_days(&report.days));
    text.push('\n');
    text.push_str(&render_forecast(&report.forecast));
    for warning in &report.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text
}

/// The chart of calls per Beijing day: onebound's count as a bar (our charged calls where
/// onebound reported nothing), scaled to the busiest day.
fn render_days(days: &[DayCalls]) -> String {
    let shown = |d: &DayCalls| u64::try_from(d.used.unwrap_or(d.charged)).unwrap_or(0);
    let scale = days.iter().map(shown).max().unwrap_or(0);
    // Day (10) and bar, each followed by two spaces, then three right-aligned counts.
    let mut text = format!(
        "{:<w$}{:>8} {:>8} {:>8}\n",
        "calls per Beijing day",
        "onebound",
        "ours",
        "charged",
        w = 14 + BAR_WIDTH
    );
    for d in days {
        text.push_str(&format!(
            "{}  {}  {:>8} {:>8} {:>8}\n",
            d.day,
            forecast::bar(shown(d), scale, BAR_WIDTH),
            d.used.map_or("-".to_owned(), |n| n.to_string()),
            d.calls,
            d.charged
        ));
    }
    text
}

fn render_forecast(report: &ForecastReport) -> String {
    let f = &report.forecast;
    let source = match (&report.cron, &report.timezone) {
        (Some(cron), Some(tz)) => format!("schedule \"{cron}\" in {tz}"),
        _ => "the scheduled passes of the last 24 hours (no schedule given)".to_owned(),
    };
    let mut text = if f.calls_per_pass == f.active_videos {
        format!(
            "forecast from {source}: {} passes a day × {} active videos = {} calls a day\n",
            f.passes_per_day, f.active_videos, f.calls_per_day
        )
    } else {
        format!(
            "forecast from {source}: {} passes a day × {} videos + {} call(s) checking again {} \
             found gone (once per retry.not_found_recheck) = {} calls a day\n",
            f.passes_per_day,
            f.calls_per_pass,
            f.not_found_rechecks_per_day,
            f.active_videos - f.calls_per_pass,
            f.calls_per_day
        )
    };
    match (f.usable_per_day, f.covered) {
        (Some(usable), Some(covered)) => text.push_str(&format!(
            "  the daily max less the reserve ({}) allows {usable}: {}\n",
            report.reserve,
            if covered { "covered" } else { "NOT covered" }
        )),
        _ => text.push_str("  the daily max is not known yet\n"),
    }
    let left = match f.usable_left_today {
        Some(left) => format!("{left} usable calls left"),
        None => "usable calls left unknown".to_owned(),
    };
    text.push_str(&format!(
        "  today: {} passes left need {} calls; {left}; ",
        f.passes_left_today, f.calls_left_today
    ));
    text.push_str(&match (f.runs_out_today, f.runs_out_at) {
        (Some(true), Some(at)) => format!(
            "runs out at the pass of {} ({})\n",
            crate::store::timestamp(at),
            beijing_time(at)
        ),
        (Some(true), None) => "runs out today\n".to_owned(),
        (Some(false), _) => "enough until the reset\n".to_owned(),
        (None, _) => "cannot tell when it runs out\n".to_owned(),
    });
    text
}

#[derive(Debug, Serialize)]
struct FailureRow {
    code: String,
    meaning: String,
    charged: bool,
    count: i64,
    videos: i64,
    first_at: String,
    last_at: String,
}

/// `failures`.
pub(super) async fn failures(
    store: &Store,
    since: Duration,
    code: Option<&str>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let since_at = chrono::Duration::from_std(since)
        .ok()
        .and_then(|since| Utc::now().checked_sub_signed(since))
        .ok_or_else(|| {
            Failure::Usage(anyhow::anyhow!(
                "--since {} is too far back",
                humantime::format_duration(since)
            ))
        })?;
    let groups = store
        .failure_groups(since_at, code)
        .await
        .map_err(anyhow::Error::from)?;
    let rows: Vec<FailureRow> = groups
        .into_iter()
        .map(|g| FailureRow {
            meaning: describe_failure(&g.code),
            // As billed: an unusable `0000` answer was charged, whatever its key's name.
            charged: g.charged > 0,
            code: g.code,
            count: g.count,
            videos: g.videos,
            first_at: g.first_at,
            last_at: g.last_at,
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        outln!(
            "no failures in the last {}",
            humantime::format_duration(since)
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = table(&[
        "code", "meaning", "charged", "count", "videos", "first", "last",
    ]);
    for row in &rows {
        out.add_row(escaped(vec![
            row.code.clone(),
            row.meaning.clone(),
            if row.charged { "yes" } else { "no" }.to_owned(),
            row.count.to_string(),
            row.videos.to_string(),
            row.first_at.clone(),
            row.last_at.clone(),
        ]));
    }
    outln!("{out}")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(version: i64, changes: Vec<Change>) -> VersionDiff {
        VersionDiff {
            version,
            first_seen_at: "2026-11-29T10:00:00.000Z".to_owned(),
            last_seen_at: "2026-11-29T11:00:00.000Z".to_owned(),
            seen_count: 2,
            changes,
        }
    }

    fn video(status: &str, active: bool, last_error_code: Option<&str>) -> WatchedVideo {
        WatchedVideo {
            video_id: "7118694749548072205".to_owned(),
            label: None,
            active,
            status: status.to_owned(),
            status_changed_at: (status != "pending").then(|| "2026-11-29T10:00:00.000Z".to_owned()),
            versions: 1,
            last_changed_at: None,
            last_fetched_at: None,
            last_error_code: last_error_code.map(str::to_owned),
            title: None,
        }
    }

    #[test]
    fn a_history_says_where_the_video_stands_now() {
        let cases = [
            (video("pending", true, None), "not fetched yet"),
            (video("ok", true, None), "ok since 2026-11-29T10:00:00.000Z"),
            (
                video("not_found", true, Some("2000")),
                "gone since 2026-11-29T10:00:00.000Z: onebound answers 2000 (not found); \
                 asked again after retry.not_found_recheck",
            ),
            (
                video("failing", true, Some("5000")),
                "failing since 2026-11-29T10:00:00.000Z, last error 5000",
            ),
            (
                video("ok", false, None),
                "ok since 2026-11-29T10:00:00.000Z; removed from the watch list",
            ),
            (
                video("not_found", false, Some("2000")),
                "gone since 2026-11-29T10:00:00.000Z: onebound answered 2000 (not found); \
                 removed from the watch list",
            ),
        ];
        for (video, expected) in cases {
            assert_eq!(standing(&video), format!("7118694749548072205: {expected}"));
        }
    }

    #[test]
    fn the_diff_is_plain_or_coloured_and_never_passes_control_characters() {
        let heading = "7118694749548072205: ok since 2026-11-29T10:00:00.000Z";
        let diffs = [
            diff(1, Vec::new()),
            diff(
                2,
                vec![
                    Change {
                        field: "title",
                        before: Some("old\x1b[2J".to_owned()),
                        after: Some("new\nline".to_owned()),
                    },
                    Change {
                        field: "signature",
                        before: None,
                        after: Some("hi".to_owned()),
                    },
                ],
            ),
        ];
        let plain = render_diff(heading, &diffs, &Style { colour: false });
        assert_eq!(
            plain,
            "7118694749548072205: ok since 2026-11-29T10:00:00.000Z\n\
             version 1 · first seen 2026-11-29T10:00:00.000Z · seen 2 times (last 2026-11-29T11:00:00.000Z)\n\
             \x20 (first version)\n\
             version 2 · first seen 2026-11-29T10:00:00.000Z · seen 2 times (last 2026-11-29T11:00:00.000Z)\n\
             \x20 title: old\\u{1b}[2J → new\\nline\n\
             \x20 signature: (none) → hi\n"
        );
        let coloured = render_diff(heading, &diffs, &Style { colour: true });
        assert!(
            coloured.contains("  signature: \x1b[31m(none)\x1b[0m → \x1b[32mhi\x1b[0m\n"),
            "{coloured:?}"
        );
        // Two headings and two changes of two values, each painted on and off; the escape that
        // came in the title stays text.
        assert_eq!(
            coloured.matches('\x1b').count(),
            2 * 2 + 2 * 2 * 2,
            "{coloured:?}"
        );
    }
}
