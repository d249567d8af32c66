//! `watch add | remove | list`: the watch list.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;

use super::show::{self, escape_controls};
use super::{Failure, parse_ids};
use crate::settings::Settings;
use crate::short_link::ShortLinkResolver;
use crate::store::Store;
use crate::video_id::{VideoId, WatchInput, parse_watch_input};

#[derive(Debug, Subcommand)]
pub(super) enum WatchCommand {
    /// Add videos by id, Douyin URL or share text. All or nothing: one bad entry adds none.
    Add {
        /// Ids, video URLs (douyin.com/video/ID, iesdouyin.com/share/video/ID, ?modal_id=ID,
        /// v.douyin.com short links) or share text containing one.
        entries: Vec<String>,
        /// Also read entries from this file, one per line ("-" for standard input; # comments).
        #[arg(long, value_name = "FILE")]
        file: Option<String>,
        /// A label stored with the videos.
        #[arg(long)]
        label: Option<String>,
    },
    /// Stop watching videos; their history is kept.
    Remove {
        /// Video ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// List watched videos with status, versions, last fetch and last error.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(
    command: WatchCommand,
    settings: &Settings,
    store: &Store,
) -> Result<ExitCode, Failure> {
    match command {
        WatchCommand::Add {
            entries,
            file,
            label,
        } => add(settings, store, entries, file.as_deref(), label.as_deref()).await,
        WatchCommand::Remove { ids } => {
            let ids = parse_ids(&ids)?;
            let removed = store
                .remove_videos(&ids, Utc::now())
                .await
                .map_err(anyhow::Error::from)?;
            outln!(
                "removed {}, not watched {}{}",
                removed.removed.len(),
                removed.not_watched.len(),
                listed(&removed.not_watched)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        WatchCommand::List { json } => show::watch_list(store, json).await,
    }
}

fn listed(ids: &[String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(" ({})", ids.join(", "))
    }
}

/// An entry to add, and where a message about it should say it came from.
#[derive(Debug)]
struct Entry {
    text: String,
    /// "FILE line N" for an entry read from a file; None for one given on the command line.
    from: Option<String>,
}

/// Reads entries from a file or standard input: one per line, blank lines and `#` comments skipped.
fn read_entries(file: &str) -> anyhow::Result<Vec<Entry>> {
    let (name, bytes) = if file == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read entries from standard input")?;
        ("standard input", bytes)
    } else {
        let bytes = std::fs::read(file)
            .with_context(|| format!("cannot read entries from {}", escape_controls(file)))?;
        (file, bytes)
    };
    // The name goes into messages on the terminal.
    let name = &escape_controls(name);
    let text = String::from_utf8(bytes).map_err(|error| {
        // Windows' "Unicode" text (Notepad, PowerShell's `>`) is UTF-16 with a byte-order mark.
        let hint = if error.as_bytes().starts_with(&[0xFF, 0xFE])
            || error.as_bytes().starts_with(&[0xFE, 0xFF])
        {
            " (it is UTF-16: save it as UTF-8)"
        } else {
            " (save it as UTF-8)"
        };
        anyhow::anyhow!("cannot read entries from {name}: not UTF-8 text{hint}")
    })?;
    Ok(entries_in(name, &text))
}

/// The entries of `text`, each with its line number in `name`.
fn entries_in(name: &str, text: &str) -> Vec<Entry> {
    // Windows editors (Notepad, Excel's "CSV UTF-8") start the file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .map(|(at, line)| (at + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(number, line)| Entry {
            text: line.to_owned(),
            from: Some(format!("{name} line {number}")),
        })
        .collect()
}

async fn add(
    settings: &Settings,
    store: &Store,
    arguments: Vec<String>,
    file: Option<&str>,
    label: Option<&str>,
) -> Result<ExitCode, Failure> {
    let mut entries: Vec<Entry> = arguments
        .into_iter()
        .map(|text| Entry { text, from: None })
        .collect();
    if let Some(file) = file {
        entries.extend(read_entries(file).map_err(Failure::Usage)?);
    }
    if entries.is_empty() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "nothing to add: give ids or URLs, or --file FILE"
        )));
    }
    let mut ids: Vec<VideoId> = Vec::new();
    let mut bad: Vec<String> = Vec::new();
    let mut resolver: Option<ShortLinkResolver> = None;
    for entry in &entries {
        let problem = |error: &dyn std::fmt::Display| match &entry.from {
            Some(from) => format!("{from}: {error}"),
            None => error.to_string(),
        };
        match parse_watch_input(&entry.text) {
            Ok(WatchInput::Id(id)) => ids.push(id),
            Ok(WatchInput::ShortLink(link)) => {
                let resolver = match &mut resolver {
                    Some(resolver) => resolver,
                    None => resolver.insert(
                        ShortLinkResolver::new(settings.api.short_link_timeout)
                            .map_err(anyhow::Error::from)?,
                    ),
                };
                match resolver.resolve(&link).await {
                    Ok(id) => ids.push(id),
                    Err(e) => bad.push(problem(&e)),
                }
            }
            Err(e) => bad.push(problem(&e)),
        }
    }
    if !bad.is_empty() {
        for problem in &bad {
            eprintln!("invalid: {problem}");
        }
        return Err(Failure::Usage(anyhow::anyhow!(
            "nothing was added: {} of {} entries are invalid",
            bad.len(),
            entries.len()
        )));
    }
    ids.sort();
    ids.dedup();
    let added = store
        .add_videos(&ids, label, Utc::now())
        .await
        .map_err(anyhow::Error::from)?;
    outln!(
        "added {}, re-activated {}, already watched {}",
        added.added.len(),
        added.reactivated.len(),
        added.already_watched.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_utf8_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let utf16 = dir.path().join("ids.txt");
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(
            "7118694749548072205\r\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        std::fs::write(&utf16, bytes).expect("write");
        let error = read_entries(utf16.to_str().expect("path")).expect_err("UTF-16");
        assert!(
            error
                .to_string()
                .ends_with("not UTF-8 text (it is UTF-16: save it as UTF-8)"),
            "{error}"
        );

        let latin1 = dir.path().join("latin1.txt");
        std::fs::write(&latin1, b"7118694749548072205 caf\xe9\n").expect("write");
        let error = read_entries(latin1.to_str().expect("path")).expect_err("Latin-1");
        assert!(
            error
                .to_string()
                .ends_with("not UTF-8 text (save it as UTF-8)"),
            "{error}"
        );
    }

    #[test]
    fn a_file_name_cannot_drive_the_terminal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ids\u{1b}[2J.txt");
        std::fs::write(&path, "not-an-id\n").expect("write");
        let path = path.to_str().expect("path");
        let entries = read_entries(path).expect("read");
        let from = entries[0].from.as_deref().expect("from the file");
        assert!(from.ends_with("ids\\u{1b}[2J.txt line 1"), "{from}");
        assert!(!from.contains('\u{1b}'), "{from:?}");
    }

    #[test]
    fn entries_keep_their_line_numbers() {
        let text = "\u{feff}# ids\r\n7118694749548072205\r\n\r\n  not-an-id  \n";
        let entries: Vec<(String, Option<String>)> = entries_in("ids.txt", text)
            .into_iter()
            .map(|entry| (entry.text, entry.from))
            .collect();
        assert_eq!(
            entries,
            [
                (
                    "7118694749548072205".to_owned(),
                    Some("ids.txt line 2".to_owned())
                ),
                ("not-an-id".to_owned(), Some("ids.txt line 4".to_owned())),
            ]
        );
    }
}
