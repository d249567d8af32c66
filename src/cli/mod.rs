//! The command line: parses arguments, loads settings, runs one command, maps the result to an exit code.
//!
//! Logs go to stderr; what a command reports (tables, `--json`) goes to stdout, through
//! [`outln!`] and [`out`], never `println!`: that panics when the reader has gone (`| head`).

#![deny(clippy::print_stdout)]

/// Like `println!`, but an error writing stdout is returned (as a [`Failure`]) instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod demo;
mod export;
mod show;
mod watch;

use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::client::{ApiClient, error_chain};
use crate::collector::{Collector, PASS_END_WAIT, PassOptions, StopReason, Trigger};
use crate::daemon::{self, Schedule};
use crate::health::HealthCheck;
use crate::notify::{Delivery, Notifier};
use crate::settings::{LogFormat, LogSettings, Needs, Settings, SettingsError};
use crate::simulator::{Simulator, SimulatorArgs};
use crate::store::Store;
use crate::video_id::{VideoId, WatchInput, parse_watch_input};

/// douyin-watch: keeps versioned snapshots of Douyin videos through onebound's item_get_video API.
#[derive(Debug, Parser)]
#[command(name = "douyin-watch", version, about, long_about = None)]
pub struct Cli {
    /// TOML file with settings (see config/default.toml for every key).
    #[arg(long, global = true, env = "DOUYIN_WATCH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// SQLite database URL; overrides database.url.
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
    /// Whether `--config` was given on the command line rather than by `DOUYIN_WATCH_CONFIG`.
    #[arg(skip)]
    config_on_command_line: bool,
}

impl Cli {
    /// Parses the process's arguments (exiting with clap's message on bad usage).
    fn from_process() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.config_on_command_line =
            matches.value_source("config") == Some(clap::parser::ValueSource::CommandLine);
        cli
    }

    /// `demo` and `simulate` bring their own settings and database: a `--config` or
    /// `--database` given to them would be silently ignored, so it is refused. A config file
    /// named by `DOUYIN_WATCH_CONFIG` is the environment's, not this command's, and is let be.
    fn refuse_settings_for_self_contained_commands(&self) -> Result<(), Failure> {
        let name = match self.command {
            Command::Demo(_) => "demo",
            Command::Simulate(_) => "simulate",
            _ => return Ok(()),
        };
        let flag = if self.database.is_some() {
            "--database"
        } else if self.config_on_command_line {
            "--config"
        } else {
            return Ok(());
        };
        let instead = if name == "demo" {
            " (`demo --dir DIR` keeps its database in DIR)"
        } else {
            " (see `simulate --help` for its options)"
        };
        Err(Failure::Usage(anyhow::anyhow!(
            "`{name}` runs on settings of its own and does not use {flag}{instead}"
        )))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a collection pass on every cron tick until SIGINT/SIGTERM.
    Run,
    /// Run one pass now over the active watch list (or the given ids) and print a summary.
    Fetch {
        /// Video ids to fetch instead of the whole watch list (they must be in it).
        ids: Vec<String>,
    },
    /// Add, remove or list watched videos.
    Watch {
        #[command(subcommand)]
        action: watch::WatchCommand,
    },
    /// Show the versions of one video and what changed in each.
    History {
        /// The video id.
        id: String,
        /// Show each change as `field: before → after` (coloured on a terminal).
        #[arg(long)]
        diff: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show today's call quota: used, max, remaining, expiry, next reset.
    Quota {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show failed calls grouped by error code.
    Failures {
        /// How far back to look, e.g. "24h", "7d".
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Only this error code (or failure key such as timeout, http_502).
        #[arg(long)]
        code: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete call-log rows older than the retention settings now (snapshots are kept).
    Prune,
    /// Lift a pause after an account-level error now (once the key or secret is fixed): the next
    /// pass sends one call first, and pauses again if the account still fails.
    Resume,
    /// Exit 0 when the database answers and fewer than 3 cron ticks have come since the last pass.
    Healthcheck,
    /// Write snapshots, fetches or quota samples as CSV or JSON Lines (streamed).
    Export(export::ExportArgs),
    /// Print a shell completion script, e.g. `douyin-watch completions bash > /etc/bash_completion.d/douyin-watch`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Show or check the effective configuration.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Serve a local simulator of onebound's API (for the demo, tests and benchmarks).
    Simulate(SimulatorArgs),
    /// Run the simulator and the daemon against it with sample videos, then show the results.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML (the key shortened, the secret hidden).
    Show,
    /// Validate the configuration, including what `run` needs; exit 0 when valid, 2 when not.
    Check,
}

/// Exit codes: 0 done, 1 anything else, 2 bad usage/input/configuration, 3 stopped by account or quota.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage, input or configuration: exit 2.
    Usage(anyhow::Error),
    /// Anything else: exit 1.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        if error.downcast_ref::<SettingsError>().is_some() {
            Failure::Usage(error)
        } else {
            Failure::Other(error)
        }
    }
}

