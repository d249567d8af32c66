//! The command line as a user meets it: the real binary as a child process, a real SQLite file in
//! a tempdir, the onebound simulator on 127.0.0.1. Exit codes: 0 done, 2 bad usage, input or
//! configuration, 3 a pass stopped by an account-level error or the quota, 1 anything else.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{Days, SecondsFormat, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use douyin_watch::simulator::SimulatorConfig;
use nix::sys::signal::Signal;
use serde_json::Value;
use support::{InProcessSim, Run, SimProcess, TestEnv, free_port, ids, poll_until};

/// The next Beijing midnight, as the program stores timestamps.
fn next_beijing_midnight() -> String {
    let today = Utc::now().with_timezone(&Shanghai).date_naive();
    let tomorrow = today.checked_add_days(Days::new(1)).expect("tomorrow");
    Shanghai
        .from_local_datetime(&tomorrow.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("one midnight")
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(text: &str) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

fn video_rows(env: &TestEnv) -> Vec<(String, i64, Option<String>, String)> {
    env.db()
        .rows("SELECT video_id, active, removed_at, added_at FROM videos ORDER BY video_id")
}

fn stdout_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn watch_add_accepts_every_entry_form_is_idempotent_and_reactivates_with_history() {
    let sim = InProcessSim::start(SimulatorConfig::default());
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url());
    let id = ids(5);
    let entries = [
        id[0].clone(),
        format!("https://www.douyin.com/video/{}", id[1]),
        format!("https://www.iesdouyin.com/share/video/{}/?x=1", id[2]),
        format!("https://www.douyin.com/discover?modal_id={}", id[3]),
        format!(
            "7.43 复制打开抖音，看看【阿七在路上的作品】今天的晚霞也太美了吧 https://www.douyin.com/video/{}/ iPh:/ 02/11 a@B.gO",
            id[4]
        ),
    ];
    let mut args = vec!["watch", "add"];
    args.extend(entries.iter().map(String::as_str));

    let run = env.run(&args);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("added 5, re-activated 0, already watched 0"),
        "{run:?}"
    );

    let list = env.run(&["watch", "list", "--json"]);
    assert_eq!(list.code, Some(0), "{list:?}");
    let listed = list.json();
    let listed = listed.as_array().expect("an array");
    let listed_ids: BTreeSet<&str> = listed
        .iter()
        .map(|v| v["video_id"].as_str().expect("video_id"))
        .collect();
    let expected: BTreeSet<&str> = id.iter().map(String::as_str).collect();
    assert_eq!(listed_ids, expected);
    for video in listed {
        assert_eq!(video["active"], Value::Bool(true), "{video}");
        assert_eq!(video["status"], "pending", "{video}");
        assert_eq!(video["versions"], 0, "{video}");
    }
    let rows = video_rows(&env);
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.1 == 1 && r.2.is_none()), "{rows:?}");

    // The same batch again changes nothing.
    let again = env.run(&args);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(
        again
            .stdout
            .contains("added 0, re-activated 0, already watched 5"),
        "{again:?}"
    );
    assert_eq!(
        video_rows(&env),
        rows,
        "a repeated add must not change rows"
    );

    // Build some history, then remove and re-add one video.
    let fetch = env.run(&["fetch"]);
    assert_eq!(fetch.code, Some(0), "{fetch:?}");
    let removed = env.run(&["watch", "remove", &id[0]]);
    assert_eq!(removed.code, Some(0), "{removed:?}");
    assert!(removed.stdout.contains("removed 1"), "{removed:?}");
    let after_remove = video_rows(&env);
    let row = &after_remove[0];
    assert_eq!(row.0, id[0]);
    assert_eq!(row.1, 0, "removed video is inactive");
    assert!(row.2.is_some(), "removed_at is set");
    let list = env.run(&["watch", "list", "--json"]).json();
    let entry = list
        .as_array()
        .expect("array")
        .iter()
        .find(|v| v["video_id"] == id[0].as_str())
        .expect("a removed video stays listed")
        .clone();
    assert_eq!(entry["active"], Value::Bool(false));
    // A removed video is not watched: naming it to `fetch` makes no (paid) call.
    let requests = sim.stats().requests;
    let refused = env.run(&["fetch", &id[0]]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(
        refused.stderr.contains("not watched") && refused.stderr.contains(&id[0]),
        "{refused:?}"
    );
    assert_eq!(
        sim.stats().requests,
        requests,
        "no call for a removed video"
    );

    let readd = env.run(&["watch", "add", &id[0]]);
    assert_eq!(readd.code, Some(0), "{readd:?}");
    assert!(
        readd
            .stdout
            .contains("added 0, re-activated 1, already watched 0"),
        "{readd:?}"
    );
    let after_readd = video_rows(&env);
    assert_eq!(after_readd[0].1, 1, "active again");
    assert_eq!(after_readd[0].2, None, "removed_at cleared");
    assert_eq!(after_readd[0].3, rows[0].3, "added_at kept");
    let db = env.db();
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM snapshots WHERE video_id = '{}'",
            id[0]
        )),
        1,
        "history kept"
    );
    let history = env.run(&["history", &id[0], "--json"]);
    assert_eq!(history.code, Some(0), "{history:?}");
    assert_eq!(history.json().as_array().map(Vec::len), Some(1));
}

