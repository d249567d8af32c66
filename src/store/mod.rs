//! The SQLite store: every SQL statement of douyin-watch lives here.
//!
//! Writes go through one connection (`writer`) and open their transactions with `BEGIN IMMEDIATE`,
//! so concurrent writers wait on the busy timeout instead of failing with `SQLITE_BUSY_SNAPSHOT`.
//! Reads use a separate small pool, so a long query never holds up a pass. No transaction is ever
//! held across an HTTP call: a fetch's rows are written together after its answer arrived.

mod reports;
pub use reports::*;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};

use crate::api_info::ApiInfo;
use crate::attempt::Outcome;
use crate::content::Content;
use crate::quota::quota_day;
use crate::video_id::VideoId;

/// Longest `api_info` text stored; real ones are ~60 characters, a hostile one could be megabytes.
const MAX_STORED_API_INFO_CHARS: usize = 1024;

/// How long a statement waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A storage failure, with the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    /// The database's folder could not be created.
    #[error("cannot create the database folder {path}: {source}")]
    CreateFolder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer douyin-watch; it is left untouched.
    #[error(
        "the database {path} has schema version {found}, newer than this douyin-watch knows ({known}); upgrade douyin-watch instead of using this version on it"
    )]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    /// A migration failed.
    #[error("cannot migrate the database {path}: {source}")]
    Migrate {
        path: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("database error while {step}: {source}")]
    Query {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// Wraps an sqlx error with the step it happened in.
fn step(step: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { step, source }
}

/// A timestamp as stored: RFC 3339 UTC with milliseconds, so text order is time order.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a stored timestamp back.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The database: a single writer connection and a small pool of readers.
#[derive(Clone)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
}

/// What a `watch add` batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct AddedVideos {
    pub added: Vec<String>,
    pub reactivated: Vec<String>,
    pub already_watched: Vec<String>,
}

/// What a `watch remove` batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedVideos {
    pub removed: Vec<String>,
    pub not_watched: Vec<String>,
}

/// One row of `watch list`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WatchedVideo {
    pub video_id: String,
    pub label: Option<String>,
    pub active: bool,
    pub status: String,
    pub status_changed_at: Option<String>,
    pub versions: i64,
    pub last_changed_at: Option<String>,
    pub last_fetched_at: Option<String>,
    pub last_error_code: Option<String>,
    pub title: Option<String>,
}

/// What an attempt means for the video's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoStatus {
    /// A snapshot was stored.
    Ok,
    /// onebound answered 2000: the video is gone or hidden.
    NotFound,
    /// The attempt failed; the status becomes `failing` unless it is `not_found`.
    Failing,
    /// Nothing was called (`skipped`): the row stays as it is.
    Untouched,
}

/// The snapshot part of a successful attempt.
#[derive(Debug)]
pub struct SnapshotInput<'a> {
    pub content: &'a Content,
    pub content_hash: &'a str,
    pub raw: &'a str,
}

/// The `api_info` part of an answer.
#[derive(Debug)]
pub struct QuotaInput<'a> {
    pub api_info: &'a str,
    pub parsed: Option<&'a ApiInfo>,
    pub server_time: Option<&'a str>,
}

/// Everything one HTTP attempt produced, written in one transaction.
#[derive(Debug)]
pub struct AttemptRecord<'a> {
    pub pass_id: Option<i64>,
    pub video_id: &'a str,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub attempt: u32,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub error_code: Option<&'a str>,
    pub error: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    pub charged: bool,
    pub request_id: Option<&'a str>,
    pub snapshot: Option<SnapshotInput<'a>>,
    pub quota: Option<QuotaInput<'a>>,
    pub video_status: VideoStatus,
}

/// What storing a successful attempt did to the video's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOutcome {
    pub snapshot_id: i64,
    pub version: i64,
    /// True when this fetch created the version; false when it saw the latest one again.
    pub is_new_version: bool,
    pub changed_fields: Vec<&'static str>,
}

/// The rows an attempt wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttempt {
    pub fetch_id: i64,
    pub snapshot: Option<SnapshotOutcome>,
    /// True when this attempt changed the video's status to `not_found`.
    pub became_not_found: bool,
}

