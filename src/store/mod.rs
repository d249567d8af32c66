//! The SQLite store: every SQL statement of douyin-watch lives here (and in `attempts.rs`).
//!
//! Writes go through one writer lock and open their transactions with `BEGIN IMMEDIATE`, so
//! concurrent writers (other processes) wait on the busy timeout instead of failing with
//! `SQLITE_BUSY_SNAPSHOT`. Reads use a separate small pool, so a long query never holds up a pass.
//! No transaction is ever held across an HTTP call: a fetch's rows are written together after its
//! answer arrived.
//!
//! The writer lock guards two connections: an sqlx one for migrations and the occasional write
//! (passes, the watch list, pauses, pruning), and a rusqlite one that stores attempts, the hot
//! path (see `attempts.rs` for why). The lock is a mutex rather than a pool of one: a pool pings
//! its connection on every release.

mod attempts;
mod reports;
pub use reports::*;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqliteConnection};
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard, oneshot};

use crate::api_info::ApiInfo;
use crate::attempt::Outcome;
use crate::content::{Content, FIELD_NAMES};
use crate::quota::{SERVER_CLOCK_LAG, quota_day, quota_day_bounds};
use crate::response::RawItem;
use crate::video_id::VideoId;
use attempts::{AttemptWriter, MIRRORED_PRAGMAS};

/// Longest `api_info` text stored; real ones are ~60 characters, a hostile one could be megabytes.
const MAX_STORED_API_INFO_CHARS: usize = 1024;

/// The videos a pass over the watch list fetches, longest-unfetched first (never fetched before
/// all others): the active ones, but for `not_found` videos fetched at or after `?1`.
const DUE_VIDEOS_SQL: &str = "SELECT video_id FROM videos \
     WHERE active = 1 AND (status <> 'not_found' OR last_fetched_at IS NULL OR last_fetched_at < ?1) \
     ORDER BY last_fetched_at IS NOT NULL, last_fetched_at, video_id";

/// The page cache of each reader connection: a negative `cache_size` is in KiB.
const READER_CACHE_KIB: i64 = -512;

/// Rows a reader's SQLite thread may hand over ahead of the caller (sqlx's default is 50): reports
/// reading many rows then wait on the channel less (100,000 rows: 240 ms → 165 ms).
pub const READER_ROW_BUFFER: usize = 256;

/// How long a statement waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause between two batches of `prune`, long enough for a writer of another process that
/// waits for the lock to find it free.
const PRUNE_PAUSE: Duration = Duration::from_millis(100);
/// How long a paid answer waits to be stored while another process holds the database's write
/// lock (a `prune`, a `VACUUM`, a user's long write) before it is given up. Far longer than the
/// other writes wait: the call is paid for, and the pass makes no more calls than the answers it
/// may hold unstored meanwhile.
const ATTEMPT_PATIENCE: Duration = Duration::from_secs(10 * 60);

/// How long closing the store waits for a write in progress.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

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
    /// The connection that stores fetches could not be opened.
    #[error("cannot open the database {path} to store fetches: {source}")]
    OpenAttemptWriter {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// Storing fetches failed.
    #[error("database error while storing a fetch: {0}")]
    Write(#[source] rusqlite::Error),
    /// Another process held the database's write lock for longer than a paid answer waits.
    #[error(
        "the database stayed locked by another process for {minutes} minutes, so a fetch could not be stored (a long prune, VACUUM or write elsewhere?)"
    )]
    LockedTooLong { minutes: u64 },
}

/// The error of an answer given up after [`ATTEMPT_PATIENCE`].
fn locked_too_long() -> StoreError {
    StoreError::LockedTooLong {
        minutes: ATTEMPT_PATIENCE.as_secs() / 60,
    }
}

/// The right to run a pass on the database, held until dropped (see [`Store::claim_pass`]).
#[derive(Debug)]
pub struct PassClaim {
    /// The locked file; `None` for a database without a file (in memory).
    _file: Option<std::fs::File>,
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
    /// The database file (a name that is no file for an in-memory database).
    path: std::path::PathBuf,
    writer: Arc<Mutex<Writer>>,
    /// Attempts waiting for their group commit (see [`Store::record_attempt`]).
    queue: Arc<std::sync::Mutex<Queue>>,
    reader: SqlitePool,
}

/// The write connection and what is known about its state.
struct Writer {
    /// `None` once the store is closed.
    conn: Option<SqliteConnection>,
    /// A multi-statement write was abandoned part-way (its future dropped), so its transaction
    /// may still be open: the next user rolls it back first.
    in_doubt: bool,
    /// The connection that stores attempts (`None` once the store is closed); used only by
    /// whoever holds this writer, so the two connections never wait for each other.
    attempts: Option<Arc<std::sync::Mutex<AttemptWriter>>>,
}

impl Writer {
    fn conn(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("Store::writer hands out only open connections")
    }
}

/// `writer` once checked open, with any transaction an abandoned write left open rolled back.
async fn ready<G: std::ops::DerefMut<Target = Writer>>(mut writer: G) -> Result<G, sqlx::Error> {
    if writer.conn.is_none() {
        return Err(sqlx::Error::PoolClosed);
    }
    if writer.in_doubt {
        // There is no transaction unless the abandoned write left one open.
        let _ = sqlx::query("ROLLBACK").execute(writer.conn()).await;
        writer.in_doubt = false;
    }
    Ok(writer)
}

/// The write connection, locked for one operation.
struct WriterGuard<'a>(MutexGuard<'a, Writer>);

impl std::ops::Deref for WriterGuard<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.0
            .conn
            .as_ref()
            .expect("Store::writer hands out only open connections")
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0.conn()
    }
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

/// `path` with its links and `..` resolved, for a file that may not exist yet (then its folder
/// is resolved); None when not even the folder exists.
fn resolved(path: &std::path::Path) -> Option<std::path::PathBuf> {
    if let Ok(path) = std::fs::canonicalize(path) {
        return Some(path);
    }
    let name = path.file_name()?;
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => std::path::Path::new("."),
    };
    std::fs::canonicalize(folder)
        .ok()
        .map(|folder| folder.join(name))
}

/// The query of a [`WatchedVideo`], for a `WHERE` or `ORDER BY` to follow.
macro_rules! watched_video_select {
    () => {
        "SELECT v.video_id, v.label, v.active, v.status, v.status_changed_at, \
                COALESCE(l.version, 0) AS versions, l.first_seen_at AS last_changed_at, \
                v.last_fetched_at, v.last_error_code, l.title \
         FROM videos AS v LEFT JOIN latest_snapshots AS l ON l.video_id = v.video_id"
    };
}

/// Video ids in order, held compactly: a pass's list of what to fetch. An id that fits in 63
/// bits (every Douyin id so far: 19 digits starting with 6 or 7) takes 8 bytes; a longer one is
/// kept aside as text.
#[derive(Debug, Default, Clone)]
pub struct VideoIdList {
    /// The id's value, or (with [`LONG_ID`] set) its index in `long`.
    entries: Vec<u64>,
    long: Vec<VideoId>,
}

/// Marks an entry of a [`VideoIdList`] that points into its `long` ids.
const LONG_ID: u64 = 1 << 63;

impl VideoIdList {
    /// Adds an id at the end.
    pub fn push(&mut self, id: &VideoId) {
        // Ids have no leading zero, so the number gives back the same digits.
        match id.as_str().parse::<u64>() {
            Ok(n) if n < LONG_ID => self.entries.push(n),
            _ => {
                self.entries.push(LONG_ID | self.long.len() as u64);
                self.long.push(id.clone());
            }
        }
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.long.shrink_to_fit();
    }
}

impl From<Vec<VideoId>> for VideoIdList {
    fn from(ids: Vec<VideoId>) -> VideoIdList {
        let mut list = VideoIdList::default();
        for id in &ids {
            list.push(id);
        }
        list
    }
}

impl IntoIterator for VideoIdList {
    type Item = VideoId;
    type IntoIter = VideoIdListIter;