#[test]
fn watch_add_is_all_or_nothing_and_names_every_bad_entry() {
    let env = TestEnv::new();
    let id = ids(4);
    env.watch(&id[..2]);
    let before = video_rows(&env);
    assert_eq!(before.len(), 2);

    let bad = [
        "abc",
        "123",
        "https://evil.example/video/7300000000000000077",
        "https://www.douyin.com/user/MS4wLjABAAAA",
        "0123456789",
    ];
    let mut args = vec!["watch", "add", id[2].as_str()];
    args.extend(bad);
    args.push(id[3].as_str());
    let run = env.run(&args);
    assert_eq!(run.code, Some(2), "{run:?}");
    for entry in bad {
        assert!(
            run.stderr.contains(&format!("{entry:?}")),
            "stderr must name {entry:?}: {run:?}"
        );
    }
    assert!(
        !run.stderr.contains(&format!("{:?}", id[2])),
        "a valid entry is not reported as bad: {run:?}"
    );
    assert!(!run.stdout.contains("added"), "{run:?}");
    assert_eq!(video_rows(&env), before, "nothing was written");
}

#[test]
fn watch_add_reads_files_and_stdin_skipping_comments_and_blank_lines() {
    let env = TestEnv::new();
    let id = ids(6);
    let file = env.dir.path().join("list.txt");
    std::fs::write(
        &file,
        format!(
            // As Windows editors save it: a byte-order mark, CRLF line ends.
            "\u{feff}{}\r\n# my videos\r\n\r\n   https://www.douyin.com/video/{}   \r\n\t\n  # indented comment\n{}\n",
            id[0], id[1], id[2]
        ),
    )
    .expect("write list");
    let run = env.run(&["watch", "add", "--file", file.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("added 3,"), "{run:?}");

    let stdin = format!(
        "# from a pipe\n{}\n\nhttps://www.douyin.com/discover?modal_id={}\n",
        id[3], id[4]
    );
    let run = env.run_with_stdin(&["watch", "add", "--file", "-"], &stdin);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("added 2,"), "{run:?}");

    let stored: Vec<String> = video_rows(&env).into_iter().map(|r| r.0).collect();
    assert_eq!(stored, id[..5].to_vec());

    // One bad line in the input rejects the whole batch, command-line entries included.
    let stdin = format!("# comment\n{}\nnot-an-id\n", id[5]);
    let run = env.run_with_stdin(&["watch", "add", "--file", "-", &id[5]], &stdin);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("invalid: standard input line 3: \"not-an-id\""),
        "the bad entry is named with its line: {run:?}"
    );
    assert!(
        !run.stderr.contains("comment"),
        "comments are not entries: {run:?}"
    );
    assert_eq!(
        video_rows(&env).len(),
        5,
        "nothing was added from the bad batch"
    );

    let missing = env.run(&["watch", "add", "--file", "no-such-file.txt"]);
    assert_eq!(missing.code, Some(2), "{missing:?}");
}

#[test]
fn bad_configuration_stops_before_any_request_naming_key_and_variable() {
    let sim = InProcessSim::start(SimulatorConfig::default());
    let mut base = TestEnv::new();
    base.set("API__BASE_URL", &sim.base_url());
    base.watch(&ids(2));

    // (variable to set or unset, value, key named, variable named)
    let cases: [(&str, Option<&str>, &str, &str); 8] = [
        (
            "API__CONCURRENCY",
            Some("0"),
            "api.concurrency",
            "DOUYIN_WATCH__API__CONCURRENCY",
        ),
        (
            "SCHEDULE__CRON",
            Some("every minute"),
            "schedule.cron",
            "DOUYIN_WATCH__SCHEDULE__CRON",
        ),
        (
            "SCHEDULE__CRON",
            Some("61 * * * * *"),
            "schedule.cron",
            "DOUYIN_WATCH__SCHEDULE__CRON",
        ),
        (
            "SCHEDULE__TIMEZONE",
            Some("Mars/Olympus_Mons"),
            "schedule.timezone",
            "DOUYIN_WATCH__SCHEDULE__TIMEZONE",
        ),
        (
            "API__RESULT_TYPE",
            Some("xml"),
            "api.result_type",
            "DOUYIN_WATCH__API__RESULT_TYPE",
        ),
        ("API__KEY", None, "api.key", "DOUYIN_WATCH__API__KEY"),
        (
            "API__SECRET",
            None,
            "api.secret",
            "DOUYIN_WATCH__API__SECRET",
        ),
        (
            "API__SECRET",
            Some("   "),
            "api.secret",
            "DOUYIN_WATCH__API__SECRET",
        ),
    ];
    for (var, value, key, env_var) in cases {
        let mut env = TestEnv::new();
        env.set("API__BASE_URL", &sim.base_url());
        env.set(
            "DATABASE__URL",
            &format!("sqlite://{}", base.db_path().display()),
        );
        env.set("SCHEDULE__RUN_ON_START", "true");
        match value {
            Some(value) => env.set(var, value),
            None => env.unset(var),
        };
        for command in ["fetch", "run"] {
            let run = env.run(&[command]);
            let context = format!("{command} with {var}={value:?}: {run:?}");
            assert_eq!(run.code, Some(2), "{context}");
            let lines = stdout_lines(&run.stderr);
            assert_eq!(lines.len(), 1, "one line on stderr: {context}");
            assert!(lines[0].contains(key), "names {key}: {context}");
            assert!(lines[0].contains(env_var), "names {env_var}: {context}");
            assert!(run.stdout.trim().is_empty(), "{context}");
        }
    }
    // The database-only commands do not need the credentials.
    let mut no_key = TestEnv::new();
    no_key.set(
        "DATABASE__URL",
        &format!("sqlite://{}", base.db_path().display()),
    );
    no_key.unset("API__KEY").unset("API__SECRET");
    let list = no_key.run(&["watch", "list", "--json"]);
    assert_eq!(list.code, Some(0), "{list:?}");

    assert_eq!(sim.stats().requests, 0, "no request reached the simulator");
    assert_eq!(
        base.db().count("SELECT COUNT(*) FROM passes"),
        0,
        "no pass began"
    );
}

