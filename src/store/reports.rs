//! The queries behind the reports: `quota` (calls per Beijing day, the forecast's inputs),
//! `history --diff` (every version's content columns) and `export` (whole tables, page by page).
//!
//! All of them read through the read-only pool, so a report never holds up a pass.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, TypeInfo, ValueRef};

use super::{Store, StoreError, step, timestamp};
use crate::video_id::VideoId;

/// Calls on one Beijing day: onebound's count and ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DayCalls {
    /// The Beijing date (YYYY-MM-DD).
    pub day: String,
    /// onebound's count: the highest `calls_today` reported that day.
    pub used: Option<i64>,
    /// The highest `calls_max` reported that day.
    pub max: Option<i64>,
    /// Our requests that day (`fetches` rows that are not `skipped`).
    pub calls: i64,
    /// Of those, the answers onebound bills.
    pub charged: i64,
}

/// One version of a video with all its content columns, for `history --diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct VersionContent {
    pub version: i64,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub seen_count: i64,
    /// JSON array of the columns that differ from the previous version.
    pub changed_fields: String,
    pub title: Option<String>,
    pub nick: Option<String>,
    pub signature: Option<String>,
    pub detail_url: Option<String>,
    pub item_type: Option<String>,
    pub author_uid: Option<String>,
    pub short_id: Option<String>,
    pub video_url: Option<String>,
    pub video_url_raw: Option<String>,
    pub cover_url: Option<String>,
    pub music_title: Option<String>,
    pub music_nick: Option<String>,
    pub music_url: Option<String>,
    pub music_cover_url: Option<String>,
    /// JSON array of image URLs.
    pub item_imgs: String,
}

impl VersionContent {
    /// The value of a content column by its name (one of [`crate::content::FIELD_NAMES`]);
    /// `None` for an unknown name or a NULL value.
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "title" => self.title.as_deref(),
            "nick" => self.nick.as_deref(),
            "signature" => self.signature.as_deref(),
            "detail_url" => self.detail_url.as_deref(),
            "item_type" => self.item_type.as_deref(),
            "author_uid" => self.author_uid.as_deref(),
            "short_id" => self.short_id.as_deref(),
            "video_url" => self.video_url.as_deref(),
            "video_url_raw" => self.video_url_raw.as_deref(),
            "cover_url" => self.cover_url.as_deref(),
            "music_title" => self.music_title.as_deref(),
            "music_nick" => self.music_nick.as_deref(),
            "music_url" => self.music_url.as_deref(),
            "music_cover_url" => self.music_cover_url.as_deref(),
            "item_imgs" => Some(self.item_imgs.as_str()),
            _ => None,
        }
    }
}

/// A table `export` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportTable {
    /// `snapshots`, filtered by `first_seen_at` and `video_id`.
    Snapshots,
    /// `fetches`, filtered by `started_at` and `video_id`.
    Fetches,
    /// `quota_samples`, filtered by `observed_at` (the quota is the account's, not a video's).
    QuotaSamples,
}

impl ExportTable {
    /// The table's name in the database.
    pub fn name(self) -> &'static str {
        match self {
            ExportTable::Snapshots => "snapshots",
            ExportTable::Fetches => "fetches",
            ExportTable::QuotaSamples => "quota_samples",
        }
    }

    /// Whether rows belong to one video (so `--video` applies).
    pub fn has_video(self) -> bool {
        !matches!(self, ExportTable::QuotaSamples)
    }

    /// The column `--since` compares with.
    pub fn time_column(self) -> &'static str {
        match self {
            ExportTable::Snapshots => "first_seen_at",
            ExportTable::Fetches => "started_at",
            ExportTable::QuotaSamples => "observed_at",
        }
    }

    /// One page: ?1 after this id, ?2 up to this id, ?3 since (or NULL), [?4 video], limit.
    fn page_sql(self) -> &'static str {
        match self {
            ExportTable::Snapshots => {
                "SELECT * FROM snapshots WHERE id > ?1 AND id <= ?2 \
                 AND (?3 IS NULL OR first_seen_at >= ?3) AND (?4 IS NULL OR video_id = ?4) \
                 ORDER BY id LIMIT ?5"
            }
            ExportTable::Fetches => {
                "SELECT * FROM fetches WHERE id > ?1 AND id <= ?2 \
                 AND (?3 IS NULL OR started_at >= ?3) AND (?4 IS NULL OR video_id = ?4) \
                 ORDER BY id LIMIT ?5"
            }
            ExportTable::QuotaSamples => {
                "SELECT * FROM quota_samples WHERE id > ?1 AND id <= ?2 \
                 AND (?3 IS NULL OR observed_at >= ?3) \
                 ORDER BY id LIMIT ?4"
            }
        }
    }

    fn last_id_sql(self) -> &'static str {
        match self {
            ExportTable::Snapshots => "SELECT COALESCE(MAX(id), 0) FROM snapshots",
            ExportTable::Fetches => "SELECT COALESCE(MAX(id), 0) FROM fetches",
            ExportTable::QuotaSamples => "SELECT COALESCE(MAX(id), 0) FROM quota_samples",
        }
    }
}

/// Which rows `export` writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only rows from this instant on (by the table's time column).
    pub since: Option<DateTime<Utc>>,
    /// Only this video's rows (tables with a `video_id` only).
    pub video_id: Option<VideoId>,
}

/// One value of an exported row, as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One exported row: its id and every column's value, in the table's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub id: i64,
    pub cells: Vec<Cell>,
}

