//! The read-only reports: `watch list`, `history`, `quota`, `failures`. Tables or `--json` on stdout.

use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use super::{Failure, parse_ids};
use crate::attempt::describe_failure;
use crate::error_code;
use crate::quota::{next_quota_reset, quota_day};
use crate::store::{Pause, Store};

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
    println!("{text}");
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
        println!("the watch list is empty: add videos with `douyin-watch watch add ID|URL`");
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
        out.add_row(vec![
            v.video_id.clone(),
            or_dash(v.label.as_deref()).to_owned(),
            if v.active { "yes" } else { "no" }.to_owned(),
            format!("{} ({})", v.status, or_dash(v.status_changed_at.as_deref())),
            v.versions.to_string(),
            or_dash(v.last_changed_at.as_deref()).to_owned(),
            or_dash(v.last_fetched_at.as_deref()).to_owned(),
            or_dash(v.last_error_code.as_deref()).to_owned(),
            truncate(or_dash(v.title.as_deref()), 40),
        ]);
    }
    println!("{out}");
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

/// `history ID`.
pub(super) async fn history(store: &Store, id: &str, json: bool) -> Result<ExitCode, Failure> {
    let id = parse_ids(&[id.to_owned()])?.remove(0);
    if !store
        .unknown_video_ids(std::slice::from_ref(&id))
        .await
        .map_err(anyhow::Error::from)?
        .is_empty()
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "{id} is not in the watch list"
        )));
    }
    let versions = store.versions(&id).await.map_err(anyhow::Error::from)?;
    if json {
        return print_json(&versions);
    }
    if versions.is_empty() {
        println!("{id}: no snapshot yet");
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
        out.add_row(vec![
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
        ]);
    }
    println!("{id}");
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The figures `quota` shows.
#[derive(Debug, Serialize)]
struct QuotaReport {
    quota_day: String,
    today: Option<u64>,
    max: Option<u64>,
    remaining: Option<u64>,
    expires_on: Option<String>,
    resets_at: String,
    resets_in_seconds: i64,
    observed_at: Option<String>,
    pause: Option<Pause>,
}

/// `quota`.
pub(super) async fn quota(store: &Store, json: bool) -> Result<ExitCode, Failure> {
    let now = Utc::now();
    let day = quota_day(now);
    let (today, max) = store.day_quota(day).await.map_err(anyhow::Error::from)?;
    let newest = store
        .newest_quota_sample()
        .await
        .map_err(anyhow::Error::from)?;
    let reset = next_quota_reset(now);
    let report = QuotaReport {
        quota_day: day.to_string(),
        // Before the first answer of a Beijing day, nothing has been counted yet.
        today: today.or(newest.as_ref().map(|_| 0)),
        max: max.or_else(|| {
            newest
                .as_ref()
                .and_then(|s| s.calls_max)
                .and_then(|m| u64::try_from(m).ok())
        }),
        remaining: None,
        expires_on: newest.as_ref().and_then(|s| s.expires_on.clone()),
        resets_at: crate::store::timestamp(reset),
        resets_in_seconds: (reset - now).num_seconds(),
        observed_at: newest.as_ref().map(|s| s.observed_at.clone()),
        pause: store.active_pause(now).await.map_err(anyhow::Error::from)?,
    };
    let report = QuotaReport {
        remaining: report
            .max
            .zip(report.today)
            .map(|(max, today)| max.saturating_sub(today)),
        ..report
    };
    if json {
        return print_json(&report);
    }
    if report.observed_at.is_none() {
        println!("no answer has reported the quota yet: it shows after the first call");
    }
    let figure = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    let mut out = table(&[]);
    out.add_row(vec![
        "quota day (Beijing)".to_owned(),
        report.quota_day.clone(),
    ]);
    out.add_row(vec!["calls today".to_owned(), figure(report.today)]);
    out.add_row(vec!["daily max".to_owned(), figure(report.max)]);
    out.add_row(vec!["remaining".to_owned(), figure(report.remaining)]);
    out.add_row(vec![
        "key expires on".to_owned(),
        or_dash(report.expires_on.as_deref()).to_owned(),
    ]);
    out.add_row(vec![
        "resets at".to_owned(),
        format!(
            "{} (in {})",
            report.resets_at,
            humantime::format_duration(Duration::from_secs(
                u64::try_from(report.resets_in_seconds).unwrap_or(0)
            ))
        ),
    ]);
    out.add_row(vec![
        "last reported".to_owned(),
        or_dash(report.observed_at.as_deref()).to_owned(),
    ]);
    if let Some(pause) = &report.pause {
        out.add_row(vec![
            "calls paused until".to_owned(),
            format!("{} ({})", pause.until, pause.message),
        ]);
    }
    println!("{out}");
    Ok(ExitCode::SUCCESS)
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
    let since_at = Utc::now() - chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX);
    let groups = store
        .failure_groups(since_at, code)
        .await
        .map_err(anyhow::Error::from)?;
    let rows: Vec<FailureRow> = groups
        .into_iter()
        .map(|g| FailureRow {
            meaning: describe_failure(&g.code),
            charged: error_code::is_charged(&g.code),
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
        println!(
            "no failures in the last {}",
            humantime::format_duration(since)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = table(&[
        "code", "meaning", "charged", "count", "videos", "first", "last",
    ]);
    for row in &rows {
        out.add_row(vec![
            row.code.clone(),
            row.meaning.clone(),
            if row.charged { "yes" } else { "no" }.to_owned(),
            row.count.to_string(),
            row.videos.to_string(),
            row.first_at.clone(),
            row.last_at.clone(),
        ]);
    }
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