#[test]
fn fetch_stores_versions_and_an_unchanged_refetch_only_counts_a_sighting() {
    let sim = InProcessSim::start(SimulatorConfig::default());
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url());
    let id = ids(5);
    env.watch(&id);

    let first = env.run(&["fetch"]);
    assert_eq!(first.code, Some(0), "{first:?}");
    let lines = stdout_lines(&first.stdout);
    assert_eq!(lines.len(), 1, "a one-line summary: {first:?}");
    assert!(
        lines[0].contains("5 videos, 5 ok (5 new versions)"),
        "{first:?}"
    );
    let db = env.db();
    assert_eq!(
        db.count("SELECT COUNT(*) FROM snapshots WHERE version = 1"),
        5
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM fetches WHERE outcome = 'ok' AND snapshot_id IS NOT NULL"),
        5
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM quota_samples"), 5);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM passes WHERE finished_at IS NOT NULL AND fetched_ok = 5"),
        1
    );
    let covers: Vec<(String, Option<String>)> =
        db.rows("SELECT video_id, cover_url FROM snapshots ORDER BY video_id");
    for (video, cover) in &covers {
        let cover = cover.as_deref().unwrap_or_default();
        assert!(!cover.is_empty(), "{video} has a cover");
        assert!(
            !cover.contains("x-signature") && !cover.contains("x-expires"),
            "{video}: volatile parts are not stored: {cover}"
        );
    }

    let second = env.run(&["fetch"]);
    assert_eq!(second.code, Some(0), "{second:?}");
    let lines = stdout_lines(&second.stdout);
    assert_eq!(lines.len(), 1, "{second:?}");
    assert!(
        lines[0].contains("5 videos, 5 ok (0 new versions)"),
        "{second:?}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM snapshots"),
        5,
        "no new version"
    );
    let seen: Vec<(String, i64, String, String)> = db.rows(
        "SELECT video_id, seen_count, first_seen_at, last_seen_at FROM snapshots ORDER BY video_id",
    );
    for (video, count, first_seen, last_seen) in &seen {
        assert_eq!(*count, 2, "{video} seen twice");
        assert!(
            last_seen > first_seen,
            "{video}: {first_seen} .. {last_seen}"
        );
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM fetches WHERE outcome = 'ok' AND snapshot_id IS NOT NULL"),
        10
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM quota_samples"), 10);
    assert_eq!(sim.stats().requests, 10);

    // Ids named on the command line, one of them three times: one call each.
    let named = env.run(&["fetch", &id[0], &id[1], &id[0], &format!(" {} ", id[0])]);
    assert_eq!(named.code, Some(0), "{named:?}");
    assert!(
        stdout_lines(&named.stdout)[0].contains("2 videos, 2 ok"),
        "{named:?}"
    );
    assert_eq!(sim.stats().requests, 12, "one call per video named");
}

#[test]
fn fetch_with_a_wrong_secret_stops_the_pass_at_the_first_4005() {
    let sim = InProcessSim::start(SimulatorConfig {
        key: Some("K".to_owned()),
        secret: Some("S".to_owned()),
        ..SimulatorConfig::default()
    });
    let mut env = TestEnv::new();
    // One call in flight at a time, so "no further call after 4005" means exactly one request.
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__KEY", "K")
        .set("API__SECRET", "not-S")
        .set("API__CONCURRENCY", "1");
    env.watch(&ids(5));

    let run = env.run(&["fetch"]);
    assert_eq!(run.code, Some(3), "{run:?}");
    let lines = stdout_lines(&run.stdout);
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].contains("4005"), "{run:?}");
    assert_eq!(sim.stats().requests, 1, "the pass stops at the first 4005");

    let failures = env.run(&["failures", "--json"]);
    assert_eq!(failures.code, Some(0), "{failures:?}");
    let failures = failures.json();
    let groups = failures.as_array().expect("array");
    assert_eq!(groups.len(), 1, "{failures}");
    assert_eq!(groups[0]["code"], "4005");
    assert_eq!(groups[0]["charged"], Value::Bool(false));
    assert_eq!(groups[0]["count"], 1);
    assert_eq!(groups[0]["videos"], 1);
    let db = env.db();
    assert_eq!(
        db.rows::<(Option<String>, i64, i64)>("SELECT stopped_by, calls, skipped FROM passes"),
        vec![(Some("4005".to_owned()), 1, 4)]
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM snapshots"), 0);
    // The account failed, not the videos.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM videos WHERE status = 'pending'"),
        5
    );
}

