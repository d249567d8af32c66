//! Storing attempts: the group commit's statements, on a rusqlite connection of its own.
//!
//! Every call of a pass is stored, thousands a minute, so this is the store's hot path. Through
//! sqlx every statement, bound value and result row of a group crossed to sqlx's SQLite thread and
//! back, and cost about as much CPU as SQLite's own work (issue 5). Here a group is written by one
//! blocking task, with plain statements prepared once and bound by reference.
//!
//! The connection is used only while the store's writer lock is held (see `Store::record_attempt`),
//! so it never competes with the sqlx write connection for SQLite's write lock. It is configured as
//! that connection is: see [`AttemptWriter::open`].

use std::path::Path;
use std::sync::LazyLock;

use rusqlite::types::ValueRef;
use rusqlite::{
    CachedStatement, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
    params,
};

use super::{AttemptRow, BUSY_TIMEOUT, SnapshotOutcome, SnapshotRow, StoredAttempt, VideoStatus};
use crate::content::FIELD_NAMES;
use crate::error_code::{Policy, lookup};

/// The pragmas that govern writing, copied from the sqlx write connection, whose options cannot
/// be read back: limits a caller set there (`query_only`, `max_page_count`) hold here too.
pub(super) const MIRRORED_PRAGMAS: [&str; 4] = [
    "query_only",
    "max_page_count",
    "synchronous",
    "journal_size_limit",
];

/// The connection that stores attempts.
pub(super) struct AttemptWriter {
    conn: Connection,
}

impl AttemptWriter {
    /// Opens the (existing, migrated) database at `path`, with `pragmas` (name, value) set.
    pub(super) fn open(path: &Path, pragmas: &[(&str, i64)]) -> rusqlite::Result<AttemptWriter> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // The schema's `CHECK (x IN (…))` constraints make SQLite build a temporary b-tree for
        // the list on every statement run: about a tenth of this connection's work per fetch.
        // What this connection writes there comes from Rust enums (`Outcome`, `VideoStatus`) and
        // the fixed statements below; a test checks every value of them against the schema.
        conn.pragma_update(None, "ignore_check_constraints", true)?;
        // SQLite's check of `fetches.snapshot_id` reads the version's row, about a page per fetch
        // (a random read of the file once the newest versions outgrow the cache). The statements
        // below keep the foreign keys themselves: a snapshot id is the one this transaction has
        // just found or stored, a pass id is the store's own `passes` row, and an attempt for a
        // video missing from `videos` fails with SQLite's own error (see `update_video`). The
        // crash test runs `foreign_key_check` on what passes leave behind.
        conn.pragma_update(None, "foreign_keys", false)?;
        for (name, value) in pragmas {
            conn.pragma_update(None, name, value)?;
        }
        Ok(AttemptWriter { conn })
    }

    /// Closes the connection, reporting what SQLite says.
    pub(super) fn close(self) -> rusqlite::Result<()> {
        self.conn.close().map_err(|(_, error)| error)
    }

    /// Stores `group` in one `BEGIN IMMEDIATE` transaction: all of it, or (on an error) none of it.
    /// The outcomes come in the group's order.
    pub(super) fn write(&mut self, group: &[AttemptRow]) -> rusqlite::Result<Vec<StoredAttempt>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored = {
            let mut statements = Statements::new(&tx);
            group
                .iter()
                .map(|row| write_attempt(&mut statements, row))
                .collect::<rusqlite::Result<_>>()?
        };
        tx.commit()?;
        Ok(stored)
    }
}

/// The statements of one transaction, each taken from the connection's cache once and kept until
/// the transaction ends: taking a statement from the cache and giving it back hashes its SQL,
/// which cost about a tenth of this writer's instructions when done per statement run.
struct Statements<'t> {
    tx: &'t Transaction<'t>,
    /// By the address of their `'static` SQL text, which identifies them.
    prepared: Vec<(&'static str, CachedStatement<'t>)>,
}

impl<'t> Statements<'t> {
    fn new(tx: &'t Transaction<'t>) -> Statements<'t> {
        Statements {
            tx,
            prepared: Vec::new(),
        }
    }

    /// The prepared statement for `sql`.
    fn prepare(&mut self, sql: &'static str) -> rusqlite::Result<&mut CachedStatement<'t>> {
        let at = match self
            .prepared
            .iter()
            .position(|(text, _)| std::ptr::eq(*text, sql))
        {
            Some(at) => at,
            None => {
                self.prepared.push((sql, self.tx.prepare_cached(sql)?));
                self.prepared.len() - 1
            }
        };
        Ok(&mut self.prepared[at].1)
    }
}