/// A pass's totals, stored in `passes` when it ends.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PassTotals {
    pub videos: u64,
    pub fetched_ok: u64,
    pub not_found: u64,
    pub failed: u64,
    pub skipped: u64,
    pub new_versions: u64,
    pub calls: u64,
    pub charged_calls: u64,
    pub stopped_by: Option<String>,
}

/// One `quota_samples` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct QuotaSample {
    pub observed_at: String,
    pub quota_day: String,
    pub server_time: Option<String>,
    pub calls_today: Option<i64>,
    pub calls_max: Option<i64>,
    pub calls_total: Option<i64>,
    pub expires_on: Option<String>,
    pub api_info: String,
}

/// A period with no calls, from `pauses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Pause {
    pub created_at: String,
    pub until: String,
    pub cause: String,
    pub error_code: Option<String>,
    pub message: String,
}

/// One version of a video, for `history`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Version {
    pub version: i64,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub seen_count: i64,
    pub content_hash: String,
    pub title: Option<String>,
    pub nick: Option<String>,
    #[serde(serialize_with = "serialize_json_text")]
    pub changed_fields: String,
}

fn serialize_json_text<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
    value.serialize(serializer)
}

/// Rows deleted by [`Store::prune`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub fetches: u64,
    pub quota_samples: u64,
}

/// The state `/metrics` reports as gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaugeFigures {
    pub today: Option<u64>,
    pub max: Option<u64>,
    pub expires_on: Option<NaiveDate>,
    /// Active videos per status, every status listed (zero included).
    pub videos_by_status: Vec<(String, i64)>,
}

/// Failed attempts grouped by code, for `failures`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FailureGroup {
    pub code: String,
    pub count: i64,
    pub videos: i64,
    pub first_at: String,
    pub last_at: String,
    pub charged: i64,
    pub outcome: String,
}