#[test]
fn one_4005_stop_pauses_calls_for_retry_account_pause_even_with_calls_in_flight() {
    // api.concurrency 4 (the default) and slow answers: four calls are in flight when the first
    // 4005 arrives. That is one stop of one pass, so calls pause for retry.account_pause; the
    // doubling is for further stops (config/default.toml, [retry]). Seed 1 spreads the four
    // answers out (200 ms + a seeded jitter: about 0.2, 0.56, 1.0 and 1.37 s), so each one is
    // stored before the next arrives and the outcome does not depend on thread timing.
    let sim = InProcessSim::start(SimulatorConfig {
        secret: Some("S".to_owned()),
        latency: Duration::from_millis(200),
        latency_jitter: Duration::from_millis(1500),
        seed: 1,
        ..SimulatorConfig::default()
    });
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__SECRET", "not-S")
        .set("API__CONCURRENCY", "4")
        .set("RETRY__ACCOUNT_PAUSE", "1m")
        .set("RETRY__ACCOUNT_PAUSE_MAX", "6h");
    env.watch(&ids(5));

    let run = env.run(&["fetch"]);
    assert_eq!(run.code, Some(3), "{run:?}");
    let requests = sim.stats().requests;
    assert_eq!(requests, 4, "the calls in flight when the first 4005 came");
    let db = env.db();
    assert_eq!(db.count("SELECT COUNT(*) FROM passes"), 1);
    let pauses: Vec<(String, String, String)> =
        db.rows("SELECT created_at, until, cause FROM pauses ORDER BY id");
    assert!(!pauses.is_empty(), "a pause is recorded");
    let stopped_at = pauses
        .iter()
        .map(|p| parse_time(&p.0))
        .min()
        .expect("a pause");
    let longest = pauses
        .iter()
        .map(|p| parse_time(&p.1) - stopped_at)
        .max()
        .expect("a pause");
    assert!(
        longest <= chrono::Duration::seconds(61),
        "one 4005 stop ({requests} calls in flight) pauses calls for {}s instead of \
         retry.account_pause (60s): {pauses:?}",
        longest.num_seconds()
    );

    // The secret fixed, the pause still holds calls back until `resume` lifts it.
    env.set("API__SECRET", "S");
    let paused = env.run(&["fetch"]);
    assert_eq!(paused.code, Some(3), "{paused:?}");
    assert_eq!(sim.stats().requests, requests, "no call while paused");
    let resumed = env.run(&["resume"]);
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    assert!(
        resumed.stdout.contains("lifted the pause") && resumed.stdout.contains("4005"),
        "{resumed:?}"
    );
    let fetched = env.run(&["fetch"]);
    assert_eq!(fetched.code, Some(0), "{fetched:?}");
    assert!(fetched.stdout.contains("5 ok"), "{fetched:?}");
    assert_eq!(sim.stats().requests, requests + 5);
    let again = env.run(&["resume"]);
    assert!(again.stdout.contains("no pause in force"), "{again:?}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM pauses"),
        pauses.len() as i64,
        "a lifted pause stays in the history"
    );
}

