//! The onebound client against a mock server on 127.0.0.1: request shape, answers, failures.

use std::collections::HashMap;
use std::time::Duration;

use douyin_watch::attempt::TransportKind;
use douyin_watch::client::{Answer, ApiClient};
use douyin_watch::settings::Settings;
use douyin_watch::video_id::VideoId;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "SECRET-canary-5150";
const ID: &str = "7118694749548072205";

fn client(base_url: &str, extra: &[(&str, &str)]) -> ApiClient {
    let mut environment: HashMap<String, String> = HashMap::from([
        (
            "DOUYIN_WATCH__API__BASE_URL".to_owned(),
            base_url.to_owned(),
        ),
        ("DOUYIN_WATCH__API__KEY".to_owned(), "the-key".to_owned()),
        ("DOUYIN_WATCH__API__SECRET".to_owned(), SECRET.to_owned()),
        ("DOUYIN_WATCH__API__TIMEOUT".to_owned(), "300ms".to_owned()),
    ]);
    for (key, value) in extra {
        environment.insert((*key).to_owned(), (*value).to_owned());
    }
    let settings = Settings::load_from(None, environment).expect("settings");
    ApiClient::new(&settings.api).expect("client")
}

fn id() -> VideoId {
    ID.parse().expect("id")
}

fn failure(answer: Answer) -> (TransportKind, String) {
    match answer {
        Answer::Failed { kind, message } => (kind, message),
        Answer::Received { status, .. } => panic!("expected a failure, got HTTP {status}"),
    }
}

#[tokio::test]
async fn sends_every_parameter_the_api_documents() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/douyin/item_get_video/"))
        .and(query_param("key", "the-key"))
        .and(query_param("secret", SECRET))
        .and(query_param("item_id", ID))
        .and(query_param("cache", "no"))
        .and(query_param("lang", "en"))
        .and(query_param("result_type", "jsonu"))
        .and(query_param("version", "1.2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(
        &format!("{}/", server.uri()),
        &[
            ("DOUYIN_WATCH__API__CACHE", "no"),
            ("DOUYIN_WATCH__API__LANG", "en"),
            ("DOUYIN_WATCH__API__RESULT_TYPE", "jsonu"),
            ("DOUYIN_WATCH__API__VERSION", "1.2"),
        ],
    );
    match client.item_get_video(&id()).await {
        Answer::Received { status, body } => {
            assert_eq!(status, 200);
            assert_eq!(body, b"{}");
        }
        Answer::Failed { message, .. } => panic!("{message}"),
    }
}

#[tokio::test]
async fn leaves_version_out_when_it_is_empty() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    client(&server.uri(), &[]).item_get_video(&id()).await;
    let requests = server.received_requests().await.expect("recorded");
    let query = requests[0].url.query().unwrap_or_default().to_owned();
    assert!(!query.contains("version"), "{query}");
    assert!(
        query.contains("cache=yes")
            && query.contains("lang=cn")
            && query.contains("result_type=json"),
        "{query}"
    );
}

#[tokio::test]
async fn server_errors_come_back_with_status_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .mount(&server)
        .await;
    match client(&server.uri(), &[]).item_get_video(&id()).await {
        Answer::Received { status, body } => {
            assert_eq!(status, 502);
            assert_eq!(body, b"<html>Bad Gateway</html>");
        }
        Answer::Failed { message, .. } => panic!("{message}"),
    }
}

#[tokio::test]
async fn a_timeout_is_classified_and_its_message_has_no_url_or_secret() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let (kind, message) = failure(client(&server.uri(), &[]).item_get_video(&id()).await);
    assert_eq!(kind, TransportKind::Timeout);
    assert!(!message.contains(SECRET), "{message}");
    assert!(!message.contains("item_get_video"), "{message}");
    assert!(!message.contains("127.0.0.1"), "{message}");
}

#[tokio::test]
async fn connection_refused_is_a_connect_failure_without_the_secret() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let (kind, message) = failure(
        client(&format!("http://127.0.0.1:{port}"), &[])
            .item_get_video(&id())
            .await,
    );
    assert_eq!(kind, TransportKind::Connect);
    assert!(!message.contains(SECRET), "{message}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", "http://127.0.0.1:1/elsewhere"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (kind, message) = failure(client(&server.uri(), &[]).item_get_video(&id()).await);
    assert_eq!(kind, TransportKind::Redirect);
    assert!(message.contains("302"), "{message}");
}

#[tokio::test]
async fn bodies_over_the_limit_are_cut_off() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(64 * 1024)))
        .mount(&server)
        .await;
    let (kind, message) = failure(
        client(
            &server.uri(),
            &[("DOUYIN_WATCH__API__MAX_BODY_BYTES", "4096")],
        )
        .item_get_video(&id())
        .await,
    );
    assert_eq!(kind, TransportKind::BodyTooLarge);
    assert!(message.contains("api.max_body_bytes"), "{message}");
}

#[tokio::test]
async fn an_echoed_secret_is_blanked_out_of_the_body() {
    let server = MockServer::start().await;
    let secret = "SECRET/canary+5150";
    // As a PHP error page would show it, then as `json_encode` would (every `/` as `\/`).
    let echo = format!(
        "<b>Warning</b>: GET /douyin/item_get_video/?secret=SECRET%2Fcanary%2B5150&item_id={ID} (secret {secret}) \
         {{\"reason\":\"bad secret SECRET\\/canary+5150\"}}"
    );
    Mock::given(method("GET"))
        .and(query_param("secret", secret))
        .respond_with(ResponseTemplate::new(200).set_body_string(echo))
        .mount(&server)
        .await;
    let client = client(&server.uri(), &[("DOUYIN_WATCH__API__SECRET", secret)]);
    match client.item_get_video(&id()).await {
        Answer::Received { body, .. } => {
            let body = String::from_utf8(body).expect("text");
            assert!(!body.contains("canary"), "{body}");
            assert!(body.contains("?secret=[redacted]&item_id"), "{body}");
            assert!(body.contains("(secret [redacted])"), "{body}");
            assert!(
                body.contains(r#""reason":"bad secret [redacted]""#),
                "{body}"
            );
        }
        Answer::Failed { message, .. } => panic!("{message}"),
    }
}