/// One attempt's rows: its snapshot (a new version, or the latest seen again), its fetch, its quota
/// reading and its video's status.
fn write_attempt(
    statements: &mut Statements<'_>,
    row: &AttemptRow,
) -> rusqlite::Result<StoredAttempt> {
    let snapshot = match &row.snapshot {
        Some(snapshot) => Some(write_snapshot(statements, row, snapshot)?),
        None => None,
    };
    statements
        .prepare(
            "INSERT INTO fetches (pass_id, video_id, started_at, finished_at, attempt, outcome, \
         http_status, error_code, error, reason, message, charged, request_id, snapshot_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            row.pass_id,
            row.video_id,
            row.started_at,
            row.finished_at,
            row.attempt,
            row.outcome,
            row.http_status,
            row.error_code,
            row.error,
            row.reason,
            row.message,
            row.charged,
            row.request_id,
            snapshot.as_ref().map(|s| s.snapshot_id),
        ])?;
    let fetch_id = statements.tx.last_insert_rowid();
    if let Some(quota) = &row.quota {
        statements
            .prepare(
                "INSERT INTO quota_readings (fetch_id, server_time, calls_today, calls_max, \
             calls_total, calls_total_parts, expires_on, api_info) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                fetch_id,
                quota.server_time,
                quota.calls_today,
                quota.calls_max,
                quota.calls_total,
                quota.calls_total_parts,
                quota.expires_on,
                quota.api_info,
            ])?;
    }
    let change = update_video(statements, row)?;
    Ok(StoredAttempt {
        fetch_id,
        snapshot,
        became_not_found: change.became_not_found,
        left_ok_since: change.left_ok_since,
    })
}

/// The latest version seen again (its `last_seen_at` and `seen_count` move, in its summary: see
/// migration 0006), or a new version with the fields that differ from the latest one.
fn write_snapshot(
    statements: &mut Statements<'_>,
    row: &AttemptRow,
    snapshot: &SnapshotRow,
) -> rusqlite::Result<SnapshotOutcome> {
    let latest = statements
        .prepare(
            "SELECT id, version, content_hash IS ?2 FROM latest_snapshot_summaries \
             WHERE video_id = ?1",
        )?
        .query_row(params![row.video_id, snapshot.content_hash], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })
        .optional()?;
    if let Some((snapshot_id, version, true)) = latest {
        statements.prepare(
            "UPDATE latest_snapshot_summaries SET last_seen_at = ?2, seen_count = seen_count + 1 \
             WHERE id = ?1",
        )?
        .execute(params![snapshot_id, row.finished_at])?;
        return Ok(SnapshotOutcome {
            snapshot_id,
            version,
            is_new_version: false,
            changed_fields: Vec::new(),
        });
    }
    let changed_fields = match latest {
        Some((previous_id, _, _)) => changed_fields(statements, previous_id, snapshot)?,
        None => Vec::new(),
    };
    let version = latest.map_or(0, |(_, version, _)| version) + 1;
    let changed_text = serde_json::to_string(&changed_fields)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    // Found in the answer only now that the content is known to be new.
    let raw = snapshot.raw.text().ok_or_else(|| {
        rusqlite::Error::ToSqlConversionFailure("the answer's item could not be found again".into())
    })?;
    let insert = statements.prepare(INSERT_SNAPSHOT_SQL.as_str())?;
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
        &row.video_id,
        &version,
        &snapshot.content_hash,
        &row.finished_at,
    ];
    values.extend(snapshot.fields.iter().map(|f| f as &dyn rusqlite::ToSql));
    values.push(&raw);
    values.push(&changed_text);
    insert.execute(values.as_slice())?;
    Ok(SnapshotOutcome {
        snapshot_id: statements.tx.last_insert_rowid(),
        version,
        is_new_version: true,
        changed_fields,
    })
}

/// `INSERT INTO snapshot_versions`: video, version, hash, the time it was first (and last) seen, the
/// [`FIELD_NAMES`] columns, `raw` and `changed_fields`.
static INSERT_SNAPSHOT_SQL: LazyLock<String> = LazyLock::new(|| {
    let placeholders: Vec<String> = (5..5 + FIELD_NAMES.len() + 2)
        .map(|n| format!("?{n}"))
        .collect();
    format!(
        "INSERT INTO snapshot_versions (video_id, version, content_hash, first_seen_at, last_seen_at, \
         seen_count, {}, raw, changed_fields) VALUES (?1, ?2, ?3, ?4, ?4, 1, {})",
        FIELD_NAMES.join(", "),
        placeholders.join(", ")
    )
});

/// The [`FIELD_NAMES`] columns of one snapshot.
static SELECT_FIELDS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM snapshot_versions WHERE id = ?1",
        FIELD_NAMES.join(", ")
    )
});

/// The [`FIELD_NAMES`] whose value in `snapshot` differs from snapshot `previous_id`'s. A stored
/// value that is not text (a hand edit) differs from any text, as SQL's `IS NOT` would have it.
fn changed_fields(
    statements: &mut Statements<'_>,
    previous_id: i64,
    snapshot: &SnapshotRow,
) -> rusqlite::Result<Vec<&'static str>> {
    statements
        .prepare(SELECT_FIELDS_SQL.as_str())?
        .query_row([previous_id], |previous| {
            let mut changed = Vec::new();
            for (i, (name, value)) in FIELD_NAMES.iter().zip(&snapshot.fields).enumerate() {
                let same = match previous.get_ref(i)? {
                    ValueRef::Null => value.is_none(),
                    ValueRef::Text(text) => value.as_deref().map(str::as_bytes) == Some(text),
                    _ => false,
                };
                if !same {
                    changed.push(*name);
                }
            }
            Ok(changed)
        })
}