#[test]
fn fetch_after_4013_pauses_calls_until_the_beijing_day_rolls_over_across_processes() {
    let sim = SimProcess::start(&["--daily-max", "2"]);
    sim.set_today(2);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url());
    env.watch(&ids(5));

    let expected_until = next_beijing_midnight();
    let first = env.run(&["fetch"]);
    assert_eq!(first.code, Some(3), "{first:?}");
    assert!(first.stdout.contains("4013"), "{first:?}");
    let stats = sim.stats();
    assert!(stats.requests >= 1, "{stats:?}");
    assert_eq!(
        stats.by_code.get("4013"),
        Some(&stats.requests),
        "{stats:?}"
    );
    assert_eq!(stats.charged, 0);

    let db = env.db();
    let pauses: Vec<(String, String, Option<String>)> =
        db.rows("SELECT until, cause, error_code FROM pauses");
    // Calls in flight when the first 4013 came may each add a row; they must all agree.
    assert!(!pauses.is_empty(), "a pause is recorded");
    let (until, _, _) = &pauses[0];
    let after = next_beijing_midnight();
    assert!(
        *until == expected_until || *until == after,
        "paused until the next Beijing midnight ({expected_until}), not {until}"
    );
    for (other_until, cause, code) in &pauses {
        assert_eq!(other_until, until, "{pauses:?}");
        assert_eq!(cause, "quota_exceeded");
        assert_eq!(code.as_deref(), Some("4013"));
    }
    // `resume` lifts pauses after account errors, not this one: the count is onebound's.
    let resume = env.run(&["resume"]);
    assert_eq!(resume.code, Some(0), "{resume:?}");
    assert!(resume.stdout.contains("stays"), "{resume:?}");
    let still: Vec<(String, String, Option<String>)> =
        db.rows("SELECT until, cause, error_code FROM pauses");
    assert_eq!(still, pauses);
    // With an account pause beside it, that one is lifted and the 4013 one still named.
    rusqlite::Connection::open(env.db_path())
        .and_then(|c| {
            c.execute(
                "INSERT INTO pauses (created_at, until, cause, error_code, message) \
                 SELECT created_at, until, 'account_error', '4005', 'bad secret' FROM pauses \
                 LIMIT 1",
                [],
            )
        })
        .expect("an account pause");
    let both = env.run(&["resume"]);
    assert!(
        both.stdout.contains("lifted the pause") && both.stdout.contains("stays"),
        "{both:?}"
    );
    assert!(!both.stdout.contains("sends one call first"), "{both:?}");
    // A script that closed fetch's stdout still learns from the exit code that it stopped.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let closed = env
        .command(&["fetch"])
        .stdout(writer)
        .output()
        .expect("fetch runs");
    assert_eq!(closed.status.code(), Some(3), "{closed:?}");

    let quota = env.run(&["quota", "--json"]);
    assert_eq!(quota.code, Some(0), "{quota:?}");
    let quota = quota.json();
    assert_eq!(quota["pause"]["until"], until.as_str(), "{quota}");
    assert_eq!(quota["resets_at"], until.as_str(), "{quota}");

    // A new process honours the pause: no request at all.
    let second = env.run(&["fetch"]);
    assert_eq!(second.code, Some(3), "{second:?}");
    assert!(second.stdout.contains("paused"), "{second:?}");
    assert_eq!(
        sim.stats().requests,
        stats.requests,
        "no request while paused"
    );
    let last: Vec<(Option<String>, i64, i64)> =
        db.rows("SELECT stopped_by, calls, skipped FROM passes ORDER BY id DESC LIMIT 1");
    assert_eq!(last, vec![(Some("paused".to_owned()), 0, 5)]);
}