/// Reads a table page by page in id order, with keyset pagination: constant memory on any size.
///
/// Only rows that existed when the export started are read (ids up to the highest one then), so a
/// pass running meanwhile neither adds rows to the export nor makes it run forever.
pub struct ExportPages<'s> {
    store: &'s Store,
    table: ExportTable,
    since: Option<String>,
    video_id: Option<String>,
    after_id: i64,
    last_id: i64,
    page_size: u32,
    columns: Vec<String>,
    done: bool,
}

impl ExportPages<'_> {
    /// The table's columns, in order (also when it has no rows).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The next page of at most `page_size` rows; empty once every row was read.
    pub async fn next_page(&mut self) -> Result<Vec<ExportRow>, StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut query = sqlx::query(self.table.page_sql())
            .bind(self.after_id)
            .bind(self.last_id)
            .bind(self.since.as_deref());
        if self.table.has_video() {
            query = query.bind(self.video_id.as_deref());
        }
        let rows = query
            .bind(i64::from(self.page_size))
            .fetch_all(&self.store.reader)
            .await
            .map_err(step("reading rows to export"))?;
        let rows = rows
            .iter()
            .map(export_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(step("reading rows to export"))?;
        match rows.last() {
            Some(last) => self.after_id = last.id,
            None => self.done = true,
        }
        if rows.len() < self.page_size as usize {
            self.done = true;
        }
        Ok(rows)
    }
}

fn export_row(row: &SqliteRow) -> Result<ExportRow, sqlx::Error> {
    let mut cells = Vec::with_capacity(row.len());
    for index in 0..row.len() {
        let raw = row.try_get_raw(index)?;
        let cell = if raw.is_null() {
            Cell::Null
        } else {
            // The value's own storage class (SQLite is dynamically typed).
            let kind = raw.type_info().name().to_owned();
            match kind.as_str() {
                "INTEGER" | "BOOLEAN" => Cell::Integer(row.try_get_unchecked(index)?),
                "REAL" | "NUMERIC" => Cell::Real(row.try_get_unchecked(index)?),
                "BLOB" => Cell::Blob(row.try_get_unchecked(index)?),
                _ => Cell::Text(row.try_get_unchecked(index)?),
            }
        };
        cells.push(cell);
    }
    let id = row.try_get("id")?;
    Ok(ExportRow { id, cells })
}

impl Store {
    /// Calls per Beijing day from `from` (the UTC instant of a Beijing midnight) on, oldest first:
    /// onebound's count from `quota_samples`, ours from `fetches`. Days with neither are left out.
    pub async fn calls_per_day(&self, from: DateTime<Utc>) -> Result<Vec<DayCalls>, StoreError> {
        sqlx::query_as(
            "SELECT day, MAX(used) AS used, MAX(max) AS max, SUM(calls) AS calls, \
                    SUM(charged) AS charged \
             FROM (SELECT quota_day AS day, MAX(calls_today) AS used, MAX(calls_max) AS max, \
                          0 AS calls, 0 AS charged \
                   FROM quota_samples WHERE observed_at >= ?1 GROUP BY quota_day \
                   UNION ALL \
                   SELECT date(started_at, '+8 hours') AS day, NULL AS used, NULL AS max, \
                          COUNT(*) AS calls, COALESCE(SUM(charged), 0) AS charged \
                   FROM fetches WHERE started_at >= ?1 AND outcome <> 'skipped' GROUP BY 1) \
             GROUP BY day ORDER BY day",
        )
        .bind(timestamp(from))
        .fetch_all(&self.reader)
        .await
        .map_err(step("reading calls per day"))
    }

    /// How many videos the passes fetch: the active watch list.
    pub async fn active_video_count(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM videos WHERE active = 1")
            .fetch_one(&self.reader)
            .await
            .map_err(step("counting the watch list"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Active videos found gone (`not_found`), which passes call only now and then.
    pub async fn not_found_video_count(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM videos WHERE active = 1 AND status = 'not_found'",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(step("counting the watch list"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Scheduled passes (cron ticks) that started at or after `since`.
    pub async fn scheduled_passes_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM passes WHERE trigger = 'schedule' AND started_at >= ?",
        )
        .bind(timestamp(since))
        .fetch_one(&self.reader)
        .await
        .map_err(step("counting passes"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Every version of one video with all its content columns, oldest first.
    pub async fn version_contents(
        &self,
        video_id: &VideoId,
    ) -> Result<Vec<VersionContent>, StoreError> {
        sqlx::query_as(
            "SELECT version, first_seen_at, last_seen_at, seen_count, changed_fields, title, nick, \
                    signature, detail_url, item_type, author_uid, short_id, video_url, \
                    video_url_raw, cover_url, music_title, music_nick, music_url, \
                    music_cover_url, item_imgs \
             FROM snapshots WHERE video_id = ? ORDER BY version",
        )
        .bind(video_id.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(step("reading a video's versions"))
    }

    /// Starts reading `table` for `export`, `page_size` rows at a time.
    pub async fn export_pages(
        &self,
        table: ExportTable,
        filter: &ExportFilter,
        page_size: u32,
    ) -> Result<ExportPages<'_>, StoreError> {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(table.name())
                .fetch_all(&self.reader)
                .await
                .map_err(step("reading a table's columns"))?;
        let last_id: i64 = sqlx::query_scalar(table.last_id_sql())
            .fetch_one(&self.reader)
            .await
            .map_err(step("reading a table's size"))?;
        Ok(ExportPages {
            store: self,
            table,
            since: filter.since.map(timestamp),
            video_id: if table.has_video() {
                filter.video_id.as_ref().map(|id| id.as_str().to_owned())
            } else {
                None
            },
            after_id: 0,
            last_id,
            page_size: page_size.max(1),
            columns,
            done: false,
        })
    }
}