/// Moves the video's status and failure count, and says what the caller needs to know of the
/// move. Fails, as the foreign keys to `videos` would, when the video has no row there.
fn update_video(
    statements: &mut Statements<'_>,
    row: &AttemptRow,
) -> rusqlite::Result<VideoChange> {
    // An unusable `0000` answer is known by our key (`item_mismatch`, ...), not by "success".
    let failure_key = match row.error_code.as_deref() {
        Some(code) if lookup(code).map(|known| known.policy) != Some(Policy::Success) => Some(code),
        _ => row.error.as_deref(),
    };
    let failed = params![row.video_id, row.finished_at, failure_key, row.message];
    let mut change = VideoChange::default();
    match &row.video_status {
        VideoStatus::Ok => {
            statements
                .prepare(
                    "UPDATE videos SET \
                 status_changed_at = CASE WHEN status = 'ok' THEN status_changed_at ELSE ?2 END, \
                 status = 'ok', last_fetched_at = ?2, last_ok_at = ?2, consecutive_failures = 0, \
                 last_error_code = NULL, last_error = NULL WHERE video_id = ?1",
                )?
                .execute(params![row.video_id, row.finished_at])
                .and_then(|updated| one_video(updated, row))?;
        }
        VideoStatus::Mended { ok_since } => {
            // Only a video its failures left `failing` goes back to being ok since `ok_since`.
            statements
                .prepare(
                    "UPDATE videos SET \
                 status_changed_at = CASE WHEN status = 'ok' THEN status_changed_at \
                   WHEN status = 'failing' THEN ?3 ELSE ?2 END, \
                 status = 'ok', last_fetched_at = ?2, last_ok_at = ?2, consecutive_failures = 0, \
                 last_error_code = NULL, last_error = NULL WHERE video_id = ?1",
                )?
                .execute(params![row.video_id, row.finished_at, ok_since])
                .and_then(|updated| one_video(updated, row))?;
        }
        VideoStatus::NotFound => {
            change.became_not_found = statements
                .prepare(
                    "UPDATE videos SET \
                 status_changed_at = CASE WHEN status = 'not_found' THEN status_changed_at \
                   ELSE ?2 END, \
                 status = 'not_found', last_fetched_at = ?2, last_error_code = ?3, \
                 last_error = ?4, consecutive_failures = consecutive_failures + 1 \
                 WHERE video_id = ?1 RETURNING status_changed_at = ?2",
                )?
                .query_row(failed, |r| r.get::<_, bool>(0))
                .optional()?
                .ok_or_else(|| unknown_video(row))?;
        }
        VideoStatus::Failing => {
            // Failures are rare: the extra read costs nothing that matters.
            change.left_ok_since = statements
                .prepare(
                    "SELECT status_changed_at FROM videos WHERE video_id = ?1 AND status = 'ok'",
                )?
                .query_row([&row.video_id], |r| r.get::<_, Option<String>>(0))
                .optional()?
                .flatten();
            statements
                .prepare(
                    "UPDATE videos SET \
                 status_changed_at = CASE WHEN status IN ('failing', 'not_found') \
                   THEN status_changed_at ELSE ?2 END, \
                 status = CASE WHEN status = 'not_found' THEN status ELSE 'failing' END, \
                 last_fetched_at = ?2, last_error_code = ?3, last_error = ?4, \
                 consecutive_failures = consecutive_failures + 1 WHERE video_id = ?1",
                )?
                .execute(failed)
                .and_then(|updated| one_video(updated, row))?;
        }
        VideoStatus::Untouched => {
            let known = statements
                .prepare("SELECT 1 FROM videos WHERE video_id = ?1")?
                .exists([&row.video_id])?;
            one_video(usize::from(known), row)?;
        }
    }
    Ok(change)
}

/// What an attempt did to its video's status, for the caller (see [`StoredAttempt`]).
#[derive(Default)]
struct VideoChange {
    became_not_found: bool,
    left_ok_since: Option<String>,
}

/// Ok when a statement found the attempt's video (`rows` is the count it updated).
fn one_video(rows: usize, row: &AttemptRow) -> rusqlite::Result<()> {
    if rows == 0 {
        Err(unknown_video(row))
    } else {
        Ok(())
    }
}

/// SQLite's foreign key failure, for an attempt whose video has no row in `videos`.
fn unknown_video(row: &AttemptRow) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
        Some(format!(
            "FOREIGN KEY constraint failed: video {} is not in `videos`",
            row.video_id
        )),
    )
}
