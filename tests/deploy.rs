//! The compose stack's files parse, and the dashboard queries only metrics the program exports
//! (tests/monitoring.rs checks that every one of those appears in a real `/metrics` scrape).

use std::collections::BTreeSet;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

#[test]
fn the_compose_file_runs_the_collector_with_a_health_check_and_an_optional_monitoring_profile() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    let collector = &services["douyin-watch"];
    assert_eq!(collector["healthcheck"]["test"][2], "healthcheck");
    assert_eq!(
        collector["environment"]["DOUYIN_WATCH__API__SECRET_FILE"],
        "/run/secrets/onebound_secret"
    );
    assert!(
        collector["volumes"][0]
            .as_str()
            .is_some_and(|v| v.starts_with("douyin-watch-data:"))
    );
    assert!(
        collector.get("profiles").is_none(),
        "the collector runs without a profile"
    );
    for name in ["prometheus", "grafana"] {
        assert_eq!(services[name]["profiles"][0], "monitoring", "{name}");
        for port in services[name]["ports"].as_sequence().expect("ports") {
            let port = port.as_str().expect("text");
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond loopback"
            );
        }
    }
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let listen = collector["environment"]["DOUYIN_WATCH__METRICS__LISTEN"]
        .as_str()
        .expect("listen");
    let port = listen.rsplit(':').next().expect("port");
    assert_eq!(
        prometheus["scrape_configs"][0]["static_configs"][0]["targets"][0],
        format!("douyin-watch:{port}").as_str()
    );
    yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    yaml("deploy/grafana/provisioning/dashboards/dashboards.yml");
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let text =
        std::fs::read_to_string("deploy/grafana/dashboards/douyin-watch.json").expect("dashboard");
    let dashboard: Json = serde_json::from_str(&text).expect("the dashboard is JSON");
    let metric = regex::Regex::new(r"douyin_watch_[a-z_]+").expect("regex");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for name in metric.find_iter(expr) {
                let name = name.as_str();
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name);
                queried.insert(base.to_owned());
            }
        }
    }
    let exported: BTreeSet<String> = douyin_watch::metrics::ALL
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    let unknown: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics nobody exports: {unknown:?}"
    );
    for wanted in [
        "douyin_watch_quota_calls_today",
        "douyin_watch_quota_calls_max",
        "douyin_watch_quota_reset_seconds",
        "douyin_watch_calls_total",
        "douyin_watch_new_versions_total",
        "douyin_watch_pass_duration_seconds",
    ] {
        assert!(queried.contains(wanted), "the dashboard shows no {wanted}");
    }
}