impl Store {
    /// Opens (creating if missing) the database and applies pending migrations.
    pub async fn open(options: SqliteConnectOptions) -> Result<Store, StoreError> {
        let path = options.get_filename().display().to_string();
        if let Some(folder) = options.get_filename().parent()
            && !folder.as_os_str().is_empty()
        {
            std::fs::create_dir_all(folder).map_err(|source| StoreError::CreateFolder {
                path: folder.display().to_string(),
                source,
            })?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        refuse_newer_schema(&writer, &path).await?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.clone(),
                source,
            })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(open_error)?;
        Ok(Store { writer, reader })
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Adds ids to the watch list in one transaction; re-activates removed ones.
    pub async fn add_videos(
        &self,
        ids: &[VideoId],
        label: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<AddedVideos, StoreError> {
        let now = timestamp(now);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(step("starting the watch-list change"))?;
        let mut result = AddedVideos::default();
        for id in ids {
            let existing: Option<bool> =
                sqlx::query_scalar("SELECT active FROM videos WHERE video_id = ?")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(step("reading the watch list"))?;
            match existing {
                None => {
                    sqlx::query(
                        "INSERT INTO videos (video_id, label, active, added_at, status_changed_at) \
                         VALUES (?, ?, 1, ?, ?)",
                    )
                    .bind(id.as_str())
                    .bind(label)
                    .bind(&now)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await
                    .map_err(step("adding a video"))?;
                    result.added.push(id.to_string());
                }
                Some(false) => {
                    sqlx::query(
                        "UPDATE videos SET active = 1, removed_at = NULL, label = COALESCE(?, label) \
                         WHERE video_id = ?",
                    )
                    .bind(label)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(step("re-activating a video"))?;
                    result.reactivated.push(id.to_string());
                }
                Some(true) => {
                    if label.is_some() {
                        sqlx::query("UPDATE videos SET label = ? WHERE video_id = ?")
                            .bind(label)
                            .bind(id.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(step("labelling a video"))?;
                    }
                    result.already_watched.push(id.to_string());
                }
            }
        }
        tx.commit()
            .await
            .map_err(step("saving the watch-list change"))?;
        Ok(result)
    }

    /// Deactivates ids; their history stays.
    pub async fn remove_videos(
        &self,
        ids: &[VideoId],
        now: DateTime<Utc>,
    ) -> Result<RemovedVideos, StoreError> {
        let now = timestamp(now);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(step("starting the watch-list change"))?;
        let mut result = RemovedVideos::default();
        for id in ids {
            let changed = sqlx::query(
                "UPDATE videos SET active = 0, removed_at = ? WHERE video_id = ? AND active = 1",
            )
            .bind(&now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(step("removing a video"))?
            .rows_affected();
            if changed == 1 {
                result.removed.push(id.to_string());
            } else {
                result.not_watched.push(id.to_string());
            }
        }
        tx.commit()
            .await
            .map_err(step("saving the watch-list change"))?;
        Ok(result)
    }

    /// Every video ever added, active first, with its version count and latest title.
    pub async fn watched_videos(&self) -> Result<Vec<WatchedVideo>, StoreError> {
        sqlx::query_as(
            "SELECT v.video_id, v.label, v.active, v.status, v.status_changed_at, \
                    COALESCE(l.version, 0) AS versions, l.first_seen_at AS last_changed_at, \
                    v.last_fetched_at, v.last_error_code, l.title \
             FROM videos AS v LEFT JOIN latest_snapshots AS l ON l.video_id = v.video_id \
             ORDER BY v.active DESC, v.added_at, v.video_id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(step("listing the watch list"))
    }

    /// Active video ids, the longest-unfetched first (never fetched before all others).
    pub async fn due_video_ids(&self) -> Result<Vec<VideoId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT video_id FROM videos WHERE active = 1 \
             ORDER BY last_fetched_at IS NOT NULL, last_fetched_at, video_id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(step("reading the watch list"))?;
        Ok(ids
            .iter()
            .filter_map(|id| VideoId::parse(id).ok())
            .collect())
    }

    /// Which of `ids` are not in the watch list at all (active or removed).
    pub async fn unknown_video_ids(&self, ids: &[VideoId]) -> Result<Vec<VideoId>, StoreError> {
        let mut unknown = Vec::new();
        for id in ids {
            let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM videos WHERE video_id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(step("reading the watch list"))?;
            if found.is_none() {
                unknown.push(id.clone());
            }
        }
        Ok(unknown)
    }

    /// Records the start of a pass and returns its id.
    pub async fn begin_pass(
        &self,
        trigger: &str,
        videos: u64,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO passes (trigger, started_at, videos) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(trigger)
        .bind(timestamp(now))
        .bind(to_i64(videos))
        .fetch_one(&self.writer)
        .await
        .map_err(step("recording the start of a pass"))
    }

    /// Stores a pass's totals when it ends.
    pub async fn finish_pass(
        &self,
        pass_id: i64,
        totals: &PassTotals,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE passes SET finished_at = ?, fetched_ok = ?, not_found = ?, failed = ?, \
             skipped = ?, new_versions = ?, calls = ?, charged_calls = ?, stopped_by = ? WHERE id = ?",
        )
        .bind(timestamp(now))
        .bind(to_i64(totals.fetched_ok))
        .bind(to_i64(totals.not_found))
        .bind(to_i64(totals.failed))
        .bind(to_i64(totals.skipped))
        .bind(to_i64(totals.new_versions))
        .bind(to_i64(totals.calls))
        .bind(to_i64(totals.charged_calls))
        .bind(totals.stopped_by.as_deref())
        .bind(pass_id)
        .execute(&self.writer)
        .await
        .map_err(step("recording the end of a pass"))?;
        Ok(())
    }

    /// Writes everything one attempt produced — snapshot, fetch row, quota sample, video status —
    /// in one transaction: after a crash either all of it is there or none.
    pub async fn record_attempt(
        &self,
        record: &AttemptRecord<'_>,
    ) -> Result<StoredAttempt, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(step("starting to store a fetch"))?;
        let finished_at = timestamp(record.finished_at);
        let snapshot = match &record.snapshot {
            Some(input) => Some(
                store_snapshot(&mut tx, record.video_id, input, &finished_at)
                    .await
                    .map_err(step("storing a snapshot"))?,
            ),
            None => None,
        };
        let fetch_id: i64 = sqlx::query_scalar(
            "INSERT INTO fetches (pass_id, video_id, started_at, finished_at, attempt, outcome, \
             http_status, error_code, error, reason, message, charged, request_id, snapshot_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(record.pass_id)
        .bind(record.video_id)
        .bind(timestamp(record.started_at))
        .bind(&finished_at)
        .bind(i64::from(record.attempt))
        .bind(record.outcome.as_str())
        .bind(record.http_status.map(i64::from))
        .bind(record.error_code)
        .bind(record.error)
        .bind(record.reason)
        .bind(record.message)
        .bind(record.charged)
        .bind(record.request_id)
        .bind(snapshot.as_ref().map(|s| s.snapshot_id))
        .fetch_one(&mut *tx)
        .await
        .map_err(step("storing a fetch"))?;
        if let Some(quota) = &record.quota {
            insert_quota_sample(&mut tx, fetch_id, record.finished_at, quota)
                .await
                .map_err(step("storing a quota sample"))?;
        }
        let became_not_found = update_video(&mut tx, record, &finished_at)
            .await
            .map_err(step("updating a video's status"))?;
        tx.commit().await.map_err(step("committing a fetch"))?;
        Ok(StoredAttempt {
            fetch_id,
            snapshot,
            became_not_found,
        })
    }

    /// The highest `today` and the latest `max` reported on a Beijing day, as far as answers told.
    pub async fn day_quota(
        &self,
        day: NaiveDate,
    ) -> Result<(Option<u64>, Option<u64>), StoreError> {
        let row = sqlx::query(
            "SELECT MAX(calls_today) AS today, \
                    (SELECT calls_max FROM quota_samples WHERE quota_day = ?1 AND calls_max IS NOT NULL \
                     ORDER BY id DESC LIMIT 1) AS max \
             FROM quota_samples WHERE quota_day = ?1",
        )
        .bind(day.to_string())
        .fetch_one(&self.reader)
        .await
        .map_err(step("reading the quota"))?;
        let figure = |name: &str| -> Result<Option<u64>, StoreError> {
            let value: Option<i64> = row.try_get(name).map_err(step("reading the quota"))?;
            Ok(value.and_then(|v| u64::try_from(v).ok()))
        };
        Ok((figure("today")?, figure("max")?))
    }

    /// The latest quota sample of any day.
    pub async fn newest_quota_sample(&self) -> Result<Option<QuotaSample>, StoreError> {
        sqlx::query_as(
            "SELECT observed_at, quota_day, server_time, calls_today, calls_max, calls_total, \
                    expires_on, api_info \
             FROM quota_samples ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await
        .map_err(step("reading the quota"))
    }

    /// Records a period without calls.
    pub async fn insert_pause(&self, pause: &Pause) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pauses (created_at, until, cause, error_code, message) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&pause.created_at)
        .bind(&pause.until)
        .bind(&pause.cause)
        .bind(pause.error_code.as_deref())
        .bind(&pause.message)
        .execute(&self.writer)
        .await
        .map_err(step("recording a pause"))?;
        Ok(())
    }

    /// Account-error pauses recorded since the last successful fetch (for their backoff).
    pub async fn account_pauses_since_last_success(&self) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pauses WHERE cause = 'account_error' AND created_at > \
             COALESCE((SELECT MAX(finished_at) FROM fetches WHERE outcome = 'ok'), '')",
        )
        .fetch_one(&self.writer)
        .await
        .map_err(step("reading pauses"))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// The pause in force at `now`, the one lasting longest if several are.
    pub async fn active_pause(&self, now: DateTime<Utc>) -> Result<Option<Pause>, StoreError> {
        sqlx::query_as(
            "SELECT created_at, until, cause, error_code, message FROM pauses \
             WHERE until > ? ORDER BY until DESC LIMIT 1",
        )
        .bind(timestamp(now))
        .fetch_optional(&self.reader)
        .await
        .map_err(step("reading pauses"))
    }

