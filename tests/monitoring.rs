//! The daemon's `/metrics` and `/healthz`, scraped from a real process, and `healthcheck`.
//!
//! Multi-threaded runtimes: the in-process simulator must keep answering while a test thread
//! waits on a child process.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use douyin_watch::simulator::{Simulator, SimulatorConfig};

const BIN: &str = env!("CARGO_BIN_EXE_douyin-watch");

/// Kills the daemon when the test ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn command(dir: &tempfile::TempDir, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("DOUYIN_WATCH") {
            command.env_remove(key);
        }
    }
    command
        .env(
            "DOUYIN_WATCH__DATABASE__URL",
            format!("sqlite://{}", dir.path().join("m.db").display()),
        )
        .env("DOUYIN_WATCH__API__KEY", "k")
        .env("DOUYIN_WATCH__API__SECRET", "s")
        .env("DOUYIN_WATCH__LOG__LEVEL", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn watch(dir: &tempfile::TempDir, ids: &[&str]) {
    let status = command(dir, &[])
        .args(["watch", "add"])
        .args(ids)
        .stdout(Stdio::null())
        .status()
        .expect("watch add runs");
    assert!(status.success());
}

/// A simulator on a free loopback port.
async fn start_simulator(config: SimulatorConfig) -> Simulator {
    Simulator::start("127.0.0.1:0".parse().expect("addr"), config)
        .await
        .expect("simulator")
}

/// Starts the daemon (`run`) against `simulator`, with a pass every second, `/metrics` and
/// `/healthz` on `port`, and `env` on top; its log goes to `daemon.err` in `dir`.
fn daemon_with_metrics(
    dir: &tempfile::TempDir,
    simulator: &Simulator,
    port: u16,
    env: &[(&str, String)],
) -> Daemon {
    let mut settings = vec![
        ("DOUYIN_WATCH__API__BASE_URL", simulator.base_url()),
        ("DOUYIN_WATCH__SCHEDULE__CRON", "*/1 * * * * *".to_owned()),
        ("DOUYIN_WATCH__METRICS__LISTEN", format!("127.0.0.1:{port}")),
    ];
    settings.extend_from_slice(env);
    let log = std::fs::File::create(dir.path().join("daemon.err")).expect("log file");
    Daemon(
        command(dir, &settings)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("daemon starts"),
    )
}

/// GETs `url` until `done` accepts the answer or 20 s pass.
async fn poll(url: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if done(status, &body) {
                return (status, body);
            }
            last = (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never reached the expected state; last answer {last:?}");
}

/// Parses Prometheus text into `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served_while_the_daemon_runs() {
    let simulator = start_simulator(SimulatorConfig {
        not_found: ["7100000000000000404".to_owned()].into(),
        ..SimulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    watch(
        &dir,
        &[
            "7100000000000000001",
            "7100000000000000002",
            "7100000000000000404",
        ],
    );
    let port = free_port();
    let _daemon = daemon_with_metrics(&dir, &simulator, port, &[]);

    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    poll(&metrics_url, |status, body| {
        status == 200
            && samples(body)
                .get("douyin_watch_passes_total{result=\"completed\"}")
                .is_some_and(|n| *n >= 2.0)
    })
    .await;
    // A scrape reads the database's figures first and the counters last, so the scrape that
    // first counts pass 2 may hold gauges read before its last attempt was stored. The next
    // scrape starts after pass 2 ended.
    let (_, text) = poll(&metrics_url, |status, _| status == 200).await;
    let metrics = samples(&text);
    let value = |name: &str| {
        metrics
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert!(value("douyin_watch_calls_total{outcome=\"ok\",error_code=\"0000\"}") >= 4.0);
    // The video found gone is not asked about again in the passes that follow (its recheck is
    // days away).
    assert_eq!(
        value("douyin_watch_calls_total{outcome=\"api_error\",error_code=\"2000\"}"),
        1.0
    );
    assert_eq!(value("douyin_watch_new_versions_total"), 2.0);
    assert!(value("douyin_watch_charged_calls_total") >= 5.0);
    assert_eq!(value("douyin_watch_videos{status=\"ok\"}"), 2.0);
    assert_eq!(value("douyin_watch_videos{status=\"not_found\"}"), 1.0);
    assert_eq!(value("douyin_watch_quota_calls_max"), 10000.0);
    assert!(value("douyin_watch_quota_calls_today") >= 5.0);
    assert_eq!(
        value("douyin_watch_quota_calls_remaining"),
        10000.0 - value("douyin_watch_quota_calls_today")
    );
    let reset = value("douyin_watch_quota_reset_seconds");
    assert!((0.0..=86400.0).contains(&reset), "{reset}");
    assert!(value("douyin_watch_quota_expiry_timestamp_seconds") > 1.9e9);
    assert!(value("douyin_watch_pass_duration_seconds_count") >= 2.0);
    assert!(value("douyin_watch_last_pass_completed_timestamp_seconds") > 1.7e9);
    assert!(
        !text.contains("7100000000000000001"),
        "video ids are never labels"
    );
    for name in douyin_watch::metrics::ALL {
        if name.starts_with("douyin_watch_notifications") {
            continue; // only once a webhook is configured
        }
        assert!(text.contains(name), "{name} is not exported:\n{text}");
    }

    let (status, body) = poll(&format!("http://127.0.0.1:{port}/healthz"), |status, _| {
        status == 200
    })
    .await;
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(status, 200);
    assert_eq!(health["healthy"], true);
    assert!(health["last_pass_completed_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_when_no_pass_completes_in_time() {
    // Every answer takes a minute: the first pass never completes during the test.
    let simulator = start_simulator(SimulatorConfig {
        latency: Duration::from_secs(60),
        ..SimulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    watch(&dir, &["7100000000000000001"]);
    let port = free_port();
    let _daemon = daemon_with_metrics(
        &dir,
        &simulator,
        port,
        &[("DOUYIN_WATCH__API__TIMEOUT", "2m".to_owned())],
    );
    let url = format!("http://127.0.0.1:{port}/healthz");
    let (status, _) = poll(&url, |status, _| status != 0).await;
    assert_eq!(status, 200, "healthy while just started");
    let (_, body) = poll(&url, |status, _| status == 503).await;
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(health["healthy"], false);
    assert!(
        health["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no pass has completed")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_that_fail_before_any_call_count_as_failed() {
    let simulator = start_simulator(SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    watch(&dir, &["7100000000000000001"]);
    let port = free_port();
    // More free space than any disk has: every pass fails at its start.
    let _daemon = daemon_with_metrics(
        &dir,
        &simulator,
        port,
        &[(
            "DOUYIN_WATCH__DATABASE__MIN_FREE_MIB",
            "1000000000000".to_owned(),
        )],
    );
    let (_, text) = poll(
        &format!("http://127.0.0.1:{port}/metrics"),
        |status, body| {
            status == 200
                && samples(body)
                    .get("douyin_watch_passes_total{result=\"failed\"}")
                    .is_some_and(|n| *n >= 2.0)
        },
    )
    .await;
    assert!(
        !text.contains("douyin_watch_passes_total{result=\"completed\"}"),
        "{text}"
    );
    assert_eq!(simulator.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_judges_the_last_pass() {
    let simulator = start_simulator(SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    watch(&dir, &["7100000000000000001"]);
    let every_second = [("DOUYIN_WATCH__SCHEDULE__CRON", "*/1 * * * * *".to_owned())];
    let before = command(&dir, &every_second)
        .arg("healthcheck")
        .output()
        .expect("healthcheck runs");
    assert_eq!(before.status.code(), Some(1), "no pass yet");
    let fetched = command(
        &dir,
        &[("DOUYIN_WATCH__API__BASE_URL", simulator.base_url())],
    )
    .arg("fetch")
    .output()
    .expect("fetch runs");
    assert!(fetched.status.success());
    let fresh = command(&dir, &every_second)
        .arg("healthcheck")
        .output()
        .expect("healthcheck runs");
    assert_eq!(
        fresh.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fresh.stdout)
    );
    // With an hourly schedule the same pass stays fresh; with a 1 s one it goes stale once three
    // ticks have come.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let stale = command(&dir, &every_second)
        .arg("healthcheck")
        .output()
        .expect("healthcheck runs");
    assert_eq!(stale.status.code(), Some(1));
    let verdict: serde_json::Value = serde_json::from_slice(&stale.stdout).expect("JSON");
    assert!(
        verdict["reason"]
            .as_str()
            .is_some_and(|r| r.contains("3 ticks of the schedule have come since"))
    );
    let hourly = command(&dir, &[])
        .arg("healthcheck")
        .output()
        .expect("healthcheck runs");
    assert_eq!(hourly.status.code(), Some(0));
}