#[test]
fn quota_history_and_failures_report_json() {
    let id = ids(3);
    let missing = id[2].clone();
    let sim = InProcessSim::start(SimulatorConfig {
        not_found: HashSet::from([missing.clone()]),
        change_every: Some(1),
        ..SimulatorConfig::default()
    });
    let mut env = TestEnv::new();
    // The not-found id is asked about in both passes, not left out of the second one.
    env.set("API__BASE_URL", &sim.base_url())
        .set("RETRY__NOT_FOUND_RECHECK", "0s");
    env.watch(&id);
    for _ in 0..2 {
        let run = env.run(&["fetch"]);
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("1 not found"), "{run:?}");
    }

    // history: two versions, the second with what changed.
    let history = env.run(&["history", &id[0], "--json"]);
    assert_eq!(history.code, Some(0), "{history:?}");
    let history = history.json();
    let versions = history.as_array().expect("array");
    assert_eq!(versions.len(), 2, "{history}");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[0]["changed_fields"], serde_json::json!([]));
    let changed = versions[1]["changed_fields"]
        .as_array()
        .expect("changed_fields is a JSON array");
    assert!(changed.contains(&Value::from("title")), "{history}");
    assert_ne!(versions[0]["title"], versions[1]["title"]);
    for v in versions {
        assert_eq!(v["seen_count"], 1, "{v}");
        assert!(v["content_hash"].as_str().is_some_and(|h| !h.is_empty()));
    }
    let gone = env.run(&["history", &missing, "--json"]);
    assert_eq!(gone.code, Some(0), "{gone:?}");
    assert_eq!(gone.json(), serde_json::json!([]));
    let gone = env.run(&["history", &missing]);
    assert!(
        gone.stdout
            .starts_with(&format!("{missing}: gone since 20")),
        "the history says the video is gone: {gone:?}"
    );
    let kept = env.run(&["history", &id[0]]);
    assert!(
        kept.stdout.starts_with(&format!("{}: ok since 20", id[0])),
        "{kept:?}"
    );
    let unknown = env.run(&["history", "7399999999999999999", "--json"]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");

    // quota: six charged answers (2000 is charged too) of the default 10000.
    let quota = env.run(&["quota", "--json"]);
    assert_eq!(quota.code, Some(0), "{quota:?}");
    let quota = quota.json();
    let beijing_today = Utc::now().with_timezone(&Shanghai).date_naive().to_string();
    assert_eq!(quota["quota_day"], beijing_today.as_str(), "{quota}");
    assert_eq!(quota["today"], 6, "{quota}");
    assert_eq!(quota["max"], 10000, "{quota}");
    assert_eq!(quota["remaining"], 9994, "{quota}");
    assert_eq!(quota["expires_on"], "2030-12-31", "{quota}");
    assert_eq!(quota["pause"], Value::Null, "{quota}");
    assert!(quota["observed_at"].is_string(), "{quota}");
    assert_eq!(
        quota["resets_at"],
        next_beijing_midnight().as_str(),
        "{quota}"
    );
    assert!(
        quota["resets_in_seconds"]
            .as_i64()
            .is_some_and(|s| s > 0 && s <= 86_400)
    );
    assert_eq!(sim.stats().today, 6);

    // failures: the not-found id, twice, charged.
    let failures = env.run(&["failures", "--json", "--code", "2000"]);
    assert_eq!(failures.code, Some(0), "{failures:?}");
    let failures = failures.json();
    let groups = failures.as_array().expect("array");
    assert_eq!(groups.len(), 1, "{failures}");
    let group = &groups[0];
    assert_eq!(group["code"], "2000");
    assert_eq!(group["charged"], Value::Bool(true));
    assert_eq!(group["count"], 2);
    assert_eq!(group["videos"], 1);
    assert!(group["meaning"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(group["first_at"].as_str() <= group["last_at"].as_str());
    let other = env.run(&["failures", "--json", "--code", "4005"]);
    assert_eq!(other.json(), serde_json::json!([]), "{other:?}");

    let list = env.run(&["watch", "list", "--json"]).json();
    let by_id: BTreeMap<&str, &Value> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|v| (v["video_id"].as_str().expect("id"), v))
        .collect();
    assert_eq!(by_id[missing.as_str()]["status"], "not_found");
    assert_eq!(by_id[missing.as_str()]["last_error_code"], "2000");
    assert_eq!(by_id[id[0].as_str()]["versions"], 2);

    let far_back = env.run(&["failures", "--since", "300000years"]);
    assert_eq!(far_back.code, Some(2), "{far_back:?}");
    assert!(far_back.stderr.contains("too far back"), "{far_back:?}");

    // A reader that has gone before the report is written (`| head`) ends it quietly.
    let reports: [&[&str]; 7] = [
        &["history", &id[0]],
        &["history", &id[0], "--diff"],
        &["failures", "--json"],
        &["watch", "list"],
        &["quota"],
        &["config", "show"],
        &["completions", "bash"],
    ];
    for args in reports {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = env
            .command(args)
            .stdout(writer)
            .output()
            .expect("run douyin-watch");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

const CANARY: &str = "SECRET-canary-1234";

/// Runs one failing fetch with the canary secret and checks every output and the database;
/// `expect_error` is the code or failure key a failed attempt must show, if the scenario records
/// one. Returns the fetch's run.
fn assert_canary_hidden(
    env: &mut TestEnv,
    format: &str,
    scenario: &str,
    expect_error: Option<&str>,
) -> Run {
    env.set("API__SECRET", CANARY)
        .set("LOG__LEVEL", "debug")
        .set("LOG__FORMAT", format)
        .set("RETRY__MAX_ATTEMPTS", "2");
    env.watch(&ids(2));
    let context = format!("{scenario} with log.format={format}");
    let fetch = env.run(&["fetch"]);
    assert!(matches!(fetch.code, Some(0 | 3)), "{context}: {fetch:?}");
    let debug_marker = if format == "json" {
        "\"level\":\"DEBUG\""
    } else {
        "DEBUG"
    };
    assert!(
        fetch.stderr.contains(debug_marker),
        "{context}: debug logging is on: {fetch:?}"
    );
    if let Some(expect_error) = expect_error {
        assert!(
            env.db().count(&format!(
                "SELECT COUNT(*) FROM fetches WHERE COALESCE(error_code, error) = '{expect_error}'"
            )) >= 1,
            "{context}: the scenario happened: {fetch:?}"
        );
    }
    let mut runs = vec![("fetch".to_owned(), fetch.clone())];
    for args in [
        &["failures", "--json"][..],
        &["failures"],
        &["watch", "list", "--json"],
        &["watch", "list"],
        &["quota", "--json"],
        &["config", "show"],
    ] {
        runs.push((args.join(" "), env.run(args)));
    }
    for (command, run) in &runs {
        assert!(
            !run.stdout.contains(CANARY) && !run.stderr.contains(CANARY),
            "{context}: `{command}` shows the secret: {run:?}"
        );
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = env.dir.path().join(format!("t.db{suffix}"));
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
                "{context}: {} holds the secret",
                path.display()
            );
        }
    }
    fetch
}

#[test]
fn the_secret_never_reaches_output_logs_or_the_database() {
    let wrong_secret = InProcessSim::start(SimulatorConfig {
        secret: Some("the-right-secret".to_owned()),
        ..SimulatorConfig::default()
    });
    let slow = InProcessSim::start(SimulatorConfig {
        latency: Duration::from_secs(2),
        ..SimulatorConfig::default()
    });
    for format in ["pretty", "json"] {
        let mut refused = TestEnv::new();
        refused.set(
            "API__BASE_URL",
            &format!("http://127.0.0.1:{}", free_port()),
        );
        assert_canary_hidden(&mut refused, format, "connection refused", Some("connect"));

        let mut rejected = TestEnv::new();
        rejected.set("API__BASE_URL", &wrong_secret.base_url());
        assert_canary_hidden(&mut rejected, format, "4005", Some("4005"));

        let mut timeout = TestEnv::new();
        timeout
            .set("API__BASE_URL", &slow.base_url())
            .set("API__TIMEOUT", "300ms");
        assert_canary_hidden(&mut timeout, format, "timeout", Some("timeout"));
    }
    assert!(wrong_secret.stats().by_code.contains_key("4005"));
    assert!(slow.stats().requests >= 2);
}

#[test]
fn a_panic_in_a_pass_task_keeps_the_secret_out_and_the_pass_going() {
    let sim = InProcessSim::start(SimulatorConfig::default());
    for format in ["pretty", "json"] {
        let mut env = TestEnv::new();
        // The first video's task panics after its call, with the request URL in the message,
        // as a careless `expect` would.
        env.set("API__BASE_URL", &sim.base_url()).set_var(
            douyin_watch::panics::FAILPOINTS_VAR,
            &format!(
                "collect-video=1*panic(GET /douyin/item_get_video/?key=k&secret={CANARY} failed)"
            ),
        );
        let fetch = assert_canary_hidden(&mut env, format, "a panic in a pass task", None);
        let context = format!("log.format={format}");
        assert!(
            fetch.stderr.contains("panicked at")
                && fetch.stderr.contains("secret=[redacted] failed"),
            "{context}: the panic is logged, concealed: {fetch:?}"
        );
        assert!(
            fetch
                .stderr
                .contains("a video's task panicked; the pass goes on"),
            "{context}: {fetch:?}"
        );
        let db = env.db();
        assert_eq!(
            db.count("SELECT COUNT(*) FROM videos WHERE status = 'ok'"),
            1,
            "{context}: the other video is fetched: {fetch:?}"
        );
        assert_eq!(
            db.count("SELECT failed FROM passes"),
            1,
            "{context}: the panicked video counts as failed"
        );
    }
}

#[test]
fn the_demo_from_the_readme_runs_its_passes_and_shows_the_results() {
    // As a newcomer runs it: no settings in the environment at all.
    let mut env = TestEnv::new();
    for key in [
        "DATABASE__URL",
        "API__KEY",
        "API__SECRET",
        "API__RATE_PER_SEC",
        "RETRY__BASE_DELAY",
        "RETRY__MAX_DELAY",
    ] {
        env.unset(key);
    }
    // A config file named in the environment is for the user's own collector, not the demo's.
    let elsewhere = env.dir.path().join("elsewhere.db");
    let config = env.dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!("[database]\nurl = \"sqlite://{}\"\n", elsewhere.display()),
    )
    .expect("config");
    env.set_var("DOUYIN_WATCH_CONFIG", &config.display().to_string());
    let folder = env.dir.path().join("demo");
    let demo = env.run(&[
        "demo",
        "--passes",
        "2",
        "--dir",
        &folder.display().to_string(),
    ]);
    assert_eq!(demo.code, Some(0), "{demo:?}");
    for shown in [
        "pass 1: 6 videos",
        "$ douyin-watch watch list",
        "$ douyin-watch history 7118694749548072205",
        "$ douyin-watch quota",
        "$ douyin-watch failures",
        "The demo database is",
    ] {
        assert!(demo.stdout.contains(shown), "{shown:?} missing: {demo:?}");
    }
    // The sample video the simulator does not know is not asked about again, once found gone
    // (its first pass could, rarely, end in transient faults instead).
    let pass_1 = demo
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("pass 1:"))
        .unwrap_or_default();
    let pass_2 = if pass_1.contains("1 not found") {
        "pass 2: 5 videos"
    } else {
        "pass 2: 6 videos"
    };
    assert!(demo.stdout.contains(pass_2), "{pass_2:?} missing: {demo:?}");
    let db = support::Db::new(&folder.join("demo.db"));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM videos WHERE last_fetched_at IS NOT NULL"),
        6,
        "every sample video was called"
    );
    assert!(db.count("SELECT COUNT(*) FROM latest_snapshots") >= 4);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM passes WHERE finished_at IS NOT NULL"),
        2
    );
    assert!(!elsewhere.exists(), "the demo keeps to its own database");
}