    /// All versions of one video, oldest first.
    pub async fn versions(&self, video_id: &VideoId) -> Result<Vec<Version>, StoreError> {
        sqlx::query_as(
            "SELECT version, first_seen_at, last_seen_at, seen_count, content_hash, title, nick, \
                    changed_fields \
             FROM snapshots WHERE video_id = ? ORDER BY version",
        )
        .bind(video_id.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(step("reading a video's history"))
    }

    /// Failed attempts since `since`, grouped by error code (or failure key), most frequent first.
    pub async fn failure_groups(
        &self,
        since: DateTime<Utc>,
        code: Option<&str>,
    ) -> Result<Vec<FailureGroup>, StoreError> {
        sqlx::query_as(
            "SELECT COALESCE(error_code, error, outcome) AS code, COUNT(*) AS count, \
                    COUNT(DISTINCT video_id) AS videos, MIN(started_at) AS first_at, \
                    MAX(started_at) AS last_at, SUM(charged) AS charged, MIN(outcome) AS outcome \
             FROM failures WHERE started_at >= ? \
             GROUP BY 1 HAVING ?2 IS NULL OR code = ?2 ORDER BY count DESC, code",
        )
        .bind(timestamp(since))
        .bind(code)
        .fetch_all(&self.reader)
        .await
        .map_err(step("reading failures"))
    }

    /// When the last pass finished (completed or stopped by the money rules), if any did.
    pub async fn last_completed_pass(&self) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT MAX(finished_at) FROM passes")
            .fetch_one(&self.reader)
            .await
            .map_err(step("reading passes"))
    }

