//! `demo`: the simulator and the daemon together on loopback, so a newcomer sees the whole thing
//! work without a key: passes on a seconds-level cron, new versions, a not-found video, injected
//! faults retried, then the watch list, a history, the quota and the failures.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Failure, cancel_on_signal, collector, init_logging, open_store, schedule, show};
use crate::daemon;
use crate::settings::{LogSettings, Settings};
use crate::simulator::{Fault, Simulator, SimulatorConfig};
use crate::video_id::VideoId;

/// Sample videos: the API document's example id, a few more, and one the simulator does not know.
const SAMPLE_IDS: [&str; 6] = [
    "7118694749548072205",
    "7203810298745328956",
    "7265123498761234567",
    "7301234567890123456",
    "7312345678901234567",
    "7000000000000000404",
];
const NOT_FOUND_ID: &str = "7000000000000000404";

#[derive(Debug, Clone, clap::Args)]
pub(super) struct DemoArgs {
    /// How many passes to watch before showing the results.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    passes: u32,
    /// Where to keep the demo database (default: a new folder under the system temp dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

pub(super) async fn run(args: DemoArgs) -> Result<ExitCode, Failure> {
    init_logging(&LogSettings::default());
    let dir = match args.dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!(
            "douyin-watch-demo-{}",
            Utc::now().format("%Y%m%d-%H%M%S")
        )),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo folder {}", dir.display()))?;
    let database = dir.join("demo.db");

    let simulator = Simulator::start(
        "127.0.0.1:0".parse().context("loopback address")?,
        SimulatorConfig {
            key: Some("demo-key".to_owned()),
            secret: Some("demo-secret".to_owned()),
            latency: Duration::from_millis(80),
            latency_jitter: Duration::from_millis(60),
            fault_rate: 0.15,
            faults: vec![Fault::Code5000, Fault::Http502, Fault::Code4001],
            not_found: HashSet::from([NOT_FOUND_ID.to_owned()]),
            change_every: Some(2),
            ..SimulatorConfig::default()
        },
    )
    .await
    .context("cannot start the simulator")?;
    outln!(
        "simulator: onebound's API on {} (2 charged fetches per title change, 15% transient faults)",
        simulator.base_url()
    )?;

    let environment = HashMap::from([
        (
            "DOUYIN_WATCH__DATABASE__URL".to_owned(),
            format!("sqlite://{}", database.display()),
        ),
        (
            "DOUYIN_WATCH__API__BASE_URL".to_owned(),
            simulator.base_url(),
        ),
        ("DOUYIN_WATCH__API__KEY".to_owned(), "demo-key".to_owned()),
        (
            "DOUYIN_WATCH__API__SECRET".to_owned(),
            "demo-secret".to_owned(),
        ),
        ("DOUYIN_WATCH__API__TIMEOUT".to_owned(), "3s".to_owned()),
        (
            "DOUYIN_WATCH__RETRY__BASE_DELAY".to_owned(),
            "200ms".to_owned(),
        ),
        ("DOUYIN_WATCH__RETRY__MAX_DELAY".to_owned(), "1s".to_owned()),
        (
            "DOUYIN_WATCH__SCHEDULE__CRON".to_owned(),
            "*/4 * * * * *".to_owned(),
        ),
        ("DOUYIN_WATCH__SHUTDOWN__GRACE".to_owned(), "5s".to_owned()),
    ]);
    let settings = Settings::load_from(None, environment)?;
    let store = open_store(&settings).await?;
    let ids: Vec<VideoId> = SAMPLE_IDS
        .iter()
        .filter_map(|id| VideoId::parse(id).ok())
        .collect();
    store
        .add_videos(&ids, Some("demo"), Utc::now())
        .await
        .map_err(anyhow::Error::from)?;
    outln!(
        "watching {} sample videos; running the daemon on cron \"{}\" for {} passes\n",
        ids.len(),
        settings.schedule.cron,
        args.passes
    )?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let completed = Arc::new(AtomicU32::new(0));
    let on_pass = {
        let completed = Arc::clone(&completed);
        let shutdown = shutdown.clone();
        let wanted = args.passes;
        Arc::new(move |report: &crate::collector::PassReport| {
            // Not println!: with stdout closed (`demo | head`) it would panic inside the pass.
            let _ = writeln!(std::io::stdout(), "  {}", report.summary());
            if completed.fetch_add(1, Ordering::SeqCst) + 1 >= wanted {
                shutdown.cancel();
            }
        })
    };
    daemon::run(
        collector(&settings, store.clone())?,
        schedule(&settings)?,
        shutdown,
        on_pass,
    )
    .await?;
    simulator.shutdown().await;

    outln!("\n$ douyin-watch watch list")?;
    show::watch_list(&store, false).await?;
    outln!("\n$ douyin-watch history {}", SAMPLE_IDS[0])?;
    show::history(&store, SAMPLE_IDS[0], false).await?;
    outln!("\n$ douyin-watch quota")?;
    show::quota(&store, false).await?;
    outln!("\n$ douyin-watch failures")?;
    show::failures(&store, Duration::from_secs(3600), None, false).await?;
    store.close().await;
    outln!(
        "\nThe demo database is {}. Query it with SQL, for example:\n  sqlite3 {} \"SELECT video_id, version, changed_fields, title FROM snapshots ORDER BY video_id, version\"\nor with this tool: douyin-watch --database sqlite://{} history {}",
        database.display(),
        database.display(),
        database.display(),
        SAMPLE_IDS[0]
    )?;
    Ok(ExitCode::SUCCESS)
}