impl From<SettingsError> for Failure {
    fn from(error: SettingsError) -> Failure {
        Failure::Usage(error.into())
    }
}

/// Writes `text` to stdout. When the reader has gone, `main` ends the command quietly.
pub(crate) fn out(text: impl std::fmt::Display) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            Failure::Other(if e.kind() == std::io::ErrorKind::BrokenPipe {
                anyhow::Error::new(ReaderGone)
            } else {
                anyhow::Error::new(e).context("cannot write to stdout")
            })
        })
}

/// stdout's reader has gone (`douyin-watch failures | head`): it has what it wanted, so that is
/// no failure. Only a report's own write says so; a broken pipe elsewhere is a real error.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
struct ReaderGone;

/// How long the runtime waits for blocking tasks once the command is done.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The exit code for a pass stopped by an account-level error or the quota.
pub const EXIT_STOPPED: u8 = 3;

/// The exit code for a `fetch` cut short by SIGINT or SIGTERM (128 + SIGINT, as shells report
/// an interrupted command): videos were left for the next pass.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    crate::panics::install_hook();
    let cli = Cli::from_process();
    if let Err(e) = crate::panics::configure_failpoints() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match runtime_for(&cli.command).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Not a plain drop, which waits for every blocking task: a store write stuck behind another
    // process's lock (see `Store::close`) would hold the exit for as long as that lasts.
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    match result {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {}", error_chain(e.as_ref()));
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) if e.is::<ReaderGone>() => ExitCode::SUCCESS,
        Err(Failure::Other(e)) => {
            // One line, as for bad usage: a log line as well said it twice on a terminal.
            eprintln!("error: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The runtime a command runs on. `fetch` runs one pass and exits: its work (HTTP calls,
/// judging, queueing attempts for the group commit) runs on the thread that also polls the
/// sockets, so an answer is handled where it arrives, with no wake-up of a second worker thread
/// and no task moving between workers (SQLite runs on sqlx's own thread either way). The daemon,
/// the demo and the simulator keep a multi-thread runtime: they serve HTTP (metrics, the
/// simulator's answers) beside their passes.
fn runtime_for(command: &Command) -> tokio::runtime::Builder {
    match command {
        Command::Fetch { .. } => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    cli.refuse_settings_for_self_contained_commands()?;
    match cli.command {
        Command::Simulate(args) => {
            init_logging(&LogSettings::default());
            simulate(args).await
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Completions { shell } => export::completions(shell),
        Command::Config { action } => {
            let settings = load_settings(cli.config.as_deref(), cli.database.as_deref())?;
            match action {
                ConfigCommand::Show => out(settings.to_redacted_toml())?,
                ConfigCommand::Check => {
                    settings.require(Needs::Api)?;
                    outln!("configuration is valid")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let settings = load_settings(cli.config.as_deref(), cli.database.as_deref())?;
            init_logging(&settings.log);
            run_with_settings(command, settings).await
        }
    }
}

/// Settings from the layers, with `--database` on top.
fn load_settings(
    file: Option<&std::path::Path>,
    database: Option<&str>,
) -> Result<Settings, SettingsError> {
    let mut settings = Settings::load(file)?;
    crate::panics::conceal(settings.api.secret.expose_secret());
    crate::panics::conceal(&settings.api.key);
    if let Some(url) = database {
        settings.database.url = url.to_owned();
        settings.database_options()?;
    }
    Ok(settings)
}

async fn run_with_settings(command: Command, settings: Settings) -> Result<ExitCode, Failure> {
    let needs = match command {
        Command::Run | Command::Fetch { .. } => Needs::Api,
        _ => Needs::Database,
    };
    settings.require(needs)?;
    let store = open_store(&settings).await?;
    let result = match command {
        Command::Run => run_daemon(&settings, store.clone()).await,
        Command::Fetch { ids } => fetch(&settings, store.clone(), ids).await,
        Command::Watch { action } => watch::run(action, &settings, &store).await,
        Command::History { id, diff, json } if diff => show::history_diff(&store, &id, json).await,
        Command::History { id, json, .. } => show::history(&store, &id, json).await,
        Command::Quota { json } => show::quota_with_schedule(&store, &settings, json).await,
        Command::Export(args) => export::export(&store, args).await,
        Command::Failures { since, code, json } => {
            show::failures(&store, since, code.as_deref(), json).await
        }
        Command::Healthcheck => healthcheck(&settings, &store).await,
        Command::Prune => prune(&settings, &store).await,
        Command::Resume => resume(&store).await,
        Command::Simulate(_)
        | Command::Demo(_)
        | Command::Config { .. }
        | Command::Completions { .. } => {
            unreachable!("handled before the database is opened")
        }
    };
    store.close().await;
    result
}

/// Opens the database named by the settings.
pub(crate) async fn open_store(settings: &Settings) -> Result<Store, Failure> {
    let options = settings.database_options()?;
    Ok(Store::open(options).await.map_err(anyhow::Error::from)?)
}

/// Builds the collector a pass needs.
pub(crate) fn collector(settings: &Settings, store: Store) -> Result<Collector, Failure> {
    let client = ApiClient::new(&settings.api).map_err(anyhow::Error::from)?;
    Ok(Collector::new(
        store,
        client,
        PassOptions::from_settings(settings),
    ))
}

/// The daemon's schedule from the settings.
pub(crate) fn schedule(settings: &Settings) -> Result<Schedule, SettingsError> {
    Ok(Schedule {
        cron: settings.cron()?,
        timezone: settings.timezone()?,
        run_on_start: settings.schedule.run_on_start,
        grace: settings.shutdown.grace,
        metrics_listen: settings.metrics_listen()?,
        retention: settings.retention.clone(),
    })
}

async fn run_daemon(settings: &Settings, store: Store) -> Result<ExitCode, Failure> {
    let (collector, delivery) = notifying(settings, collector(settings, store)?)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let result = daemon::run(
        collector,
        schedule(settings)?,
        shutdown,
        Arc::new(|_report| {}),
    )
    .await;
    if let Some(delivery) = delivery {
        delivery.finish(settings.shutdown.grace).await;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Adds the webhook notifier when `notify.webhook_url` is set.
fn notifying(
    settings: &Settings,
    collector: Collector,
) -> Result<(Collector, Option<Delivery>), Failure> {
    match settings.webhook_url()? {
        None => Ok((collector, None)),
        Some(url) => {
            let (notifier, delivery) = Notifier::start(url, settings.notify.timeout)
                .context("cannot build the webhook client")?;
            Ok((collector.with_notifier(notifier), Some(delivery)))
        }
    }
}

async fn prune(settings: &Settings, store: &Store) -> Result<ExitCode, Failure> {
    if !settings.retention.enabled() {
        outln!(
            "nothing to prune: retention.fetches_days and retention.quota_samples_days are 0 (keep everything)"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let (fetches_before, quota_before) = settings.retention.cutoffs(chrono::Utc::now());
    let pruned = store
        .prune(fetches_before, quota_before)
        .await
        .map_err(anyhow::Error::from)?;
    outln!(
        "pruned {} fetches and {} quota samples",
        pruned.fetches,
        pruned.quota_samples
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn resume(store: &Store) -> Result<ExitCode, Failure> {
    let ended = store
        .end_pauses(chrono::Utc::now())
        .await
        .map_err(anyhow::Error::from)?;
    for pause in &ended {
        outln!(
            "lifted the pause until {} ({}{})",
            pause.until,
            pause.cause,
            pause
                .error_code
                .as_deref()
                .map(|code| format!(" after {code}"))
                .unwrap_or_default()
        )?;
    }
    match store
        .active_pause(chrono::Utc::now())
        .await
        .map_err(anyhow::Error::from)?
    {
        Some(pause) => outln!(
            "the pause until {} ({}) stays: the daily max was reached, and onebound's count \
             starts again at Beijing midnight",
            pause.until,
            pause.cause
        )?,
        None if ended.is_empty() => outln!("no pause in force: passes make their calls")?,
        None => outln!("the next pass sends one call first, and pauses again if it fails")?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn healthcheck(settings: &Settings, store: &Store) -> Result<ExitCode, Failure> {
    let now = chrono::Utc::now();
    let check = HealthCheck {
        ticks: schedule(settings)?.ticks()?,
        started_at: None,
    };
    let health = check.check(store, now).await;
    outln!(
        "{}",
        serde_json::to_string(&health).map_err(anyhow::Error::from)?
    )?;
    Ok(if health.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn fetch(settings: &Settings, store: Store, ids: Vec<String>) -> Result<ExitCode, Failure> {
    let only = if ids.is_empty() {
        None
    } else {
        let ids = parse_ids(&ids)?;
        // A removed video is not called either: every call may be billed.
        let unwatched = store
            .unwatched_video_ids(&ids)
            .await
            .map_err(anyhow::Error::from)?;
        if !unwatched.is_empty() {
            let list: Vec<String> = unwatched.iter().map(ToString::to_string).collect();
            return Err(Failure::Usage(anyhow::anyhow!(
                "not watched (never added, or removed): {} (add with `douyin-watch watch add ID`, \
                 which also re-activates a removed one)",
                list.join(", ")
            )));
        }
        Some(ids)
    };
    let (collector, delivery) = notifying(settings, collector(settings, store)?)?;
    let bar = progress_bar();
    let collector = match &bar {
        Some(bar) => {
            let bar = bar.clone();
            collector.with_progress(Arc::new(move |totals| {
                bar.set_length(totals.videos);
                bar.set_position(
                    totals.fetched_ok
                        + totals.not_found
                        + totals.failed
                        + totals.skipped
                        + totals.removed,
                );
                bar.set_message(format!(
                    "ok {}, not found {}, failed {}, skipped {}, removed {}",
                    totals.fetched_ok,
                    totals.not_found,
                    totals.failed,
                    totals.skipped,
                    totals.removed
                ));
            }))
        }
        None => collector,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    // After a signal the pass gets `shutdown.grace` to finish its calls and stores, then
    // abandons them and records its end, as the daemon's does. A store waiting out another
    // process's write lock would hold it for minutes: it is given up shortly after.
    let grace_over = async {
        shutdown.cancelled().await;
        tokio::time::sleep(settings.shutdown.grace + PASS_END_WAIT).await;
    };
    let report = tokio::select! {
        report = collector.run_pass(Trigger::Fetch, only, &shutdown) => report,
        () = grace_over => {
            tracing::warn!(
                grace = ?settings.shutdown.grace,
                "calls or stores still unfinished after the grace period are abandoned"
            );
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    drop(collector);
    if let Some(delivery) = delivery {
        delivery.finish(settings.shutdown.grace).await;
    }
    let report = report.map_err(anyhow::Error::from)?;
    let code = match &report.stop {
        Some(stop) if stop.is_account_or_quota() => ExitCode::from(EXIT_STOPPED),
        Some(StopReason::Shutdown) => ExitCode::from(EXIT_INTERRUPTED),
        _ => ExitCode::SUCCESS,
    };
    match outln!("{}", report.summary()) {
        // A script that closed our stdout still learns from the exit code how the pass ended.
        Err(Failure::Other(e)) if e.is::<ReaderGone>() => Ok(code),
        written => written.map(|()| code),
    }
}

/// A progress bar on stderr when it is a terminal; none when output goes to a file or pipe.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let style = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} videos  {msg}",
    )
    .ok()?
    .progress_chars("=> ");
    Some(indicatif::ProgressBar::new(0).with_style(style))
}

/// Parses ids, or Douyin video URLs and share text holding one (as `watch add` takes them, but
/// without resolving short links: that needs the network), naming every bad one. Each id comes
/// once, in the order first given: an id named twice must not become two paid calls.
pub(crate) fn parse_ids(entries: &[String]) -> Result<Vec<VideoId>, Failure> {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut bad = Vec::new();
    for entry in entries {
        match parse_watch_input(entry) {
            Ok(WatchInput::Id(id)) => {
                if seen.insert(id.clone()) {
                    ids.push(id);
                }
            }
            Ok(WatchInput::ShortLink(link)) => bad.push(format!(
                "{link}: a short link; only `watch add` resolves those, so give the video id \
                 or its douyin.com/video/ URL here"
            )),
            Err(e) => bad.push(e.to_string()),
        }
    }
    if bad.is_empty() {
        Ok(ids)
    } else {
        Err(Failure::Usage(anyhow::anyhow!(bad.join("; "))))
    }
}

async fn simulate(args: SimulatorArgs) -> Result<ExitCode, Failure> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    Simulator::run_until(args.listen(), args.config(), shutdown)
        .await
        .with_context(|| format!("cannot serve the simulator on {}", args.listen()))?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `token` on the first SIGINT or SIGTERM.
pub async fn cancel_on_signal(token: CancellationToken) {
    shutdown_signal().await;
    token.cancel();
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// Logs to stderr, pretty or JSON, filtered by `RUST_LOG` or `log.level`.
pub(crate) fn init_logging(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (the demo calls commands in-process) keeps the first subscriber.
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[&str]) -> Vec<String> {
        list.iter().map(|entry| entry.to_string()).collect()
    }

    #[test]
    fn ids_come_as_ids_or_video_urls_each_once() {
        let ids = parse_ids(&entries(&[
            "7118694749548072205",
            "https://www.douyin.com/video/7203810298745328956",
            "看看这个 https://www.iesdouyin.com/share/video/7118694749548072205/?x=1",
            " 7203810298745328956 ",
        ]))
        .unwrap_or_else(|_| panic!("valid ids"));
        let ids: Vec<&str> = ids.iter().map(VideoId::as_str).collect();
        assert_eq!(ids, ["7118694749548072205", "7203810298745328956"]);
    }

    #[test]
    fn every_bad_entry_is_named_and_a_short_link_is_sent_to_watch_add() {
        let Err(Failure::Usage(error)) = parse_ids(&entries(&[
            "7118694749548072205",
            "https://v.douyin.com/iRNBho6u/",
            "abc",
            "https://www.douyin.com/user/x",
        ])) else {
            panic!("bad entries must be refused as bad usage");
        };
        let error = error.to_string();
        assert!(error.contains("https://v.douyin.com/iRNBho6u/"), "{error}");
        assert!(error.contains("watch add"), "{error}");
        assert!(error.contains("\"abc\""), "{error}");
        assert!(error.contains("/user/x"), "{error}");
        assert!(!error.contains("7118694749548072205"), "{error}");
    }
}