    /// The figures behind the state gauges of `/metrics`.
    pub async fn gauge_figures(&self, now: DateTime<Utc>) -> Result<GaugeFigures, StoreError> {
        let (today, max) = self.day_quota(quota_day(now)).await?;
        let expires_on: Option<String> = sqlx::query_scalar(
            "SELECT expires_on FROM quota_samples WHERE expires_on IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await
        .map_err(step("reading the quota"))?;
        let rows = sqlx::query(
            "SELECT s.status, COUNT(v.video_id) AS videos \
             FROM (SELECT 'pending' AS status UNION ALL SELECT 'ok' UNION ALL SELECT 'not_found' \
                   UNION ALL SELECT 'failing') AS s \
             LEFT JOIN videos AS v ON v.status = s.status AND v.active = 1 GROUP BY s.status",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(step("counting videos"))?;
        let mut videos_by_status = Vec::with_capacity(rows.len());
        for row in rows {
            let status: String = row.try_get("status").map_err(step("counting videos"))?;
            let count: i64 = row.try_get("videos").map_err(step("counting videos"))?;
            videos_by_status.push((status, count));
        }
        Ok(GaugeFigures {
            today,
            max,
            expires_on: expires_on.and_then(|d| d.parse().ok()),
            videos_by_status,
        })
    }

    /// Deletes call-log rows older than the cutoffs, in small batches so a pass is never held up
    /// for long. A fetch's quota sample goes with it. Snapshots are never deleted.
    pub async fn prune(
        &self,
        fetches_before: Option<DateTime<Utc>>,
        quota_samples_before: Option<DateTime<Utc>>,
    ) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        if let Some(before) = quota_samples_before {
            pruned.quota_samples += self
                .delete_in_batches(
                    "DELETE FROM quota_samples WHERE id IN \
                     (SELECT id FROM quota_samples WHERE observed_at < ? LIMIT 2000)",
                    &timestamp(before),
                )
                .await?;
        }
        if let Some(before) = fetches_before {
            pruned.quota_samples += self
                .delete_in_batches(
                    "DELETE FROM quota_samples WHERE id IN \
                     (SELECT q.id FROM quota_samples AS q JOIN fetches AS f ON f.id = q.fetch_id \
                      WHERE f.started_at < ? LIMIT 2000)",
                    &timestamp(before),
                )
                .await?;
            pruned.fetches += self
                .delete_in_batches(
                    "DELETE FROM fetches WHERE id IN \
                     (SELECT id FROM fetches WHERE started_at < ? LIMIT 2000)",
                    &timestamp(before),
                )
                .await?;
        }
        Ok(pruned)
    }

    async fn delete_in_batches(&self, sql: &'static str, before: &str) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted = sqlx::query(sql)
                .bind(before)
                .execute(&self.writer)
                .await
                .map_err(step("pruning old rows"))?
                .rows_affected();
            total += deleted;
            if deleted == 0 {
                return Ok(total);
            }
            // Let a pass's writes in between batches.
            tokio::task::yield_now().await;
        }
    }