#[test]
fn demo_and_simulate_refuse_settings_they_would_ignore() {
    let env = TestEnv::new();
    let folder = env.dir.path().join("demo");
    let config = env.dir.path().join("collector.toml");
    std::fs::write(&config, "").expect("config");
    let folder_arg = folder.display().to_string();
    let config_arg = config.display().to_string();
    for (args, flag) in [
        (
            vec![
                "--database",
                "sqlite:///tmp/x.db",
                "demo",
                "--dir",
                &folder_arg,
            ],
            "--database",
        ),
        (
            vec!["demo", "--config", &config_arg, "--dir", &folder_arg],
            "--config",
        ),
        (
            vec![
                "simulate",
                "--listen",
                "127.0.0.1:0",
                "--database",
                "sqlite:///tmp/x.db",
            ],
            "--database",
        ),
    ] {
        let refused = env.run(&args);
        assert_eq!(refused.code, Some(2), "{args:?}: {refused:?}");
        let line = refused.stderr.trim();
        assert!(
            line.starts_with("error: `") && line.contains(flag) && !line.contains('\n'),
            "{args:?}: {line}"
        );
    }
    assert!(!folder.exists(), "nothing was started");
}

/// The statements of README's "Some queries you might run", comments left in.
fn readme_queries() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let block = readme
        .split("Some queries you might run:")
        .nth(1)
        .and_then(|section| section.split("```sql").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("README has its example queries in a sql block");
    block
        .split(';')
        .filter(|statement| {
            statement
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim().starts_with("--"))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_queries_run_and_count_what_they_say() {
    let id = ids(3);
    let sim = InProcessSim::start(SimulatorConfig {
        not_found: HashSet::from([id[2].clone()]),
        change_every: Some(1),
        ..SimulatorConfig::default()
    });
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url());
    env.watch(&id);
    for _ in 0..2 {
        let run = env.run(&["fetch"]);
        assert_eq!(run.code, Some(0), "{run:?}");
    }
    // A row that is no call: what a pass writes for an attempt held back.
    let db = rusqlite::Connection::open(env.db_path()).expect("open");
    db.execute(
        "INSERT INTO fetches (video_id, started_at, finished_at, attempt, outcome, charged) \
         SELECT video_id, started_at, finished_at, attempt + 1, 'skipped', 0 FROM fetches \
         ORDER BY id LIMIT 1",
        [],
    )
    .expect("a skipped attempt");

    let queries = readme_queries();
    assert!(queries.len() >= 7, "{queries:?}");
    for sql in &queries {
        let mut statement = db
            .prepare(sql)
            .unwrap_or_else(|e| panic!("README query does not run: {e}\n{sql}"));
        let mut rows = statement.query([]).expect("query");
        while rows
            .next()
            .unwrap_or_else(|e| panic!("{e}\n{sql}"))
            .is_some()
        {}
    }
    // The calls per Beijing day are the calls the API received.
    let calls_per_day = queries
        .iter()
        .find(|sql| sql.contains("AS beijing_day"))
        .expect("the calls-per-day query");
    let calls: i64 = db
        .prepare(&format!("SELECT SUM(calls) FROM ({calls_per_day})"))
        .and_then(|mut s| s.query_row([], |row| row.get(0)))
        .expect("calls");
    assert_eq!(calls as u64, sim.stats().requests);
}

#[test]
fn a_second_pass_on_the_same_database_waits_for_none_and_calls_nothing() {
    let sim = SimProcess::start(&["--latency", "1s"]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__CONCURRENCY", "2");
    env.watch(&ids(6));
    let mut first = env.spawn(&["fetch"]);
    let db = env.db();
    let running = poll_until(Duration::from_secs(20), || {
        assert!(first.try_wait().is_none(), "{}", first.stderr());
        (db.count_or_zero("SELECT COUNT(*) FROM passes WHERE finished_at IS NULL") == 1
            && sim.stats().requests > 0)
            .then_some(())
    });
    assert!(
        running.is_some(),
        "the first pass never started: {}",
        first.stderr()
    );

    let requests = sim.stats().requests;
    let second = env.run(&["fetch"]);
    assert_eq!(second.code, Some(1), "{second:?}");
    assert!(
        second
            .stderr
            .contains("another pass is running on this database"),
        "{second:?}"
    );
    assert!(
        sim.stats().requests <= requests + 2,
        "only the first pass's calls in flight went out"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM passes"), 1, "no second pass");

    let status = first
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the first pass never ended: {}", first.stderr()));
    assert_eq!(status.code(), Some(0), "{}", first.stderr());
    assert_eq!(sim.stats().requests, 6, "each video called once");
    let third = env.run(&["fetch"]);
    assert_eq!(third.code, Some(0), "once the first has ended: {third:?}");
}

#[test]
fn an_interrupted_export_leaves_no_temporary_file_and_the_old_export_as_it_was() {
    let mut env = TestEnv::new();
    env.watch(&ids(1));
    let target = env.dir.path().join("fetches.csv");
    std::fs::write(&target, "the last export\n").expect("old export");
    // The export holds once its rows are written, before taking the old one's place.
    env.set_var(
        douyin_watch::panics::FAILPOINTS_VAR,
        "export-written=return(60000)",
    );
    let temporary_files = || -> Vec<String> {
        std::fs::read_dir(env.dir.path())
            .expect("read dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".partial"))
            .collect()
    };
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let mut export = env.spawn(&[
            "export",
            "fetches",
            "--output",
            target.to_str().expect("UTF-8 path"),
        ]);
        poll_until(Duration::from_secs(30), || {
            (!temporary_files().is_empty()).then_some(())
        })
        .expect("the export writes its temporary file");
        export.signal(signal);
        let status = export
            .wait_timeout(Duration::from_secs(20))
            .expect("the export ends on the signal");
        assert_eq!(status.code(), Some(130), "{signal}: {}", export.stderr());
        assert!(
            export.stderr().contains("export interrupted: ")
                && export.stderr().contains("fetches.csv left as it was"),
            "{signal}: {}",
            export.stderr()
        );
        assert_eq!(temporary_files(), Vec::<String>::new(), "{signal}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("target"),
            "the last export\n",
            "{signal}: the old export is left as it was"
        );
    }
}