    fn into_iter(self) -> VideoIdListIter {
        VideoIdListIter {
            list: self,
            next: 0,
        }
    }
}

/// The ids of a [`VideoIdList`], each made a [`VideoId`] when its turn comes.
#[derive(Debug)]
pub struct VideoIdListIter {
    list: VideoIdList,
    next: usize,
}

impl Iterator for VideoIdListIter {
    type Item = VideoId;

    fn next(&mut self) -> Option<VideoId> {
        let entry = *self.list.entries.get(self.next)?;
        self.next += 1;
        Some(if entry & LONG_ID == 0 {
            VideoId::parse(&entry.to_string()).expect("only valid ids are listed")
        } else {
            self.list.long[(entry & !LONG_ID) as usize].clone()
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.list.entries.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for VideoIdListIter {}

/// What an attempt means for the video's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoStatus {
    /// A snapshot was stored.
    Ok,
    /// A snapshot was stored by a retry after failures of the same pass had turned an `ok` video
    /// `failing` (see [`StoredAttempt::left_ok_since`]): it is `ok` again, and `ok_since` (its
    /// `status_changed_at` before the failures) is kept, so a blip the retry mended does not read
    /// as a change of status.
    Mended { ok_since: String },
    /// onebound answered 2000: the video is gone or hidden.
    NotFound,
    /// The attempt failed; the status becomes `failing` unless it is `not_found`.
    Failing,
    /// Nothing was called (`skipped`): the row stays as it is.
    Untouched,
}

/// The snapshot part of a successful attempt. It is moved into the store, which keeps its
/// strings for the group commit without copying them.
#[derive(Debug)]
pub struct SnapshotInput {
    pub content: Content,
    pub content_hash: String,
    /// The item's JSON as the answer had it, looked up only if the content is new.
    pub raw: RawItem,
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
    pub snapshot: Option<SnapshotInput>,
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
    /// When this failed attempt turned an `ok` video `failing`: the `status_changed_at` it had,
    /// for [`VideoStatus::Mended`] should a retry succeed.
    pub left_ok_since: Option<String>,
}

/// A pass's totals, stored in `passes` when it ends.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PassTotals {
    pub videos: u64,
    pub fetched_ok: u64,
    pub not_found: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Videos taken off the watch list during the pass, before their call.
    pub removed: u64,
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
    /// When the pause of calls in force ends, if one is.
    pub paused_until: Option<DateTime<Utc>>,
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
        let mut writer = options.clone().connect().await.map_err(open_error)?;
        refuse_newer_schema(&mut writer, &path).await?;
        MIGRATOR
            .run(&mut writer)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.clone(),
                source,
            })?;
        let attempts = open_attempt_writer(&mut writer, options.get_filename(), &path).await?;
        let database_file = options.get_filename().to_path_buf();
        // Readers keep a smaller page cache than SQLite's default 2 MB: their big reads (the
        // watch list, reports) scan far more than any cache holds anyway, and a pass holds
        // memory flat (issue 5: at most 30 MB for a pass over 100,000 videos).
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(
                options
                    .read_only(true)
                    .row_buffer_size(READER_ROW_BUFFER)
                    .pragma("cache_size", READER_CACHE_KIB.to_string()),
            )
            .await
            .map_err(open_error)?;
        Ok(Store {
            path: database_file,
            writer: Arc::new(Mutex::new(Writer {
                conn: Some(writer),
                in_doubt: false,
                attempts: Some(Arc::new(std::sync::Mutex::new(attempts))),
            })),
            queue: Arc::default(),
            reader,
        })
    }

    /// Whether `path` (after its symbolic links) is this database's file, or a file SQLite or
    /// douyin-watch keeps or may make beside it, there or not: writing over any of them would
    /// destroy the database, or be destroyed by it.
    pub fn owns_file(&self, path: &std::path::Path) -> bool {
        let (Some(path), Ok(database)) = (resolved(path), std::fs::canonicalize(&self.path)) else {
            return false;
        };
        ["", "-wal", "-shm", "-journal", ".pass-lock"]
            .into_iter()
            .any(|suffix| {
                let mut own = database.clone().into_os_string();
                own.push(suffix);
                own == path.as_os_str()
            })
    }

    /// Claims the right to run a pass on this database, across processes: an exclusive lock on
    /// `<database>.pass-lock`, released when the claim is dropped (or its process ends, however).
    /// `None` when another pass holds it.
    pub fn claim_pass(&self) -> Option<PassClaim> {
        // An in-memory database is this process's alone.
        if !self.path.is_file() {
            return Some(PassClaim { _file: None });
        }
        // Beside the file itself, however it is named (through a link, say): one lock for all.
        let database = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let mut lock_path = database.into_os_string();
        lock_path.push(".pass-lock");
        let lock_path = std::path::PathBuf::from(lock_path);
        // Where no lock can be had (a filesystem without file locks, a folder this process
        // cannot write), the pass runs unguarded rather than never: the guard is against a
        // second process, the pass's own writes decide whether it can work.
        let unguarded = |error: std::io::Error| {
            tracing::warn!(
                path = %lock_path.display(),
                error = %error,
                "cannot lock the pass-lock file; this pass is not guarded against another \
                 process's pass on the same database"
            );
            Some(PassClaim { _file: None })
        };
        let file = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        {
            Ok(file) => file,
            Err(error) => return unguarded(error),
        };
        match file.try_lock() {
            Ok(()) => Some(PassClaim { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => None,
            Err(std::fs::TryLockError::Error(error)) => unguarded(error),
        }
    }

    /// The bytes an unprivileged writer may still use on the database's filesystem; `None` for a
    /// database without a file, or where it cannot be asked.
    pub fn free_bytes(&self) -> Option<u64> {
        if !self.path.is_file() {
            return None;
        }
        #[cfg(unix)]
        {
            let stat = nix::sys::statvfs::statvfs(&self.path).ok()?;
            Some(stat.blocks_available().saturating_mul(stat.fragment_size()))
        }
        #[cfg(not(unix))]
        None
    }

    /// Closes the readers and the writer, checkpointing the WAL. Later writes fail.
    pub async fn close(&self) {
        self.reader.close().await;
        // A write may be waiting out SQLite's busy timeout behind another process's transaction,
        // again and again: the program does not wait for it to exit. Leaving it unclosed is safe,
        // SQLite drops an unfinished transaction.
        let Ok(mut writer) = tokio::time::timeout(CLOSE_WAIT, self.writer.lock()).await else {
            tracing::warn!(
                wait = ?CLOSE_WAIT,
                "the database is still busy with a write (another process holds its write lock?); \
                 exiting without it: what it was writing is not stored"
            );
            return;
        };
        // The attempt writer first: the last connection to close checkpoints the WAL.
        if let Some(attempts) = writer.attempts.take() {
            let attempts = Arc::into_inner(attempts)
                .map(|a| a.into_inner().unwrap_or_else(|e| e.into_inner()));
            if let Some(Err(error)) = attempts.map(AttemptWriter::close) {
                tracing::warn!(%error, "closing the database's fetch-storing connection failed");
            }
        }
        let conn = writer.conn.take();
        drop(writer);
        if let Some(conn) = conn
            && let Err(error) = conn.close().await
        {
            tracing::warn!(%error, "closing the database's write connection failed");
        }
    }

    /// The write connection, once nobody else uses it (at most twice the busy timeout).
    async fn writer(&self) -> Result<WriterGuard<'_>, sqlx::Error> {
        let writer = tokio::time::timeout(BUSY_TIMEOUT * 2, self.writer.lock())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        Ok(WriterGuard(ready(writer).await?))
    }

    /// [`Store::writer`], as a guard that can move into a task, waited for up to `patience`.
    async fn writer_owned_within(
        &self,
        patience: Duration,
    ) -> Result<OwnedMutexGuard<Writer>, sqlx::Error> {
        let writer = tokio::time::timeout(patience, Arc::clone(&self.writer).lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        ready(writer).await
    }

    /// Adds ids to the watch list in one transaction; re-activates removed ones.
    pub async fn add_videos(
        &self,
        ids: &[VideoId],
        label: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<AddedVideos, StoreError> {
        let now = timestamp(now);
        let mut writer = self
            .writer()
            .await
            .map_err(step("starting the watch-list change"))?;
        let mut tx = writer
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
        let mut writer = self
            .writer()
            .await
            .map_err(step("starting the watch-list change"))?;
        let mut tx = writer
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
        sqlx::query_as(concat!(
            watched_video_select!(),
            " ORDER BY v.active DESC, v.added_at, v.video_id"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(step("listing the watch list"))
    }

    /// One video ever added, as [`Store::watched_videos`] lists it; None if it never was.
    pub async fn watched_video(&self, id: &VideoId) -> Result<Option<WatchedVideo>, StoreError> {
        sqlx::query_as(concat!(watched_video_select!(), " WHERE v.video_id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(step("reading the watch list"))
    }

    /// The videos taken off the watch list at or after `since` (a pass's start): the pass makes
    /// no further call for them.
    pub async fn removed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<HashSet<VideoId>, StoreError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT video_id FROM videos WHERE active = 0 AND removed_at >= ?")
                .bind(timestamp(since))
                .fetch_all(&self.reader)
                .await
                .map_err(step("reading the watch list"))?;
        // An id stored by hand that is no id cannot be in a pass's list either.
        Ok(ids
            .iter()
            .filter_map(|id| VideoId::parse(id).ok())
            .collect())
    }

    /// Active video ids, the longest-unfetched first (never fetched before all others), but for
    /// `not_found` videos last fetched at or after `recheck_before`: 2000 is charged, and a video
    /// gone is asked about again only now and then.
    pub async fn due_video_ids(
        &self,
        recheck_before: DateTime<Utc>,
    ) -> Result<Vec<VideoId>, StoreError> {
        // Each row becomes a `VideoId` as it arrives: no second list of the ids as strings.
        let ids: Vec<Option<VideoId>> = sqlx::query(DUE_VIDEOS_SQL)
            .bind(timestamp(recheck_before))
            .try_map(|row: SqliteRow| Ok(VideoId::parse(row.try_get::<&str, _>(0)?).ok()))
            .fetch_all(&self.reader)
            .await
            .map_err(step("reading the watch list"))?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// [`Store::due_video_ids`] held compactly (8 bytes per id instead of about 56), for passes
    /// over hundreds of thousands of videos.
    pub async fn due_video_id_list(
        &self,
        recheck_before: DateTime<Utc>,
    ) -> Result<VideoIdList, StoreError> {
        let mut list = VideoIdList::default();
        sqlx::query(DUE_VIDEOS_SQL)
            .bind(timestamp(recheck_before))
            .try_map(|row: SqliteRow| {
                if let Ok(id) = VideoId::parse(row.try_get::<&str, _>(0)?) {
                    list.push(&id);
                }
                Ok(())
            })
            .fetch_all(&self.reader)
            .await
            .map_err(step("reading the watch list"))?;
        list.shrink_to_fit();
        Ok(list)
    }

    /// Which of `ids` are not watched now: unknown, or removed.
    pub async fn unwatched_video_ids(&self, ids: &[VideoId]) -> Result<Vec<VideoId>, StoreError> {
        self.ids_without_row(
            ids,
            "SELECT 1 FROM videos WHERE video_id = ? AND active = 1",
        )
        .await
    }

    /// The `ids` for which `sql`, given one id, finds no row.
    async fn ids_without_row(
        &self,
        ids: &[VideoId],
        sql: &'static str,
    ) -> Result<Vec<VideoId>, StoreError> {
        let mut missing = Vec::new();
        for id in ids {
            let found: Option<i64> = sqlx::query_scalar(sql)
                .bind(id.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(step("reading the watch list"))?;
            if found.is_none() {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    /// Records the start of a pass and returns its id.
    pub async fn begin_pass(
        &self,
        trigger: &str,
        videos: u64,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut writer = self
            .writer()
            .await
            .map_err(step("recording the start of a pass"))?;
        // Not `RETURNING id` read with `fetch_one`: sqlx drops the statement after its row, and
        // an error of the commit that follows (a disk turned read-only) would be lost, with a pass
        // id that was never stored and paid calls made on it.
        let inserted =
            sqlx::query("INSERT INTO passes (trigger, started_at, videos) VALUES (?, ?, ?)")
                .bind(trigger)
                .bind(timestamp(now))
                .bind(to_i64(videos))
                .execute(&mut *writer)
                .await
                .map_err(step("recording the start of a pass"))?;
        Ok(inserted.last_insert_rowid())
    }

    /// Stores a pass's totals when it ends.
    pub async fn finish_pass(
        &self,
        pass_id: i64,
        totals: &PassTotals,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut writer = self
            .writer()
            .await
            .map_err(step("recording the end of a pass"))?;
        sqlx::query(
            "UPDATE passes SET finished_at = ?, fetched_ok = ?, not_found = ?, failed = ?, \
             skipped = ?, removed = ?, new_versions = ?, calls = ?, charged_calls = ?, stopped_by = ? \
             WHERE id = ?",
        )
        .bind(timestamp(now))
        .bind(to_i64(totals.fetched_ok))
        .bind(to_i64(totals.not_found))
        .bind(to_i64(totals.failed))
        .bind(to_i64(totals.skipped))
        .bind(to_i64(totals.removed))
        .bind(to_i64(totals.new_versions))
        .bind(to_i64(totals.calls))
        .bind(to_i64(totals.charged_calls))
        .bind(totals.stopped_by.as_deref())
        .bind(pass_id)
        .execute(&mut *writer)
        .await
        .map_err(step("recording the end of a pass"))?;
        Ok(())
    }

    /// Writes everything one attempt produced — snapshot, fetch row, quota sample, video status —
    /// in one transaction: after a crash either all of it is there or none.
    ///
    /// Attempts are committed in groups: the first caller to find the writer free waits up to
    /// [`GROUP_COMMIT_WINDOW`] for others to join, then writes all of them in one transaction on
    /// the attempt writer's connection (`attempts.rs`), so the pages written to the WAL do not
    /// grow with the number of fetches. If that transaction fails, each attempt is tried again in
    /// a transaction of its own, so one bad row fails only its own fetch. Whether the content is
    /// new is decided inside the transaction by comparing its hash with the latest version's.
    pub async fn record_attempt(
        &self,
        record: AttemptRecord<'_>,
    ) -> Result<StoredAttempt, StoreError> {
        let (reply, mut answer) = oneshot::channel();
        let id = {
            let mut queue = lock(&self.queue);
            queue.next_id += 1;
            let id = queue.next_id;
            queue.waiting.push(Queued {
                id,
                row: AttemptRow::new(record),
                since: Instant::now(),
                reply,
            });
            id
        };
        loop {
            tokio::select! {
                biased;
                stored = &mut answer => return stored.unwrap_or_else(|_| Err(lost_attempt())),
                writer = self.writer_owned_within(ATTEMPT_PATIENCE + BUSY_TIMEOUT) => {
                    let writer = match writer {
                        Ok(writer) => writer,
                        Err(sqlx::Error::PoolTimedOut) => {
                            lock(&self.queue).waiting.retain(|q| q.id != id);
                            return Err(locked_too_long());
                        }
                        Err(source) => {
                            lock(&self.queue).waiting.retain(|q| q.id != id);
                            return Err(StoreError::Query { step: "starting to store a fetch", source });
                        }
                    };
                    // A batch written meanwhile may have held this attempt.
                    if let Ok(stored) = answer.try_recv() {
                        return stored;
                    }
                    let first = lock(&self.queue).waiting.first().map(|q| q.since);
                    if let Some(first) = first
                        && lock(&self.queue).waiting.len() < MAX_GROUP
                    {
                        tokio::time::sleep_until((first + GROUP_COMMIT_WINDOW).into()).await;
                    }
                    let group = {
                        let mut queue = lock(&self.queue);
                        let group = take_group(&mut queue.waiting);
                        queue.writing_since = group.first().map(|q| q.since);
                        group
                    };
                    // Spawned, so that the group is written and answered even if this caller goes away.
                    let _ = tokio::spawn(write_group(writer, group, Arc::clone(&self.queue))).await;
                }
            }
        }
    }

    /// How long the oldest attempt handed to [`Store::record_attempt`] and not yet stored has
    /// waited, if one waits. A group commit takes milliseconds; seconds mean that the database is
    /// held elsewhere (another process's write lock) or stuck.
    pub fn oldest_unstored_wait(&self) -> Option<Duration> {
        let queue = lock(&self.queue);
        // `waiting` is in the order attempts came, and a group takes the oldest first. An attempt
        // whose caller went away (a pass dropped) waits for whichever group comes next: it is
        // not a sign of a stalled store, and counting it would hold back the very calls whose
        // attempts would write it.
        let oldest = queue.writing_since.or_else(|| {
            queue
                .waiting
                .iter()
                .find(|queued| !queued.reply.is_closed())
                .map(|queued| queued.since)
        })?;
        Some(oldest.elapsed())
    }

    /// The highest `today` and the latest `max` counted against a Beijing day, as far as answers
    /// told.
    pub async fn day_quota(
        &self,
        day: NaiveDate,
    ) -> Result<(Option<u64>, Option<u64>), StoreError> {
        // By `observed_at` (indexed through its fetch): the day's answers are those of calls
        // started on it, and up to `SERVER_CLOCK_LAG` after it. Only in those first minutes of
        // either day can an answer count against another day than its call's, so only there is
        // `quota_day` (computed per row) asked (for 150,000 calls a day, 0.2 s instead of 0.07).
        let (start, end) = quota_day_bounds(day);
        let lag = |at: DateTime<Utc>| at.checked_add_signed(SERVER_CLOCK_LAG).unwrap_or(at);
        macro_rules! on_the_day {
            () => {
                "observed_at >= ?1 AND observed_at < ?2 \
                 AND ((observed_at >= ?3 AND observed_at < ?4) OR quota_day = ?5)"
            };
        }
        let row = sqlx::query(concat!(
            "SELECT MAX(calls_today) AS today, \
                    (SELECT calls_max FROM quota_samples WHERE ",
            on_the_day!(),
            " AND calls_max IS NOT NULL ORDER BY id DESC LIMIT 1) AS max \
             FROM quota_samples WHERE ",
            on_the_day!()
        ))
        .bind(timestamp(start))
        .bind(timestamp(lag(end)))
        .bind(timestamp(lag(start)))
        .bind(timestamp(end))
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
        let mut writer = self.writer().await.map_err(step("recording a pause"))?;
        sqlx::query(
            "INSERT INTO pauses (created_at, until, cause, error_code, message) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&pause.created_at)
        .bind(&pause.until)
        .bind(&pause.cause)
        .bind(pause.error_code.as_deref())
        .bind(&pause.message)
        .execute(&mut *writer)
        .await
        .map_err(step("recording a pause"))?;
        Ok(())
    }

    /// Ends every pause after an account-level error still in force at `now` (their rows stay,
    /// with `until` moved to `now`) and returns them as they were. A pause after 4013 (the daily
    /// max reached) is left: it ends at Beijing midnight, when onebound's count starts again.
    pub async fn end_pauses(&self, now: DateTime<Utc>) -> Result<Vec<Pause>, StoreError> {
        let mut writer = self.writer().await.map_err(step("ending pauses"))?;
        let now = timestamp(now);
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(step("ending pauses"))?;
        let ended: Vec<Pause> = sqlx::query_as(
            "SELECT created_at, until, cause, error_code, message FROM pauses \
             WHERE until > ? AND cause = 'account_error' ORDER BY id",
        )
        .bind(&now)
        .fetch_all(&mut *tx)
        .await
        .map_err(step("ending pauses"))?;
        sqlx::query("UPDATE pauses SET until = ?1 WHERE until > ?1 AND cause = 'account_error'")
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(step("ending pauses"))?;
        tx.commit().await.map_err(step("ending pauses"))?;
        Ok(ended)
    }

    /// Account-error pauses recorded since the last successful fetch (for their backoff). The
    /// newest fetch is found from the end of `fetches`, not by reading all of it.
    pub async fn account_pauses_since_last_success(&self) -> Result<u32, StoreError> {
        let mut writer = self.writer().await.map_err(step("reading pauses"))?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pauses WHERE cause = 'account_error' AND created_at > \
             COALESCE((SELECT finished_at FROM fetches WHERE outcome = 'ok' \
                       ORDER BY id DESC LIMIT 1), '')",
        )
        .fetch_one(&mut *writer)
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

    /// Failed attempts since `since`, grouped by error code (or failure key, also for an unusable
    /// `0000` answer), most frequent first.
    pub async fn failure_groups(
        &self,
        since: DateTime<Utc>,
        code: Option<&str>,
    ) -> Result<Vec<FailureGroup>, StoreError> {
        sqlx::query_as(
            "SELECT COALESCE(NULLIF(error_code, '0000'), error, outcome) AS code, COUNT(*) AS count, \
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
        let (mut today, mut max) = self.day_quota(quota_day(now)).await?;
        // A Beijing day without an answer yet: onebound's count started again at 0, against the
        // daily max last seen (yesterday's figures must not stand for today's).
        if today.is_none() {
            let newest_max = sqlx::query_scalar::<_, Option<i64>>(
                "SELECT calls_max FROM quota_samples WHERE calls_max IS NOT NULL \
                 ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(&self.reader)
            .await
            .map_err(step("reading the quota"))?
            .flatten()
            .and_then(|m| u64::try_from(m).ok());
            if newest_max.is_some() {
                today = Some(0);
                max = max.or(newest_max);
            }
        }
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
        let paused_until = self
            .active_pause(now)
            .await?
            .and_then(|pause| parse_timestamp(&pause.until));
        Ok(GaugeFigures {
            today,
            max,
            expires_on: expires_on.and_then(|d| d.parse().ok()),
            videos_by_status,
            paused_until,
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
        // A sample's time is its fetch's start, so the samples to delete are those before the
        // later of the two cutoffs: old ones, and those of the fetches deleted next.
        if let Some(before) = quota_samples_before.max(fetches_before) {
            let before = timestamp(before);
            // Readings are walked in the order of their fetch ids, up to the last fetch before
            // the cutoff, so that a batch reads only what it deletes: found through the fetches'
            // time index, each batch read again every old fetch whose reading earlier batches
            // had deleted (quadratic: 11 minutes for 1.5 million rows).
            let last: Option<i64> =
                sqlx::query_scalar("SELECT MAX(id) FROM fetches WHERE started_at < ?")
                    .bind(&before)
                    .fetch_one(&self.reader)
                    .await
                    .map_err(step("pruning old rows"))?;
            if let Some(last) = last {
                pruned.quota_samples += self
                    .delete_in_batches(
                        "DELETE FROM quota_readings WHERE fetch_id IN \
                         (SELECT r.fetch_id FROM quota_readings r \
                          CROSS JOIN fetches f ON f.id = r.fetch_id \
                          WHERE r.fetch_id <= ?2 AND f.started_at < ?1 \
                          ORDER BY r.fetch_id LIMIT 2000)",
                        &before,
                        Some(last),
                    )
                    .await?;
            }
        }
        if let Some(before) = fetches_before {
            pruned.fetches += self
                .delete_in_batches(
                    "DELETE FROM fetches WHERE id IN \
                     (SELECT id FROM fetches WHERE started_at < ?1 LIMIT 2000)",
                    &timestamp(before),
                    None,
                )
                .await?;
        }
        Ok(pruned)
    }

    /// Runs `sql` (bound to `before`, then `last` if given) until it deletes nothing, each
    /// batch a transaction of its own, with a pause between them.
    async fn delete_in_batches(
        &self,
        sql: &'static str,
        before: &str,
        last: Option<i64>,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let mut writer = self.writer().await.map_err(step("pruning old rows"))?;
            let mut query = sqlx::query(sql).bind(before);
            if let Some(last) = last {
                query = query.bind(last);
            }
            let deleted = query
                .execute(&mut *writer)
                .await
                .map_err(step("pruning old rows"))?
                .rows_affected();
            drop(writer);
            total += deleted;
            if deleted == 0 {
                return Ok(total);
            }
            // Let other writers in between batches, a daemon's passes above all when `prune`
            // runs as a process of its own: SQLite's busy handler polls a lock every few
            // milliseconds up to 100, and a lock taken again at once is never seen free.
            tokio::time::sleep(PRUNE_PAUSE).await;
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

/// Opens the connection that stores attempts, with the write connection's limits (see
/// [`MIRRORED_PRAGMAS`]).
async fn open_attempt_writer(
    writer: &mut SqliteConnection,
    file: &std::path::Path,
    path: &str,
) -> Result<AttemptWriter, StoreError> {
    let mut pragmas = Vec::with_capacity(MIRRORED_PRAGMAS.len());
    for name in MIRRORED_PRAGMAS {
        let value: i64 = sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(&mut *writer)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        pragmas.push((name, value));
    }
    AttemptWriter::open(file, &pragmas).map_err(|source| StoreError::OpenAttemptWriter {
        path: path.to_owned(),
        source,
    })
}

async fn refuse_newer_schema(conn: &mut SqliteConnection, path: &str) -> Result<(), StoreError> {
    let has_table: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(step("reading the schema version"))?;
    if has_table.is_none() {
        return Ok(());
    }
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
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

/// How long the first attempt of a group waits for others before the group is written.
const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(20);

/// The most attempts written in one transaction.
const MAX_GROUP: usize = 64;

/// An attempt waiting to be written.
struct Queued {
    id: u64,
    row: AttemptRow,
    since: Instant,
    reply: oneshot::Sender<Result<StoredAttempt, StoreError>>,
}

/// Attempts waiting for the next group commit.
#[derive(Default)]
struct Queue {
    next_id: u64,
    waiting: Vec<Queued>,
    /// When the oldest attempt of the group being written was queued (one group at a time: the
    /// writer lock is held while it is written).
    writing_since: Option<Instant>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The queue is only pushed to and drained whole, so a panic elsewhere cannot corrupt it.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error of an attempt whose group commit was abandoned (the runtime shutting down, or a
/// panic while writing).
fn lost_attempt() -> StoreError {
    StoreError::Query {
        step: "storing a fetch",
        source: sqlx::Error::WorkerCrashed,
    }
}

/// Up to [`MAX_GROUP`] waiting attempts, oldest first, at most one per video (a video's later
/// attempt must see its earlier one's version); the others keep waiting.
fn take_group(waiting: &mut Vec<Queued>) -> Vec<Queued> {
    let mut group: Vec<Queued> = Vec::new();
    let mut rest = Vec::new();
    for queued in waiting.drain(..) {
        if group.len() < MAX_GROUP && !group.iter().any(|g| g.row.video_id == queued.row.video_id) {
            group.push(queued);
        } else {
            rest.push(queued);
        }
    }
    *waiting = rest;
    group
}

/// Clears the queue's `writing_since` when dropped.
struct NoLongerWriting(Arc<std::sync::Mutex<Queue>>);

impl Drop for NoLongerWriting {
    fn drop(&mut self) {
        lock(&self.0).writing_since = None;
    }
}

/// Writes a group in one transaction and answers each attempt; if the transaction fails, writes
/// each attempt in a transaction of its own, so that one bad attempt fails alone. The writer lock
/// is held until SQLite is done.
async fn write_group(
    writer: OwnedMutexGuard<Writer>,
    group: Vec<Queued>,
    queue: Arc<std::sync::Mutex<Queue>>,
) {
    // However this ends (a panic included), the group is no longer being written.
    let writing = NoLongerWriting(queue);
    let Some(attempts) = writer.attempts.clone() else {
        for queued in group {
            let _ = queued.reply.send(Err(StoreError::Query {
                step: "storing a fetch",
                source: sqlx::Error::PoolClosed,
            }));
        }
        return;
    };
    let (rows, replies): (Vec<AttemptRow>, Vec<_>) = group
        .into_iter()
        .map(|queued| (queued.row, queued.reply))
        .unzip();
    // A blocking task runs to its end even if this one is dropped, so a group is never left
    // half-written: its transaction commits or rolls back as a whole. Its results come back in
    // one piece, so SQLite's thread wakes this runtime once per group, not once per attempt.
    let written = tokio::task::spawn_blocking(move || {
        // A panic while writing rolls its transaction back on the way out: the connection is
        // usable again.
        let mut attempts = attempts.lock().unwrap_or_else(|e| e.into_inner());
        let results = write_rows(&mut attempts, &rows);
        // The rows go back to be freed on the thread that allocated them, where the allocator's
        // per-thread cache takes them cheaply.
        (rows, results)
    })
    .await;
    // Before the writer lock goes: the next group sets its own.
    drop(writing);
    drop(writer);
    match written {
        Ok((_rows, results)) => {
            for (reply, stored) in replies.into_iter().zip(results) {
                let _ = reply.send(stored);
            }
        }
        // The panic was logged by the hook; each caller learns its attempt was not stored.
        Err(_) => {
            for reply in replies {
                let _ = reply.send(Err(lost_attempt()));
            }
        }
    }
}

/// Each row's outcome: the group in one transaction, or if that fails, each row in its own.
/// While another process holds the write lock, the group waits for it, up to
/// [`ATTEMPT_PATIENCE`]: each try waits out SQLite's busy timeout first.
fn write_rows(
    attempts: &mut AttemptWriter,
    rows: &[AttemptRow],
) -> Vec<Result<StoredAttempt, StoreError>> {
    let waiting_since = Instant::now();
    let mut written = attempts.write(rows);
    while written.as_ref().is_err_and(is_locked) && waiting_since.elapsed() < ATTEMPT_PATIENCE {
        tracing::warn!(
            fetches = rows.len(),
            waited_s = waiting_since.elapsed().as_secs(),
            "another process holds the database's write lock; paid answers wait to be stored"
        );
        written = attempts.write(rows);
    }
    match written {
        Ok(stored) => stored.into_iter().map(Ok).collect(),
        // Each row on its own would wait out the busy timeout again.
        Err(error) if is_locked(&error) => rows.iter().map(|_| Err(locked_too_long())).collect(),
        Err(error) if rows.len() == 1 => vec![Err(StoreError::Write(error))],
        Err(_) => rows
            .iter()
            .map(|row| {
                attempts
                    .write(std::slice::from_ref(row))
                    .map(|mut stored| stored.remove(0))
                    .map_err(StoreError::Write)
            })
            .collect(),
    }
}

/// True for SQLite's answer that another connection holds the lock (after the busy timeout).
fn is_locked(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// An attempt's values as stored, owned, so that whichever caller writes the group can bind them.
struct AttemptRow {
    pass_id: Option<i64>,
    video_id: String,
    started_at: String,
    finished_at: String,
    attempt: i64,
    outcome: &'static str,
    http_status: Option<i64>,
    error_code: Option<String>,
    error: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    charged: bool,
    request_id: Option<String>,
    video_status: VideoStatus,
    snapshot: Option<SnapshotRow>,
    quota: Option<QuotaRow>,
}

struct SnapshotRow {
    content_hash: String,
    /// The [`FIELD_NAMES`] columns in order (`item_imgs` as a JSON array).
    fields: [Option<String>; FIELD_NAMES.len()],
    raw: RawItem,
}

#[derive(Debug)]
struct QuotaRow {
    server_time: Option<String>,
    calls_today: Option<i64>,
    calls_max: Option<i64>,
    calls_total: Option<i64>,
    calls_total_parts: Option<String>,
    expires_on: Option<String>,
    /// The text as sent, or None where the `quota_samples` view gives it back from the figures.
    api_info: Option<String>,
}

impl QuotaRow {
    /// Keeps `sent` only if the view would not write it back exactly from the figures.
    fn with_api_info(self, sent: &str) -> QuotaRow {
        let api_info = (self.rebuilt_api_info() != sent).then(|| sent.to_owned());
        QuotaRow { api_info, ..self }
    }

    /// The text the `quota_samples` view writes for a reading whose `api_info` is NULL: this is
    /// its SQL (migration 0003) in Rust, which a test holds to the view itself.
    fn rebuilt_api_info(&self) -> String {
        use std::fmt::Write as _;
        let figure = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let mut text = format!(
            "today:{} max:{}",
            figure(self.calls_today),
            figure(self.calls_max)
        );
        if let (Some(total), Some(parts)) = (self.calls_total, &self.calls_total_parts) {
            let parts = parts
                .trim_matches(|c| c == '[' || c == ']')
                .replace(',', "+");
            let _ = write!(text, " all[{total}={parts}]");
        }
        if let Some(expires_on) = &self.expires_on {
            let _ = write!(text, ";expires:{expires_on}");
        }
        text
    }
}

impl AttemptRow {
    fn new(record: AttemptRecord<'_>) -> AttemptRow {
        let count = |n: Option<u64>| n.map(to_i64);
        let owned = |s: Option<&str>| s.map(str::to_owned);
        AttemptRow {
            pass_id: record.pass_id,
            video_id: record.video_id.to_owned(),
            started_at: timestamp(record.started_at),
            finished_at: timestamp(record.finished_at),
            attempt: i64::from(record.attempt),
            outcome: record.outcome.as_str(),
            http_status: record.http_status.map(i64::from),
            error_code: owned(record.error_code),
            error: owned(record.error),
            reason: owned(record.reason),
            message: owned(record.message),
            charged: record.charged,
            request_id: owned(record.request_id),
            video_status: record.video_status,
            snapshot: record.snapshot.map(|input| {
                let c = input.content;
                SnapshotRow {
                    fields: [
                        c.title,
                        c.nick,
                        c.signature,
                        c.detail_url,
                        c.item_type,
                        c.author_uid,
                        c.short_id,
                        c.video_url,
                        c.video_url_raw,
                        c.cover_url,
                        c.music_title,
                        c.music_nick,
                        c.music_url,
                        c.music_cover_url,
                        Some(json_array(&c.item_imgs)),
                    ],
                    content_hash: input.content_hash,
                    raw: input.raw,
                }
            }),
            quota: record.quota.as_ref().map(|quota| {
                let parsed = quota.parsed;
                QuotaRow {
                    server_time: owned(quota.server_time),
                    calls_today: parsed.and_then(|p| count(p.today)),
                    calls_max: parsed.and_then(|p| count(p.max)),
                    calls_total: parsed.and_then(|p| count(p.total)),
                    calls_total_parts: parsed
                        .and_then(|p| p.total_parts.as_ref())
                        .and_then(|parts| serde_json::to_string(parts).ok()),
                    expires_on: parsed.and_then(|p| p.expires_on).map(|d| d.to_string()),
                    api_info: None,
                }
                .with_api_info(cap_chars(quota.api_info, MAX_STORED_API_INFO_CHARS))
            }),
        }
    }
}

fn json_array<T: AsRef<str>>(items: &[T]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(text: &str) -> VideoId {
        VideoId::parse(text).expect("a valid id")
    }

    #[test]
    fn a_video_id_list_gives_back_every_id_in_order() {
        let ids = vec![
            id("7118694749548072205"),
            id("99999999999999999999"),
            id("12345678"),
            id("9300000000000000000"),
            id("123456789012345678901234"),
        ];
        let list = VideoIdList::from(ids.clone());
        assert_eq!(list.len(), 5);
        let back: Vec<VideoId> = list.into_iter().collect();
        assert_eq!(back, ids);
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(SqliteConnectOptions::new().filename(dir.path().join("t.db")))
            .await
            .expect("open");
        (dir, store)
    }

    fn content(title: &str, cover: &str) -> Content {
        Content {
            title: Some(title.to_owned()),
            nick: Some("nick".to_owned()),
            cover_url: Some(cover.to_owned()),
            item_imgs: vec!["https://p.douyinpic.com/a.jpeg".to_owned()],
            ..Content::default()
        }
    }

    /// A video the tests never watch.
    const UNWATCHED: &str = "7299999999999999999";

    /// A charged, successful first attempt of `video_id`, finished now, without quota.
    fn ok_attempt<'a>(
        video_id: &'a str,
        snapshot: Option<SnapshotInput>,
        video_status: VideoStatus,
    ) -> AttemptRecord<'a> {
        let now = Utc::now();
        AttemptRecord {
            pass_id: None,
            video_id,
            started_at: now,
            finished_at: now,
            attempt: 1,
            outcome: Outcome::Ok,
            http_status: Some(200),
            error_code: Some("0000"),
            error: None,
            reason: None,
            message: None,
            charged: true,
            request_id: None,
            snapshot,
            quota: None,
            video_status,
        }
    }

    /// Records one successful attempt of `video` with `content`.
    async fn record_ok(store: &Store, video: &str, content: &Content) -> StoredAttempt {
        let hash = content.hash();
        let info = ApiInfo::parse("today:3 max:100 all[9=3+4+2];expires:2030-12-31").expect("info");
        let snapshot = SnapshotInput {
            content: content.clone(),
            content_hash: hash,
            raw: RawItem::new("{\"title\":\"raw\"}"),
        };
        store
            .record_attempt(AttemptRecord {
                request_id: Some("gw-1"),
                quota: Some(QuotaInput {
                    api_info: "today:3 max:100 all[9=3+4+2];expires:2030-12-31",
                    parsed: Some(&info),
                    server_time: Some("Beijing/2026-01-01 08:00:00"),
                }),
                ..ok_attempt(video, Some(snapshot), VideoStatus::Ok)
            })
            .await
            .expect("stored")
    }

    #[tokio::test]
    async fn a_hand_edited_value_that_is_not_text_counts_as_changed() {
        let (dir, store) = store().await;
        let video = id("7200000000000000001");
        store
            .add_videos(std::slice::from_ref(&video), None, Utc::now())
            .await
            .expect("add");
        let cover = "https://p.douyinpic.com/c.jpeg";
        record_ok(&store, video.as_str(), &content("first", cover)).await;
        // A user's hand edit leaves a blob where the title was (a number would become text).
        rusqlite::Connection::open(dir.path().join("t.db"))
            .expect("open")
            .execute("UPDATE snapshot_versions SET title = X'6669727374'", [])
            .expect("edit");
        let stored = record_ok(&store, video.as_str(), &content("second", cover)).await;
        let snapshot = stored.snapshot.expect("a snapshot");
        assert!(snapshot.is_new_version);
        assert_eq!(snapshot.version, 2);
        assert_eq!(snapshot.changed_fields, ["title"]);
        store.close().await;
    }

    /// The attempt writer skips the schema's CHECK constraints (see `AttemptWriter::open`), so
    /// every outcome and status it can write is checked here against them.
    #[tokio::test]
    async fn every_outcome_and_status_the_attempt_writer_stores_meets_the_schema() {
        let (dir, store) = store().await;
        let outcomes = [
            Outcome::Ok,
            Outcome::ApiError,
            Outcome::HttpError,
            Outcome::TransportError,
            Outcome::DecodeError,
            Outcome::Skipped,
        ];
        let statuses = [
            VideoStatus::Ok,
            VideoStatus::Mended {
                ok_since: timestamp(Utc::now()),
            },
            VideoStatus::NotFound,
            VideoStatus::Failing,
            VideoStatus::Untouched,
        ];
        let ids: Vec<VideoId> = (1..=statuses.len())
            .map(|i| id(&format!("72{i:017}")))
            .collect();
        store.add_videos(&ids, None, Utc::now()).await.expect("add");
        for (video, status) in ids.iter().zip(statuses) {
            for outcome in outcomes {
                let now = Utc::now();
                store
                    .record_attempt(AttemptRecord {
                        pass_id: None,
                        video_id: video.as_str(),
                        started_at: now,
                        finished_at: now,
                        attempt: 1,
                        outcome,
                        http_status: None,
                        error_code: Some("4005"),
                        error: None,
                        reason: None,
                        message: Some("m"),
                        charged: true,
                        request_id: None,
                        snapshot: None,
                        quota: None,
                        video_status: status.clone(),
                    })
                    .await
                    .expect("stored");
            }
        }
        store.close().await;

        // Rewriting every row in place on a connection that enforces CHECK fails on any value
        // the schema refuses.
        let revalidate = "UPDATE fetches SET outcome = outcome, charged = charged; \
                          UPDATE videos SET status = status";
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).expect("open");
        conn.execute_batch(revalidate)
            .expect("every stored value meets the schema's CHECK constraints");
        let fetches: i64 = conn
            .query_row("SELECT COUNT(DISTINCT outcome) FROM fetches", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(fetches, outcomes.len() as i64);
        // The check is live: a value the schema refuses, slipped in without CHECK, fails it.
        conn.execute_batch(
            "PRAGMA ignore_check_constraints = ON; \
             UPDATE videos SET status = 'gone' WHERE rowid = 1; \
             PRAGMA ignore_check_constraints = OFF;",
        )
        .expect("slip a bad value in");
        let refused = conn.execute_batch(revalidate).expect_err("refused");
        assert!(refused.to_string().contains("CHECK"), "{refused}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_commit_stores_each_attempt_as_its_own_transaction_would() {
        let (_dir, store) = store().await;
        let ids: Vec<VideoId> = (1..=40).map(|i| id(&format!("72{i:017}"))).collect();
        store.add_videos(&ids, None, Utc::now()).await.expect("add");
        let first = content("first", "https://p.douyinpic.com/c.jpeg");
        // 40 attempts at once: written in groups.
        let stored = futures_join(&store, &ids, &first).await;
        let mut fetch_ids: Vec<i64> = stored.iter().map(|s| s.fetch_id).collect();
        fetch_ids.sort_unstable();
        fetch_ids.dedup();
        assert_eq!(fetch_ids.len(), 40, "one fetch row each");
        for s in &stored {
            let snapshot = s.snapshot.as_ref().expect("a snapshot");
            assert!(snapshot.is_new_version);
            assert_eq!(snapshot.version, 1);
            assert!(snapshot.changed_fields.is_empty());
        }
        // The same content again: no version; a changed title and cover: version 2.
        let again = record_ok(&store, ids[0].as_str(), &first).await;
        let seen = again.snapshot.expect("a snapshot");
        assert!(!seen.is_new_version);
        assert_eq!(seen.version, 1);
        let second = content("second", "https://p.douyinpic.com/d.jpeg");
        let changed = record_ok(&store, ids[0].as_str(), &second).await;
        let changed = changed.snapshot.expect("a snapshot");
        assert!(changed.is_new_version);
        assert_eq!(changed.version, 2);
        assert_eq!(changed.changed_fields, ["title", "cover_url"]);

        let row: (i64, String, String) = sqlx::query_as(
            "SELECT seen_count, changed_fields, item_imgs FROM snapshots \
             WHERE video_id = ? AND version = 1",
        )
        .bind(ids[0].as_str())
        .fetch_one(&store.reader)
        .await
        .expect("row");
        assert_eq!(row.0, 2, "seen by two fetches");
        assert_eq!(row.1, "[]");
        assert_eq!(row.2, "[\"https://p.douyinpic.com/a.jpeg\"]");
        let stored_changes: String = sqlx::query_scalar(
            "SELECT changed_fields FROM snapshots WHERE video_id = ? AND version = 2",
        )
        .bind(ids[0].as_str())
        .fetch_one(&store.reader)
        .await
        .expect("row");
        assert_eq!(stored_changes, "[\"title\",\"cover_url\"]");
        let (samples, fetches, linked): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM quota_samples WHERE calls_total_parts = '[3,4,2]'), \
                    (SELECT COUNT(*) FROM fetches), \
                    (SELECT COUNT(*) FROM fetches AS f JOIN snapshots AS s ON s.id = f.snapshot_id \
                     AND s.video_id = f.video_id)",
        )
        .fetch_one(&store.reader)
        .await
        .expect("counts");
        assert_eq!((samples, fetches, linked), (42, 42, 42));
        store.close().await;
    }

    async fn futures_join(store: &Store, ids: &[VideoId], content: &Content) -> Vec<StoredAttempt> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, video) in ids.iter().enumerate() {
            let (store, video, content) = (store.clone(), video.clone(), content.clone());
            tasks.spawn(async move { (i, record_ok(&store, video.as_str(), &content).await) });
        }
        let mut stored: Vec<(usize, StoredAttempt)> = tasks.join_all().await;
        stored.sort_by_key(|(i, _)| *i);
        stored.into_iter().map(|(_, s)| s).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_attempt_fails_alone_and_its_group_is_stored() {
        let (_dir, store) = store().await;
        let good = id("7200000000000000001");
        store
            .add_videos(std::slice::from_ref(&good), None, Utc::now())
            .await
            .expect("add");
        let first = content("first", "https://p.douyinpic.com/c.jpeg");
        // An unknown video breaks the foreign key: only its own attempt fails.
        let (ok, bad) = tokio::join!(record_ok(&store, good.as_str(), &first), async {
            let store = store.clone();
            tokio::spawn(async move {
                let hash = first_hash();
                let content = content("x", "https://p.douyinpic.com/x.jpeg");
                let snapshot = SnapshotInput {
                    content,
                    content_hash: hash,
                    raw: RawItem::new("{}"),
                };
                store
                    .record_attempt(ok_attempt(UNWATCHED, Some(snapshot), VideoStatus::Ok))
                    .await
            })
            .await
            .expect("task")
        });
        assert!(ok.snapshot.expect("snapshot").is_new_version);
        let error = bad.expect_err("unknown video");
        assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
        let fetches: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fetches")
            .fetch_one(&store.reader)
            .await
            .expect("count");
        assert_eq!(fetches, 1);
        store.close().await;
    }

    /// The attempt writer keeps the foreign keys to `videos` itself (see `AttemptWriter::open`).
    #[tokio::test]
    async fn an_attempt_for_a_video_not_in_videos_fails_whatever_its_status() {
        let (_dir, store) = store().await;
        let hash = first_hash();
        let content = content("x", "https://p.douyinpic.com/x.jpeg");
        for status in [
            VideoStatus::Ok,
            VideoStatus::Mended {
                ok_since: timestamp(Utc::now()),
            },
            VideoStatus::NotFound,
            VideoStatus::Failing,
            VideoStatus::Untouched,
        ] {
            let stores_a_snapshot = matches!(status, VideoStatus::Ok | VideoStatus::Mended { .. });
            let snapshot = stores_a_snapshot.then(|| SnapshotInput {
                content: content.clone(),
                content_hash: hash.clone(),
                raw: RawItem::new("{}"),
            });
            let error = store
                .record_attempt(ok_attempt(UNWATCHED, snapshot, status.clone()))
                .await
                .expect_err("unknown video");
            let text = error.to_string();
            assert!(
                text.contains("FOREIGN KEY") && text.contains("7299999999999999999 is not in"),
                "{status:?}: {text}"
            );
        }
        let rows: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM fetches) + (SELECT COUNT(*) FROM snapshot_versions) \
             + (SELECT COUNT(*) FROM latest_snapshot_summaries)",
        )
        .fetch_one(&store.reader)
        .await
        .expect("count");
        assert_eq!(rows, 0, "nothing of a failed attempt is stored");
        store.close().await;
    }

    /// Figures as `api_info` parsing leaves them: each part present or not, totals with any
    /// number of parts, the largest numbers SQLite stores.
    fn quota_figures() -> impl Strategy<Value = QuotaRow> {
        let number = prop_oneof![0..20_000i64, Just(i64::MAX), Just(0)];
        (
            proptest::option::of(number.clone()),
            proptest::option::of(number.clone()),
            proptest::option::of(number),
            proptest::option::of(proptest::collection::vec(0..100_000u64, 0..5)),
            proptest::option::of((2000..2100i32, 1..=12u32, 1..=28u32)),
        )
            .prop_map(|(today, max, total, parts, expires)| QuotaRow {
                server_time: None,
                calls_today: today,
                calls_max: max,
                calls_total: total,
                calls_total_parts: parts.map(|p| serde_json::to_string(&p).expect("json")),
                expires_on: expires.and_then(|(y, m, d)| {
                    NaiveDate::from_ymd_opt(y, m, d).map(|date| date.to_string())
                }),
                api_info: None,
            })
    }

    /// A database with every migration applied, opened plainly (for tests that hold the views'
    /// SQL to the Rust that mirrors it).
    fn migrated_database() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                Store::open(SqliteConnectOptions::new().filename(&path))
                    .await
                    .expect("open")
                    .close()
                    .await;
            });
        let conn = rusqlite::Connection::open(&path).expect("open");
        (dir, conn)
    }

    /// The writer keeps an `api_info` only where the view would not give it back: the two must
    /// agree on what the view writes.
    #[test]
    fn the_rebuilt_api_info_is_what_the_quota_samples_view_writes() {
        let (_dir, conn) = migrated_database();
        proptest!(ProptestConfig::with_cases(512), |(quota in quota_figures())| {
            let tx = conn.unchecked_transaction().expect("transaction");
            tx.execute_batch(
                "INSERT INTO videos (video_id, added_at) VALUES ('7200000000000000001', 'now'); \
                 INSERT INTO fetches (id, video_id, started_at, finished_at, attempt, outcome) \
                 VALUES (1, '7200000000000000001', 'now', 'now', 1, 'ok')",
            )
            .expect("fetch");
            tx.execute(
                "INSERT INTO quota_readings (fetch_id, calls_today, calls_max, calls_total, \
                 calls_total_parts, expires_on) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    quota.calls_today,
                    quota.calls_max,
                    quota.calls_total,
                    quota.calls_total_parts,
                    quota.expires_on,
                ],
            )
            .expect("reading");
            let written: String = tx
                .query_row("SELECT api_info FROM quota_samples WHERE id = 1", [], |r| r.get(0))
                .expect("view");
            prop_assert_eq!(quota.rebuilt_api_info(), written);
            tx.rollback().expect("rollback");
        });
    }

    /// One pass at a time per database, however each process names it: through a link the lock
    /// is the file's own, which `export -o` refuses to write over.
    #[tokio::test]
    async fn a_pass_claim_holds_for_the_file_under_any_name() {
        let (dir, store) = store().await;
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(dir.path().join("t.db"), &link).expect("symlink");
        let linked = Store::open(SqliteConnectOptions::new().filename(&link))
            .await
            .expect("open through the link");
        let claim = linked.claim_pass().expect("the first claim");
        assert!(
            store.claim_pass().is_none(),
            "the same file, named directly"
        );
        assert!(linked.owns_file(&dir.path().join("t.db.pass-lock")));
        drop(claim);
        assert!(store.claim_pass().is_some());
        linked.close().await;
        store.close().await;
    }

    /// A 4013 to a call sent just after Beijing midnight, by a server whose clock was still on
    /// the day before, is that day's: the new day's passes must not find their quota used up.
    #[tokio::test]
    async fn figures_counted_against_the_day_before_are_not_the_new_days() {
        let (_dir, store) = store().await;
        let video = id("7200000000000000001");
        store
            .add_videos(std::slice::from_ref(&video), None, Utc::now())
            .await
            .expect("add");
        // Beijing midnight of 2026-12-04 is 16:00 UTC.
        let at = |text: &str| text.parse::<DateTime<Utc>>().expect("instant");
        let answers = [
            ("2026-12-03T15:59:00Z", "Beijing/2026-12-03 23:58:59", 9_990),
            (
                "2026-12-03T16:00:01Z",
                "Beijing/2026-12-03 23:59:59",
                10_000,
            ),
            ("2026-12-03T16:00:05Z", "Beijing/2026-12-04 00:00:04", 3),
        ];
        for (started, server_time, today) in answers {
            let info = ApiInfo {
                today: Some(today),
                max: Some(10_000),
                ..ApiInfo::default()
            };
            let api_info = format!("today:{today} max:10000");
            store
                .record_attempt(AttemptRecord {
                    started_at: at(started),
                    finished_at: at(started),
                    outcome: Outcome::ApiError,
                    error_code: Some("4013"),
                    quota: Some(QuotaInput {
                        api_info: &api_info,
                        parsed: Some(&info),
                        server_time: Some(server_time),
                    }),
                    ..ok_attempt(video.as_str(), None, VideoStatus::Untouched)
                })
                .await
                .expect("stored");
        }
        let day = |text: &str| text.parse::<NaiveDate>().expect("day");
        assert_eq!(
            store.day_quota(day("2026-12-03")).await.expect("quota"),
            (Some(10_000), Some(10_000))
        );
        assert_eq!(
            store.day_quota(day("2026-12-04")).await.expect("quota"),
            (Some(3), Some(10_000))
        );
        store.close().await;
    }

    /// `quota_samples.quota_day` (SQL, migration 0009) and `counted_day` (Rust, which the quota
    /// guard and the 4013 pause use) must name the same day for every answer.
    #[test]
    fn the_quota_samples_view_counts_an_answer_to_the_day_counted_day_does() {
        let (_dir, conn) = migrated_database();
        // Calls around a Beijing midnight (16:00 UTC) and at any time of day; server times on
        // the day before, the same day, the day after, written oddly, or missing.
        let midnight = "2026-12-03T16:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("instant");
        let started = prop_oneof![
            (-1_200_000i64..1_200_000)
                .prop_map(move |ms| midnight + chrono::Duration::milliseconds(ms)),
            (0i64..86_400_000 * 3)
                .prop_map(move |ms| midnight + chrono::Duration::milliseconds(ms)),
        ];
        let server_time = proptest::option::of(prop_oneof![
            (-2i64..=2, 0u32..24, 0u32..60).prop_map(|(days, hour, minute)| {
                let day = NaiveDate::from_ymd_opt(2026, 12, 4).expect("day")
                    + chrono::Duration::days(days);
                format!("Beijing/{day} {hour:02}:{minute:02}:00")
            }),
            Just("Beijing/2026-12-3 23:59:59".to_owned()),
            Just("Beijing/02026-12-3 23:59:59".to_owned()),
            Just("Beijing/2026-12-03".to_owned()),
            Just("2026-12-03 23:59:59".to_owned()),
            Just("yesterday".to_owned()),
        ]);
        proptest!(ProptestConfig::with_cases(1024), |(started in started, server_time in server_time)| {
            let tx = conn.unchecked_transaction().expect("transaction");
            tx.execute(
                "INSERT INTO videos (video_id, added_at) VALUES ('7200000000000000001', 'now')",
                [],
            )
            .expect("video");
            tx.execute(
                "INSERT INTO fetches (id, video_id, started_at, finished_at, attempt, outcome) \
                 VALUES (1, '7200000000000000001', ?1, ?1, 1, 'ok')",
                [timestamp(started)],
            )
            .expect("fetch");
            tx.execute(
                "INSERT INTO quota_readings (fetch_id, server_time, calls_today) VALUES (1, ?1, 1)",
                [&server_time],
            )
            .expect("reading");
            let counted: String = tx
                .query_row("SELECT quota_day FROM quota_samples WHERE id = 1", [], |r| r.get(0))
                .expect("view");
            prop_assert_eq!(
                crate::quota::counted_day(started, server_time.as_deref()).to_string(),
                counted
            );
            tx.rollback().expect("rollback");
        });
    }

    fn first_hash() -> String {
        content("x", "https://p.douyinpic.com/x.jpeg").hash()
    }
}