    /// Runs `PRAGMA integrity_check` and returns its verdict (`"ok"` when sound).
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.reader)
            .await
            .map_err(step("checking integrity"))
    }
}

/// `text` cut to at most `max` characters (on a character boundary).
fn cap_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn refuse_newer_schema(pool: &SqlitePool, path: &str) -> Result<(), StoreError> {
    let has_table: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await
    .map_err(step("reading the schema version"))?;
    if has_table.is_none() {
        return Ok(());
    }
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map_err(step("reading the schema version"))?;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    match found {
        Some(found) if found > known => Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            known,
        }),
        _ => Ok(()),
    }
}

async fn store_snapshot(
    tx: &mut SqliteConnection,
    video_id: &str,
    input: &SnapshotInput<'_>,
    seen_at: &str,
) -> Result<SnapshotOutcome, sqlx::Error> {
    let latest = sqlx::query(
        "SELECT id, version, content_hash FROM snapshots WHERE video_id = ? \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(video_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (previous_id, previous_version) = match &latest {
        Some(row) => {
            let id: i64 = row.try_get("id")?;
            let version: i64 = row.try_get("version")?;
            let hash: String = row.try_get("content_hash")?;
            if hash == input.content_hash {
                sqlx::query(
                    "UPDATE snapshots SET last_seen_at = ?, seen_count = seen_count + 1 WHERE id = ?",
                )
                .bind(seen_at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                return Ok(SnapshotOutcome {
                    snapshot_id: id,
                    version,
                    is_new_version: false,
                    changed_fields: Vec::new(),
                });
            }
            (Some(id), version)
        }
        None => (None, 0),
    };
    let changed_fields = match previous_id {
        Some(id) => input.content.changed_fields(&load_content(tx, id).await?),
        None => Vec::new(),
    };
    let content = input.content;
    let version = previous_version + 1;
    let snapshot_id: i64 = sqlx::query_scalar(
        "INSERT INTO snapshots (video_id, version, content_hash, first_seen_at, last_seen_at, \
         seen_count, title, nick, signature, detail_url, item_type, author_uid, short_id, \
         video_url, video_url_raw, cover_url, music_title, music_nick, music_url, music_cover_url, \
         item_imgs, raw, changed_fields) \
         VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(video_id)
    .bind(version)
    .bind(input.content_hash)
    .bind(seen_at)
    .bind(seen_at)
    .bind(content.title.as_deref())
    .bind(content.nick.as_deref())
    .bind(content.signature.as_deref())
    .bind(content.detail_url.as_deref())
    .bind(content.item_type.as_deref())
    .bind(content.author_uid.as_deref())
    .bind(content.short_id.as_deref())
    .bind(content.video_url.as_deref())
    .bind(content.video_url_raw.as_deref())
    .bind(content.cover_url.as_deref())
    .bind(content.music_title.as_deref())
    .bind(content.music_nick.as_deref())
    .bind(content.music_url.as_deref())
    .bind(content.music_cover_url.as_deref())
    .bind(json_array(&content.item_imgs))
    .bind(input.raw)
    .bind(json_array(&changed_fields))
    .fetch_one(&mut *tx)
    .await?;
    Ok(SnapshotOutcome {
        snapshot_id,
        version,
        is_new_version: true,
        changed_fields,
    })
}

fn json_array<T: AsRef<str>>(items: &[T]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned())
}

/// Reads a stored version back into a `Content`, to diff it against a new one.
async fn load_content(tx: &mut SqliteConnection, snapshot_id: i64) -> Result<Content, sqlx::Error> {
    let row = sqlx::query(
        "SELECT title, nick, signature, detail_url, item_type, author_uid, short_id, video_url, \
         video_url_raw, cover_url, music_title, music_nick, music_url, music_cover_url, item_imgs \
         FROM snapshots WHERE id = ?",
    )
    .bind(snapshot_id)
    .fetch_one(&mut *tx)
    .await?;
    let item_imgs: String = row.try_get("item_imgs")?;
    Ok(Content {
        title: row.try_get("title")?,
        nick: row.try_get("nick")?,
        signature: row.try_get("signature")?,
        detail_url: row.try_get("detail_url")?,
        item_type: row.try_get("item_type")?,
        author_uid: row.try_get("author_uid")?,
        short_id: row.try_get("short_id")?,
        video_url: row.try_get("video_url")?,
        video_url_raw: row.try_get("video_url_raw")?,
        cover_url: row.try_get("cover_url")?,
        music_title: row.try_get("music_title")?,
        music_nick: row.try_get("music_nick")?,
        music_url: row.try_get("music_url")?,
        music_cover_url: row.try_get("music_cover_url")?,
        item_imgs: serde_json::from_str(&item_imgs).unwrap_or_default(),
    })
}

async fn insert_quota_sample(
    tx: &mut SqliteConnection,
    fetch_id: i64,
    observed_at: DateTime<Utc>,
    quota: &QuotaInput<'_>,
) -> Result<(), sqlx::Error> {
    let parsed = quota.parsed;
    let count = |n: Option<u64>| n.map(to_i64);
    sqlx::query(
        "INSERT INTO quota_samples (fetch_id, observed_at, quota_day, server_time, calls_today, \
         calls_max, calls_total, calls_total_parts, expires_on, api_info) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(fetch_id)
    .bind(timestamp(observed_at))
    .bind(quota_day(observed_at).to_string())
    .bind(quota.server_time)
    .bind(parsed.and_then(|p| count(p.today)))
    .bind(parsed.and_then(|p| count(p.max)))
    .bind(parsed.and_then(|p| count(p.total)))
    .bind(
        parsed
            .and_then(|p| p.total_parts.as_ref())
            .and_then(|parts| serde_json::to_string(parts).ok()),
    )
    .bind(parsed.and_then(|p| p.expires_on).map(|d| d.to_string()))
    .bind(cap_chars(quota.api_info, MAX_STORED_API_INFO_CHARS))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn update_video(
    tx: &mut SqliteConnection,
    record: &AttemptRecord<'_>,
    finished_at: &str,
) -> Result<bool, sqlx::Error> {
    let failure_key = record.error_code.or(record.error);
    match record.video_status {
        VideoStatus::Untouched => Ok(false),
        VideoStatus::Ok => {
            sqlx::query(
                "UPDATE videos SET status_changed_at = CASE WHEN status = 'ok' THEN status_changed_at ELSE ?1 END, \
                 status = 'ok', last_fetched_at = ?1, last_ok_at = ?1, consecutive_failures = 0, \
                 last_error_code = NULL, last_error = NULL \
                 WHERE video_id = ?2",
            )
            .bind(finished_at)
            .bind(record.video_id)
            .execute(&mut *tx)
            .await
            .map(|_| false)
        }
        VideoStatus::NotFound => {
            sqlx::query_scalar(
                "UPDATE videos SET status_changed_at = CASE WHEN status = 'not_found' THEN status_changed_at ELSE ?1 END, \
                 status = 'not_found', last_fetched_at = ?1, last_error_code = ?2, last_error = ?3, \
                 consecutive_failures = consecutive_failures + 1 WHERE video_id = ?4 \
                 RETURNING status_changed_at = ?1",
            )
            .bind(finished_at)
            .bind(failure_key)
            .bind(record.message)
            .bind(record.video_id)
            .fetch_optional(&mut *tx)
            .await
            .map(|changed: Option<bool>| changed.unwrap_or(false))
        }
        VideoStatus::Failing => {
            sqlx::query(
                "UPDATE videos SET status_changed_at = CASE WHEN status IN ('failing', 'not_found') THEN status_changed_at ELSE ?1 END, \
                 status = CASE WHEN status = 'not_found' THEN status ELSE 'failing' END, \
                 last_fetched_at = ?1, last_error_code = ?2, last_error = ?3, \
                 consecutive_failures = consecutive_failures + 1 WHERE video_id = ?4",
            )
            .bind(finished_at)
            .bind(failure_key)
            .bind(record.message)
            .bind(record.video_id)
            .execute(&mut *tx)
            .await
            .map(|_| false)
        }
    }
}
