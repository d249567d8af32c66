//! Tests of the simulator, mostly over real sockets with reqwest as the client.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::engine::{Quota, quota_day};
use super::*;

/// The API document's success example.
const OK_FIXTURE: &str = include_str!("../../tests/fixtures/item_get_video.ok.json");

/// The API document's error example.
const NOT_FOUND_FIXTURE: &str = include_str!("../../tests/fixtures/item_get_video.not_found.json");

/// The API document's example id.
const ID: &str = "7118694749548072205";

/// Another id.
const OTHER_ID: &str = "7301234567890123456";

async fn start(config: SimulatorConfig) -> Simulator {
    Simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn with_credentials() -> SimulatorConfig {
    SimulatorConfig {
        key: Some("k".into()),
        secret: Some("s".into()),
        ..SimulatorConfig::default()
    }
}

fn url(sim: &Simulator, id: &str) -> String {
    format!(
        "{}/douyin/item_get_video/?key=k&secret=s&item_id={id}&cache=no&lang=cn&result_type=jsonu",
        sim.base_url()
    )
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// `api_info` read back: (today, max, total, [today, yesterday, earlier], expires).
fn api_info(envelope: &Value) -> (u64, u64, u64, Vec<u64>, String) {
    let text = envelope["api_info"].as_str().unwrap();
    let (quota, expires) = text.split_once(";expires:").unwrap();
    let mut words = quota.split(' ');
    let mut number = |prefix: &str| -> u64 {
        words
            .next()
            .unwrap()
            .strip_prefix(prefix)
            .unwrap()
            .parse()
            .unwrap()
    };
    let today = number("today:");
    let max = number("max:");
    let all = words.next().unwrap();
    let (total, parts) = all
        .strip_prefix("all[")
        .unwrap()
        .strip_suffix(']')
        .unwrap()
        .split_once('=')
        .unwrap();
    let parts: Vec<u64> = parts.split('+').map(|p| p.parse().unwrap()).collect();
    let total: u64 = total.parse().unwrap();
    assert_eq!(total, parts.iter().sum::<u64>(), "{text}");
    assert_eq!(parts[0], today, "{text}");
    (today, max, total, parts, expires.to_owned())
}

fn code(envelope: &Value) -> &str {
    envelope["error_code"].as_str().unwrap()
}

#[tokio::test]
async fn success_envelope_has_the_fixture_shape_and_charges() {
    let sim = start(with_credentials()).await;
    let client = reqwest::Client::new();
    let fixture: Value = serde_json::from_str(OK_FIXTURE).unwrap();

    let body = get_json(&client, &url(&sim, ID)).await;
    assert_eq!(keys(&body), keys(&fixture));
    assert_eq!(keys(&body["item"]), keys(&fixture["item"]));
    for part in ["video", "music"] {
        assert_eq!(keys(&body["item"][part]), keys(&fixture["item"][part]));
    }
    assert_eq!(code(&body), "0000");
    assert_eq!(body["error"], "");
    assert_eq!(body["reason"], "");
    assert_eq!(body["cache"], 0);
    assert_eq!(body["call_args"], json!([]));
    assert_eq!(body["api_type"], "douyin");
    assert_eq!(body["client_ip"], "127.0.0.1");
    assert!(body["execution_time"].is_string());
    assert!(body["request_id"].as_str().unwrap().starts_with("gw-1."));
    assert!(
        body["server_time"]
            .as_str()
            .unwrap()
            .starts_with("Beijing/")
    );
    let item = &body["item"];
    assert_eq!(item["num_iid"], ID);
    assert_eq!(item["type"], "video");
    assert_eq!(item["item_imgs"], json!([]));
    assert!(item["title"].as_str().unwrap().contains('#'));
    let detail = item["detail_url"].as_str().unwrap();
    assert!(detail.starts_with(&format!(
        "https://www.iesdouyin.com/share/video/{ID}/?region=&mid="
    )));
    assert!(detail.ends_with("&with_sec_did=1&titleType=title"));
    let play = item["video"]["url"].as_str().unwrap();
    assert!(play.starts_with("https://aweme.snssdk.com/aweme/v1/playwm/?video_id=v0200fg10000"));
    assert!(play.ends_with("&ratio=720p&line=0"));
    let cover = item["video"]["pic_url"].as_str().unwrap();
    assert!(
        ["p3", "p6", "p9", "p26"]
            .iter()
            .any(|shard| cover.starts_with(&format!("https://{shard}-sign.douyinpic.com/"))),
        "{cover}"
    );
    assert_eq!(
        api_info(&body),
        (1, 10_000, 1, vec![1, 0, 0], "2030-12-31".into())
    );

    // Without the trailing slash too; today counts charged answers only.
    let no_slash = url(&sim, ID).replace("item_get_video/?", "item_get_video?");
    assert_eq!(api_info(&get_json(&client, &no_slash).await).0, 2);
    let refused = get_json(&client, &url(&sim, "not-a-number")).await;
    assert_eq!(code(&refused), "4003");
    assert_eq!(api_info(&refused).0, 2);
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.charged, stats.today), (3, 2, 2));
    assert_eq!(stats.per_item[ID], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn not_found_ids_answer_2000_and_are_charged() {
    let sim = start(SimulatorConfig {
        not_found: HashSet::from([OTHER_ID.to_owned()]),
        ..with_credentials()
    })
    .await;
    let client = reqwest::Client::new();
    let fixture: Value = serde_json::from_str(NOT_FOUND_FIXTURE).unwrap();
    let body = get_json(&client, &url(&sim, OTHER_ID)).await;
    assert_eq!(keys(&body), keys(&fixture));
    assert_eq!(code(&body), "2000");
    assert_eq!(body["error"], "item-not-found");
    assert_eq!(body["reason"], "没找到");
    assert_eq!(body["success"], 0);
    assert!(body["execution_time"].is_number());
    assert_eq!(api_info(&body).0, 1);
    assert_eq!(sim.stats().charged, 1);
    assert_eq!(code(&get_json(&client, &url(&sim, ID)).await), "0000");
}

#[tokio::test]
async fn credentials_are_checked() {
    let sim = start(with_credentials()).await;
    let client = reqwest::Client::new();
    let base = format!("{}/douyin/item_get_video/?item_id={ID}", sim.base_url());
    for query in [
        "&key=k&secret=wrong",
        "&key=wrong&secret=s",
        "&secret=s",
        "&key=k",
        "&key=&secret=s",
    ] {
        let body = get_json(&client, &format!("{base}{query}")).await;
        assert_eq!(code(&body), "4005", "{query}");
        assert_eq!(body["reason"], "授权失败");
    }
    assert_eq!(sim.stats().charged, 0);

    // Without configured credentials any non-empty pair is accepted.
    let open = start(SimulatorConfig::default()).await;
    let base = format!("{}/douyin/item_get_video/?item_id={ID}", open.base_url());
    assert_eq!(
        code(&get_json(&client, &format!("{base}&key=a&secret=b")).await),
        "0000"
    );
    assert_eq!(
        code(&get_json(&client, &format!("{base}&key=a")).await),
        "4005"
    );
}

#[tokio::test]
async fn parameters_and_paths_are_checked() {
    let sim = start(with_credentials()).await;
    let client = reqwest::Client::new();
    let base = sim.base_url();
    let api = format!("{base}/douyin/item_get_video/?key=k&secret=s");
    for (query, expected) in [
        ("", "4014"),
        ("&item_id=", "4014"),
        ("&item_id=abc", "4003"),
        ("&item_id=12a", "4003"),
        (&format!("&item_id={ID}&lang=fr"), "4003"),
        (&format!("&item_id={ID}&result_type=xml"), "4003"),
        (&format!("&item_id={ID}&lang=en&result_type=json"), "0000"),
    ] {
        let body = get_json(&client, &format!("{api}{query}")).await;
        assert_eq!(code(&body), expected, "{query}");
    }
    for path in [
        "/",
        "/douyin/item_get/?key=k&secret=s&item_id=1",
        "/taobao/item_get_video/",
    ] {
        let body = get_json(&client, &format!("{base}{path}")).await;
        assert_eq!(code(&body), "4010", "{path}");
        assert_eq!(body["reason"], "API不存在");
    }
    let post = client
        .post(format!("{api}&item_id={ID}"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    let stats = sim.stats();
    assert_eq!(stats.charged, 1);
    assert_eq!(stats.by_code["4003"], 4);
    assert_eq!(stats.by_code["4010"], 3);
    assert_eq!(stats.by_code["http405"], 1);
}

#[tokio::test]
async fn daily_max_answers_4013_once_reached_and_does_not_charge() {
    let sim = start(SimulatorConfig {
        daily_max: 3,
        ..with_credentials()
    })
    .await;
    let client = reqwest::Client::new();
    for n in 1..=3 {
        assert_eq!(api_info(&get_json(&client, &url(&sim, ID)).await).0, n);
    }
    for _ in 0..2 {
        let body = get_json(&client, &url(&sim, ID)).await;
        assert_eq!(code(&body), "4013");
        assert_eq!(body["reason"], "调用次数超限");
        assert_eq!(api_info(&body).0, 3);
    }
    assert_eq!((sim.stats().charged, sim.stats().today), (3, 3));

    sim.set_today(1);
    let body = get_json(&client, &url(&sim, ID)).await;
    assert_eq!(code(&body), "0000");
    assert_eq!(api_info(&body).0, 2);
    sim.set_today(3);
    assert_eq!(code(&get_json(&client, &url(&sim, ID)).await), "4013");

    // A scripted charged answer bypasses the quota and the counters saturate instead of overflowing.
    sim.set_today(u64::MAX);
    sim.script(ID, vec![Scripted::Code("0000".into())]);
    assert_eq!(
        api_info(&get_json(&client, &url(&sim, ID)).await).0,
        u64::MAX
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_answers_4008_at_once() {
    let latency = Duration::from_millis(400);
    let sim = start(SimulatorConfig {
        max_concurrent: Some(2),
        latency,
        ..with_credentials()
    })
    .await;
    let client = reqwest::Client::new();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let client = client.clone();
        let url = url(&sim, ID);
        requests.spawn(async move {
            let started = Instant::now();
            let body = get_json(&client, &url).await;
            (code(&body).to_owned(), started.elapsed())
        });
    }
    let answers = requests.join_all().await;
    let refused: Vec<_> = answers.iter().filter(|(code, _)| code == "4008").collect();
    let served = answers.iter().filter(|(code, _)| code == "0000").count();
    assert_eq!(refused.len() + served, 10, "{answers:?}");
    assert!(!refused.is_empty() && served >= 2, "{answers:?}");
    assert!(
        refused.iter().all(|(_, elapsed)| *elapsed < latency),
        "{answers:?}"
    );
    let stats = sim.stats();
    assert!(stats.max_in_flight_seen <= 2, "{stats:?}");
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.charged, u64::try_from(served).unwrap());
    // Every JSON answer is timed; the served ones waited out the latency, the refused did not.
    assert_eq!(stats.timed_answers, 10, "{stats:?}");
    let latency_micros = u64::try_from(latency.as_micros()).unwrap();
    assert!(
        stats.answer_micros >= latency_micros * u64::try_from(served).unwrap(),
        "{stats:?}"
    );
    assert!(stats.answer_micros < latency_micros * 10, "{stats:?}");
}

#[tokio::test]
async fn scripted_answers_come_first_in_order_then_normal() {
    let sim = start(with_credentials()).await;
    let client = reqwest::Client::new();
    sim.script(
        ID,
        vec![
            Scripted::Code("4000".into()),
            Scripted::Http(503, "busy".into()),
            Scripted::Body(b"not json".to_vec()),
            Scripted::Item(json!({"num_iid": ID, "title": "scripted"})),
        ],
    );
    sim.script(
        ID,
        vec![
            Scripted::Code("2000".into()),
            Scripted::Delay(Duration::from_millis(200)),
        ],
    );
    let get = || client.get(url(&sim, ID)).send();

    let other = get_json(&client, &url(&sim, OTHER_ID)).await;
    assert_eq!(code(&other), "0000");
    let body: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(
        (code(&body), body["reason"].as_str()),
        ("4000", Some("服务器内部错误"))
    );
    let response = get().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "busy");
    assert_eq!(get().await.unwrap().text().await.unwrap(), "not json");
    let body: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(code(&body), "0000");
    assert_eq!(body["item"], json!({"num_iid": ID, "title": "scripted"}));
    assert_eq!(
        code(&get().await.unwrap().json::<Value>().await.unwrap()),
        "2000"
    );
    let started = Instant::now();
    let body: Value = get().await.unwrap().json().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(code(&body), "0000");
    assert_eq!(body["item"]["num_iid"], ID);
    assert_eq!(code(&get_json(&client, &url(&sim, ID)).await), "0000");

    let stats = sim.stats();
    let by_code: Vec<(&str, u64)> = stats
        .by_code
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        by_code,
        [
            ("0000", 4),
            ("2000", 1),
            ("4000", 1),
            ("body", 1),
            ("http503", 1)
        ]
    );
    assert_eq!(stats.charged, 5);
    assert_eq!(stats.per_item[ID], 7);
}

#[tokio::test]
async fn reset_is_a_connection_error() {
    let sim = start(with_credentials()).await;
    sim.script(ID, vec![Scripted::Reset]);
    let error = reqwest::get(url(&sim, ID)).await.unwrap_err();
    assert!(!error.is_timeout(), "{error:?}");
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    assert!(error.status().is_none());
    assert_eq!(sim.stats().by_code["reset"], 1);
    // The next request is answered normally.
    assert_eq!(
        code(
            &reqwest::get(url(&sim, ID))
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        ),
        "0000"
    );
}

#[tokio::test]
async fn hang_is_a_client_timeout_and_frees_its_slot_when_the_client_leaves() {
    let sim = start(SimulatorConfig {
        max_concurrent: Some(1),
        ..with_credentials()
    })
    .await;
    sim.script(ID, vec![Scripted::Hang, Scripted::Hang]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client.get(url(&sim, ID)).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while sim.stats().in_flight > 0 {
        assert!(Instant::now() < deadline, "the hung request kept its slot");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.stats().by_code["hang"], 1);

    // A hang in progress does not hold up shutdown.
    let pending = tokio::spawn(reqwest::get(url(&sim, ID)));
    while sim.stats().by_code.get("hang") != Some(&2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::timeout(Duration::from_secs(2), sim.shutdown())
        .await
        .unwrap();
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test]
async fn fault_rate_one_always_faults() {
    let sim = start(SimulatorConfig {
        fault_rate: 1.0,
        faults: vec![Fault::Code5000],
        ..with_credentials()
    })
    .await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let body = get_json(&client, &url(&sim, ID)).await;
        assert_eq!(code(&body), "5000");
        assert_eq!(body["reason"], "未知错误");
        assert_eq!(api_info(&body).0, 0);
    }
    assert_eq!(sim.stats().charged, 0);

    let bad_gateway = start(SimulatorConfig {
        fault_rate: 1.0,
        faults: vec![Fault::Http502],
        ..with_credentials()
    })
    .await;
    let response = client.get(url(&bad_gateway, ID)).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("<center>nginx</center>")
    );
    assert_eq!(bad_gateway.stats().by_code["http502"], 1);
}

#[tokio::test]
async fn fault_draws_are_reproducible_from_the_seed() {
    let config = SimulatorConfig {
        fault_rate: 0.5,
        faults: vec![Fault::Code4000, Fault::Code4017],
        seed: 7,
        ..with_credentials()
    };
    let client = reqwest::Client::new();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = start(config.clone()).await;
        let mut codes = Vec::new();
        for _ in 0..20 {
            codes.push(code(&get_json(&client, &url(&sim, ID)).await).to_owned());
        }
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    for expected in ["0000", "4000", "4017"] {
        assert!(runs[0].iter().any(|code| code == expected), "{runs:?}");
    }
}

#[tokio::test]
async fn cover_url_is_volatile_while_the_item_is_stable() {
    let client = reqwest::Client::new();
    let first_sim = start(with_credentials()).await;
    let other_sim = start(SimulatorConfig {
        seed: 99,
        ..with_credentials()
    })
    .await;
    let first = get_json(&client, &url(&first_sim, ID)).await["item"].clone();
    let second = get_json(&client, &url(&other_sim, ID)).await["item"].clone();
    let cover = |item: &Value| item["video"]["pic_url"].as_str().unwrap().to_owned();
    assert_ne!(cover(&first), cover(&second));
    let path = |url: &str| {
        url.split_once('?')
            .unwrap()
            .0
            .split_once(".com/")
            .unwrap()
            .1
            .to_owned()
    };
    assert_eq!(path(&cover(&first)), path(&cover(&second)));
    let strip = |item: &Value| {
        let mut item = item.clone();
        item["video"]["pic_url"] = Value::Null;
        item
    };
    assert_eq!(strip(&first), strip(&second));
    assert_eq!(
        first["title"],
        get_json(&client, &url(&first_sim, ID)).await["item"]["title"]
    );

    let expires: i64 = cover(&first)
        .split("x-expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expires % 3600, 0);
    assert!(expires > Utc::now().timestamp() + 13 * 24 * 3600);

    let another = get_json(&client, &url(&first_sim, OTHER_ID)).await["item"].clone();
    assert_ne!(another["detail_url"], first["detail_url"]);
    assert_ne!(another["video"]["url"], first["video"]["url"]);
}

#[tokio::test]
async fn change_every_changes_the_title() {
    let sim = start(SimulatorConfig {
        change_every: Some(2),
        ..with_credentials()
    })
    .await;
    let client = reqwest::Client::new();
    let mut titles = Vec::new();
    for _ in 0..5 {
        let body = get_json(&client, &url(&sim, ID)).await;
        titles.push(body["item"]["title"].as_str().unwrap().to_owned());
    }
    assert_eq!(titles[0], titles[1]);
    assert!(!titles[0].contains('版'));
    assert_ne!(titles[1], titles[2]);
    assert_eq!(titles[2], format!("{} (第2版)", titles[0]));
    assert_eq!(titles[2], titles[3]);
    assert_eq!(titles[4], format!("{} (第3版)", titles[0]));
    // Charged fetches of one id do not change another's title.
    let other = get_json(&client, &url(&sim, OTHER_ID)).await;
    assert!(!other["item"]["title"].as_str().unwrap().contains('版'));
}

#[tokio::test]
async fn admin_endpoints_over_http() {
    let sim = start(with_credentials()).await;
    let client = reqwest::Client::new();
    let admin = |path: &str| format!("{}/_sim/{path}", sim.base_url());

    let queued: Value = client
        .post(admin("script"))
        .json(&json!({"item_id": ID, "answers": [
            {"code": "4001"},
            {"http": 502, "body": "<html>bad</html>"},
            {"body": "{\"broken\": "},
            {"reset": true},
            {"delay_ms": 10},
            {"item": {"title": "x"}},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queued, json!({"item_id": ID, "queued": 6}));

    let set: Value = client
        .post(admin("today"))
        .json(&json!({"today": 42}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set, json!({"today": 42}));

    assert_eq!(code(&get_json(&client, &url(&sim, ID)).await), "4001");
    let response = client.get(url(&sim, ID)).send().await.unwrap();
    assert_eq!(
        (response.status().as_u16(), response.text().await.unwrap()),
        (502, "<html>bad</html>".into())
    );
    let response = client.get(url(&sim, ID)).send().await.unwrap();
    assert!(response.json::<Value>().await.is_err());
    assert!(client.get(url(&sim, ID)).send().await.is_err());
    let body = get_json(&client, &url(&sim, ID)).await;
    assert_eq!(code(&body), "0000");
    assert_eq!(api_info(&body).0, 43);
    assert_eq!(
        get_json(&client, &url(&sim, ID)).await["item"],
        json!({"title": "x"})
    );

    let stats: SimulatorStats = client
        .get(admin("stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, sim.stats());
    assert_eq!((stats.requests, stats.charged, stats.today), (6, 2, 44));
    assert_eq!(stats.by_code["reset"], 1);

    for (body, problem) in [
        (
            json!({"item_id": ID, "answers": [{"code": "4000", "reset": true}]}),
            "answers[0]",
        ),
        (
            json!({"item_id": ID, "answers": [{"code": "40"}]}),
            "four digits",
        ),
        (json!({"item_id": "", "answers": []}), "item_id"),
        (json!({"item_id": ID}), "answers"),
    ] {
        let response = client
            .post(admin("script"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(problem),
            "{error}"
        );
    }
    assert_eq!(
        client.get(admin("script")).send().await.unwrap().status(),
        405
    );
    assert_eq!(
        client.get(admin("nothing")).send().await.unwrap().status(),
        404
    );
    assert_eq!(sim.stats().requests, 6, "admin requests are not counted");
}

#[test]
fn quota_day_follows_beijing_midnight() {
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let at = |h, min, s| Utc.with_ymd_and_hms(2024, 1, 1, h, min, s).unwrap();
    assert_eq!(quota_day(at(0, 0, 0)), day(2024, 1, 1));
    assert_eq!(quota_day(at(15, 59, 59)), day(2024, 1, 1));
    assert_eq!(quota_day(at(16, 0, 0)), day(2024, 1, 2));
    assert_eq!(
        quota_day(Utc.with_ymd_and_hms(2023, 12, 31, 16, 0, 0).unwrap()),
        day(2024, 1, 1)
    );
}

#[test]
fn quota_rolls_over_days_and_keeps_the_total() {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let expires = NaiveDate::from_ymd_opt(2030, 12, 31).unwrap();
    let mut quota = Quota::new(start);
    quota.today = 5;
    quota.roll_to(start);
    assert_eq!(quota.today, 5);
    quota.roll_to(start + chrono::Days::new(1));
    assert_eq!((quota.today, quota.yesterday, quota.earlier), (0, 5, 0));
    quota.today = 3;
    quota.roll_to(start + chrono::Days::new(2));
    assert_eq!((quota.today, quota.yesterday, quota.earlier), (0, 3, 5));
    quota.today = 2;
    assert_eq!(
        quota.api_info(10, expires),
        "today:2 max:10 all[10=2+3+5];expires:2030-12-31"
    );
    quota.roll_to(start + chrono::Days::new(6));
    assert_eq!((quota.today, quota.yesterday, quota.earlier), (0, 0, 10));
    let before = quota;
    quota.roll_to(start);
    assert_eq!(quota, before, "a clock going back changes nothing");
    assert_eq!(quota.total(), 10);
}

#[tokio::test]
async fn json_escapes_non_ascii_and_jsonu_does_not() {
    let sim = start(with_credentials()).await;
    let client = reqwest::Client::new();
    let ascii = client
        .get(url(&sim, ID).replace("result_type=jsonu", "result_type=json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(ascii.is_ascii());
    assert!(std::str::from_utf8(&ascii).unwrap().contains("\\u"));
    let readable = client
        .get(url(&sim, ID))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!readable.is_ascii());
    let ascii: Value = serde_json::from_slice(&ascii).unwrap();
    let readable: Value = serde_json::from_slice(&readable).unwrap();
    assert_eq!(ascii["item"]["title"], readable["item"]["title"]);
    assert_eq!(ascii["item"]["signature"], readable["item"]["signature"]);

    let encoded = answer::encode(&json!({"t": "好📷\"/"}), true).unwrap();
    assert_eq!(
        String::from_utf8(encoded).unwrap(),
        r#"{"t":"\u597d\ud83d\udcf7\"/"}"#
    );
}

#[test]
fn args_parse_into_a_config() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulatorArgs,
    }
    let defaults = Cli::parse_from(["simulate"]).args;
    assert_eq!(defaults.listen(), "127.0.0.1:8780".parse().unwrap());
    let config = defaults.config();
    assert_eq!(config.faults, Fault::ALL.to_vec());
    assert_eq!(
        (config.daily_max, config.fault_rate, config.seed),
        (10_000, 0.0, 0)
    );
    assert_eq!(
        config.expires_on,
        NaiveDate::from_ymd_opt(2030, 12, 31).unwrap()
    );
    assert_eq!(
        (config.latency, config.max_concurrent, config.change_every),
        (Duration::ZERO, None, None)
    );

    let args = Cli::parse_from([
        "simulate",
        "--listen",
        "0.0.0.0:9000",
        "--key",
        "k",
        "--secret",
        "s",
        "--latency",
        "50ms",
        "--latency-jitter",
        "1s",
        "--max-concurrent",
        "4",
        "--daily-max",
        "20",
        "--expires",
        "2031-02-03",
        "--fault-rate",
        "0.25",
        "--faults",
        "4000,5000,http502,reset,hang",
        "--not-found",
        "1,2",
        "--change-every",
        "3",
        "--seed",
        "9",
    ])
    .args;
    assert_eq!(args.listen(), "0.0.0.0:9000".parse().unwrap());
    let config = args.config();
    assert_eq!(
        (config.key.as_deref(), config.secret.as_deref()),
        (Some("k"), Some("s"))
    );
    assert_eq!(
        (config.latency, config.latency_jitter),
        (Duration::from_millis(50), Duration::from_secs(1))
    );
    assert_eq!(
        (config.max_concurrent, config.daily_max, config.change_every),
        (Some(4), 20, Some(3))
    );
    assert_eq!(
        config.expires_on,
        NaiveDate::from_ymd_opt(2031, 2, 3).unwrap()
    );
    assert_eq!((config.fault_rate, config.seed), (0.25, 9));
    assert_eq!(
        config.faults,
        [
            Fault::Code4000,
            Fault::Code5000,
            Fault::Http502,
            Fault::Reset,
            Fault::Hang
        ]
    );
    assert_eq!(
        config.not_found,
        HashSet::from(["1".to_owned(), "2".to_owned()])
    );

    for bad in [
        &["simulate", "--fault-rate", "1.5"][..],
        &["simulate", "--faults", "404"],
        &["simulate", "--max-concurrent", "0"],
        &["simulate", "--change-every", "0"],
        &["simulate", "--latency", "soon"],
    ] {
        assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn fault_names_round_trip() {
    for fault in Fault::ALL {
        assert_eq!(fault.label().parse::<Fault>(), Ok(fault));
        assert_eq!(fault.to_string(), fault.label());
    }
    assert_eq!("Code4017".parse::<Fault>(), Ok(Fault::Code4017));
    assert_eq!("502".parse::<Fault>(), Ok(Fault::Http502));
    assert!("404".parse::<Fault>().is_err());
}

#[tokio::test]
async fn run_until_serves_until_cancelled() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let token = CancellationToken::new();
    let server = tokio::spawn(Simulator::run_until(
        listen,
        SimulatorConfig::default(),
        token.clone(),
    ));
    let stats_url = format!("http://{listen}/_sim/stats");
    let deadline = Instant::now() + Duration::from_secs(3);
    while reqwest::get(&stats_url).await.is_err() {
        assert!(Instant::now() < deadline, "the simulator never answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    token.cancel();
    server.await.unwrap().unwrap();
    assert!(TcpStream::connect(listen).await.is_err());
}

#[tokio::test]
async fn keep_alive_pipelining_and_malformed_requests_over_a_raw_socket() {
    let sim = start(SimulatorConfig {
        latency: Duration::from_millis(20),
        ..with_credentials()
    })
    .await;
    let path = format!("/douyin/item_get_video/?key=k&secret=s&item_id={ID}");
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    let requests = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut answers = String::new();
    stream.read_to_string(&mut answers).await.unwrap();
    assert_eq!(
        answers.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "{answers}"
    );
    assert!(answers.contains("Connection: keep-alive\r\n"));
    assert!(answers.contains("Connection: close\r\n"));

    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    let body = br#"{"today": 5}"#;
    let head = format!(
        "POST /_sim/today HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0_u8; 25];
    stream.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(sim.stats().today, 5);

    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    stream.write_all(b"NONSENSE\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert_eq!(sim.stats().requests, 2);
}

#[tokio::test]
async fn latency_and_jitter_delay_answers() {
    let sim = start(SimulatorConfig {
        latency: Duration::from_millis(100),
        latency_jitter: Duration::from_millis(50),
        ..with_credentials()
    })
    .await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let started = Instant::now();
        let body = get_json(&client, &url(&sim, ID)).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        let reported: f64 = body["execution_time"].as_str().unwrap().parse().unwrap();
        assert!((0.1..0.5).contains(&reported), "{reported}");
    }
}

/// Reads a raw answer until the server ends the connection: the bytes, and the error that ended it
/// (`None` for an orderly close).
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => return (received, None),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) => return (received, Some(error.kind())),
        }
    }
}

/// Splits a raw answer into its head (without the blank line) and body.
fn split_answer(answer: &[u8]) -> (String, &[u8]) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    (
        String::from_utf8(answer[..end].to_vec()).unwrap(),
        &answer[end + 4..],
    )
}

/// Waits until no admitted request is in flight any more.
async fn wait_until_idle(sim: &Simulator) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while sim.stats().in_flight > 0 {
        assert!(Instant::now() < deadline, "a request kept its slot");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn trickle_drips_the_body_and_a_short_timeout_cuts_it_off() {
    let sim = start(with_credentials()).await;
    sim.script(
        ID,
        vec![Scripted::Trickle {
            body: b"0123456789".to_vec(),
            chunk: 3,
            every: Duration::from_millis(50),
        }],
    );
    let started = Instant::now();
    let response = reqwest::get(url(&sim, ID)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(10));
    assert_eq!(response.bytes().await.unwrap(), &b"0123456789"[..]);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "four writes, three pauses: {:?}",
        started.elapsed()
    );

    // A drip slower than the client's timeout: the head arrives, the body never completes.
    sim.script(
        ID,
        vec![Scripted::Trickle {
            body: vec![b' '; 100],
            chunk: 1,
            every: Duration::from_millis(100),
        }],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let response = client.get(url(&sim, ID)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let error = response.bytes().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    wait_until_idle(&sim).await;
    let stats = sim.stats();
    assert_eq!(stats.by_code["trickle"], 2);
    assert_eq!(stats.charged, 0, "a raw body is not charged");
    // A chunk of 0 is taken as 1 rather than looping forever.
    sim.script(
        ID,
        vec![Scripted::Trickle {
            body: b"ab".to_vec(),
            chunk: 0,
            every: Duration::ZERO,
        }],
    );
    let body = reqwest::get(url(&sim, ID)).await.unwrap().bytes().await;
    assert_eq!(body.unwrap(), &b"ab"[..]);
}

#[tokio::test]
async fn reset_mid_body_sends_the_head_and_part_of_the_body_then_resets() {
    let sim = start(with_credentials()).await;
    let body = br#"{"error_code":"0000","item":{"num_iid":"7118694749548072205"}}"#.to_vec();
    sim.script(
        ID,
        vec![Scripted::ResetMidBody {
            body: body.clone(),
            after: 20,
        }],
    );
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    let path = format!("/douyin/item_get_video/?key=k&secret=s&item_id={ID}");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (answer, ended_by) = read_until_closed(&mut stream).await;
    let (head, sent) = split_answer(&answer);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "the whole body is announced: {head}"
    );
    assert_eq!(sent, &body[..20]);
    assert_eq!(ended_by, Some(std::io::ErrorKind::ConnectionReset));

    // reqwest sees a 200 whose body fails, which is neither a timeout nor a connect error.
    sim.script(ID, vec![Scripted::ResetMidBody { body, after: 20 }]);
    let response = reqwest::get(url(&sim, ID)).await.unwrap();
    assert_eq!(response.status(), 200);
    let error = response.bytes().await.unwrap_err();
    assert!(!error.is_timeout() && !error.is_connect(), "{error:?}");
    wait_until_idle(&sim).await;
    assert_eq!(sim.stats().by_code["reset_mid_body"], 2);
    assert_eq!(sim.stats().charged, 0);
}

#[tokio::test]
async fn redirect_answers_302_with_its_location() {
    let sim = start(with_credentials()).await;
    sim.script(
        ID,
        vec![
            Scripted::Redirect("http://127.0.0.1:9/elsewhere?a=1".into()),
            Scripted::Redirect("http://127.0.0.1:9/\r\nX-Injected: 1".into()),
        ],
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(url(&sim, ID)).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "http://127.0.0.1:9/elsewhere?a=1"
    );
    assert!(response.text().await.unwrap().contains("302 Found"));
    let response = client.get(url(&sim, ID)).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "http://127.0.0.1:9/X-Injected: 1"
    );
    assert!(response.headers().get("x-injected").is_none());
    let stats = sim.stats();
    assert_eq!((stats.by_code["redirect"], stats.charged), (2, 0));
}

#[tokio::test]
async fn huge_streams_a_padded_envelope_of_the_exact_size() {
    let sim = start(with_credentials()).await;
    let size = 3_000_000;
    sim.script(
        ID,
        vec![Scripted::Huge { bytes: size }, Scripted::Huge { bytes: 10 }],
    );
    let response = reqwest::get(url(&sim, ID)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(size as u64));
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), size);
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code(&envelope), "0000");
    assert_eq!(envelope["item"]["num_iid"], ID);
    assert_eq!(api_info(&envelope).0, 1, "a huge success is charged");
    let padding = envelope["padding"].as_str().unwrap();
    assert!(padding.len() > size - 5_000, "{}", padding.len());
    assert!(padding.bytes().all(|b| b == b'x'));

    // Smaller than the envelope: the envelope alone, with an empty padding.
    let small: Value = get_json(&reqwest::Client::new(), &url(&sim, ID)).await;
    assert_eq!(code(&small), "0000");
    assert_eq!(small["padding"], "");

    // A client that stops reading does not hold the simulator: it gives up when the client leaves.
    sim.script(
        ID,
        vec![Scripted::Huge {
            bytes: 200 * 1024 * 1024,
        }],
    );
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    let path = format!("/douyin/item_get_video/?key=k&secret=s&item_id={ID}");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut start_of_answer = [0_u8; 1024];
    stream.read_exact(&mut start_of_answer).await.unwrap();
    assert!(start_of_answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
    drop(stream);
    wait_until_idle(&sim).await;
    let stats = sim.stats();
    assert_eq!((stats.by_code["huge"], stats.charged), (3, 3));
}

#[test]
fn padded_adds_a_string_field_that_reaches_the_size() {
    let (prefix, padding, suffix) = answer::padded(br#"{"a":1}"#.to_vec(), 40);
    assert_eq!(prefix.len() + padding + suffix.len(), 40);
    let mut body = prefix;
    body.extend(std::iter::repeat_n(b'x', padding));
    body.extend(suffix);
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["a"], 1);
    assert_eq!(value["padding"].as_str().unwrap().len(), padding);

    let (prefix, padding, suffix) = answer::padded(b"{}".to_vec(), 0);
    let mut body = prefix;
    body.extend(suffix);
    assert_eq!((body.as_slice(), padding), (&br#"{"padding":""}"#[..], 0));

    let (prefix, padding, suffix) = answer::padded(b"[1]".to_vec(), 100);
    assert_eq!(
        (prefix.as_slice(), padding, suffix.len()),
        (&b"[1]"[..], 0, 0)
    );
}

#[test]
fn the_hostile_answers_have_admin_forms() {
    let request = admin::parse_script(
        json!({"item_id": ID, "answers": [
            {"trickle": {"body": "{}", "chunk": 1, "every_ms": 100}},
            {"reset_mid_body": {"body": "0123456789", "after": 4}},
            {"redirect": "http://127.0.0.1:1/x"},
            {"huge": 10485760},
            {"http": 502, "body": "b"},
            {"body": "raw"},
        ]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        request.answers,
        [
            Scripted::Trickle {
                body: b"{}".to_vec(),
                chunk: 1,
                every: Duration::from_millis(100),
            },
            Scripted::ResetMidBody {
                body: b"0123456789".to_vec(),
                after: 4,
            },
            Scripted::Redirect("http://127.0.0.1:1/x".into()),
            Scripted::Huge { bytes: 10_485_760 },
            Scripted::Http(502, "b".into()),
            Scripted::Body(b"raw".to_vec()),
        ]
    );
    for (answer, problem) in [
        (
            json!({"trickle": {"body": "x", "chunk": 0, "every_ms": 1}}),
            "chunk",
        ),
        (json!({"trickle": {"body": "x", "chunk": 1}}), "every_ms"),
        (
            json!({"reset_mid_body": {"body": "x", "after": 2}}),
            "after",
        ),
        (json!({"redirect": "http://x/\r\nEvil: 1"}), "control"),
        (json!({"redirect": " "}), "redirect"),
        (json!({"huge": -1}), "invalid"),
        (json!({"huge": 10, "body": "x"}), "exactly one"),
        (
            json!({"redirect": "http://x/", "reset": true}),
            "exactly one",
        ),
        (json!({"reset": false}), "exactly one"),
        (json!({}), "exactly one"),
    ] {
        let body = json!({"item_id": ID, "answers": [answer]}).to_string();
        let error = admin::parse_script(body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains(problem), "{answer}: {error}");
    }
}

#[tokio::test]
async fn the_hostile_answers_can_be_scripted_over_http() {
    let sim = start(with_credentials()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let queued: Value = client
        .post(format!("{}/_sim/script", sim.base_url()))
        .json(&json!({"item_id": ID, "answers": [
            {"trickle": {"body": "drip", "chunk": 2, "every_ms": 1}},
            {"reset_mid_body": {"body": "0123456789", "after": 4}},
            {"redirect": "http://127.0.0.1:1/x"},
            {"huge": 100000},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queued, json!({"item_id": ID, "queued": 4}));
    let get = || client.get(url(&sim, ID)).send();
    assert_eq!(get().await.unwrap().text().await.unwrap(), "drip");
    assert!(get().await.unwrap().bytes().await.is_err());
    assert_eq!(get().await.unwrap().status(), 302);
    assert_eq!(get().await.unwrap().bytes().await.unwrap().len(), 100_000);
    let by_code = sim.stats().by_code;
    for label in ["trickle", "reset_mid_body", "redirect", "huge"] {
        assert_eq!(by_code[label], 1, "{label}");
    }
}
