//! The onebound HTTP client: one `GET douyin/item_get_video/` per call, nothing else.
//!
//! Built once with the timeout and base URL from the settings. It follows no redirects, caps the
//! body it reads, and strips the request URL (which carries the secret) from every error. A hostile
//! or broken server may echo the request line back (PHP warnings, firewall pages): the secret is
//! blanked out of every body before anything else sees it.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tracing::instrument;

use crate::attempt::{Exchange, TransportKind};
use crate::settings::ApiSettings;
use crate::video_id::VideoId;

/// The path of the one API this client calls, below `api.base_url`.
pub const ITEM_GET_VIDEO_PATH: &str = "douyin/item_get_video/";

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    /// The settings check `api.base_url`, so only a caller that skipped them meets this.
    #[error("api.base_url {0:?} is not an http(s) URL without a query")]
    Endpoint(String),
}

/// A complete HTTP answer, or why there was none.
#[derive(Debug)]
pub enum Answer {
    /// Status and the whole body (at most `max_body_bytes`).
    Received { status: u16, body: Vec<u8> },
    /// No usable answer; the message never contains the request URL.
    Failed {
        kind: TransportKind,
        message: String,
    },
}

impl Answer {
    /// The answer as the pure judge takes it.
    pub fn exchange(&self) -> Exchange<'_> {
        match self {
            Answer::Received { status, body } => Exchange::Answered {
                status: *status,
                body,
            },
            Answer::Failed { kind, message } => Exchange::Failed {
                kind: *kind,
                message: message.clone(),
            },
        }
    }
}

/// Calls onebound's `douyin/item_get_video` API.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// The request URL's parts, built once: see [`RequestUrl`].
    url: RequestUrl,
    max_body_bytes: usize,
    /// Matches the secret as sent (plain or URL-encoded); `None` for secrets too short to blank out
    /// without mangling ordinary text.
    secret_pattern: Option<regex::bytes::Regex>,
}

/// The request URL, parsed and encoded once: per call only the video id is put in.
#[derive(Clone)]
struct RequestUrl {
    /// The endpoint, without a query.
    endpoint: url::Url,
    /// `key=…&secret=…&item_id=`, form-encoded as reqwest's `query` would: it holds the secret.
    head: SecretString,
    /// `&cache=…&lang=…` and the other fixed parameters, form-encoded.
    tail: String,
}

impl RequestUrl {
    fn new(endpoint: &str, key: &str, secret: &str, fixed: &[(&str, String)]) -> Option<Self> {
        let endpoint = url::Url::parse(endpoint).ok()?;
        if endpoint.query().is_some() || endpoint.cannot_be_a_base() {
            return None;
        }
        let head = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("key", key)
            .append_pair("secret", secret)
            .append_pair("item_id", "")
            .finish();
        let mut tail = String::new();
        for (name, value) in fixed {
            tail.push('&');
            tail.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .append_pair(name, value)
                    .finish(),
            );
        }
        Some(RequestUrl {
            endpoint,
            head: SecretString::from(head),
            tail,
        })
    }

    /// The URL that asks for `video_id`: the same text reqwest's `query` makes of the pairs.
    fn for_video(&self, video_id: &VideoId) -> url::Url {
        let head = self.head.expose_secret();
        let mut query = String::with_capacity(head.len() + 24 + self.tail.len());
        query.push_str(head);
        query.extend(url::form_urlencoded::byte_serialize(
            video_id.as_str().as_bytes(),
        ));
        query.push_str(&self.tail);
        let mut url = self.endpoint.clone();
        url.set_query(Some(&query));
        url
    }
}

/// What replaces the secret in an answer body.
pub const REDACTED: &[u8] = b"[redacted]";

/// Secrets shorter than this are not blanked out of bodies: they would match ordinary text.
const MIN_REDACTED_SECRET: usize = 8;

fn secret_pattern(secret: &str) -> Option<regex::bytes::Regex> {
    if secret.len() < MIN_REDACTED_SECRET {
        return None;
    }
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let pattern = format!("{}|{}", regex::escape(secret), regex::escape(&encoded));
    regex::bytes::Regex::new(&pattern).ok()
}

impl ApiClient {
    /// Builds the client from the `[api]` settings.
    pub fn new(api: &ApiSettings) -> Result<ApiClient, ClientBuildError> {
        let http = reqwest::Client::builder()
            .timeout(api.timeout)
            .connect_timeout(api.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("douyin-watch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientBuildError::Http(e.without_url()))?;
        let mut fixed_query = vec![
            ("cache", api.cache.clone()),
            ("lang", api.lang.clone()),
            ("result_type", api.result_type.clone()),
        ];
        if !api.version.is_empty() {
            fixed_query.push(("version", api.version.clone()));
        }
        let endpoint = format!(
            "{}/{ITEM_GET_VIDEO_PATH}",
            api.base_url.trim_end_matches('/')
        );
        let url = RequestUrl::new(
            &endpoint,
            &api.key,
            api.secret.expose_secret(),
            &fixed_query,
        )
        .ok_or_else(|| ClientBuildError::Endpoint(api.base_url.clone()))?;
        Ok(ApiClient {
            http,
            url,
            max_body_bytes: api.max_body_bytes,
            secret_pattern: secret_pattern(api.secret.expose_secret()),
        })
    }

    /// Asks for one video. Never fails: a missing answer is an `Answer::Failed`.
    ///
    /// The span (for the HTTP stack's own debug events) is at debug level: at the default `info`
    /// it is not created at all, which saves its cost on every call.
    #[instrument(level = "debug", skip_all, fields(video_id = %video_id))]
    pub async fn item_get_video(&self, video_id: &VideoId) -> Answer {
        let request = self.http.get(self.url.for_video(video_id));
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return failed(error),
        };
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Answer::Failed {
                kind: TransportKind::Redirect,
                message: format!("HTTP {status} redirect: API calls follow no redirects"),
            };
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body_bytes {
                        return Answer::Failed {
                            kind: TransportKind::BodyTooLarge,
                            message: format!(
                                "answer body exceeds api.max_body_bytes ({} bytes); stopped reading",
                                self.max_body_bytes
                            ),
                        };
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => return failed(error),
            }
        }
        Answer::Received {
            status,
            body: self.redact(body),
        }
    }

    /// `body` with every occurrence of the secret replaced by [`REDACTED`].
    fn redact(&self, body: Vec<u8>) -> Vec<u8> {
        match &self.secret_pattern {
            Some(pattern) if pattern.is_match(&body) => {
                pattern.replace_all(&body, REDACTED).into_owned()
            }
            _ => body,
        }
    }
}

/// Classifies a reqwest error, dropping the URL (and so the secret) from it.
fn failed(error: reqwest::Error) -> Answer {
    let error = error.without_url();
    let kind = if error.is_timeout() {
        TransportKind::Timeout
    } else if error.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Reset
    };
    Answer::Failed {
        kind,
        message: error_chain(&error),
    }
}

/// An error and its sources on one line: "error sending request: connection refused".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base_url: &str, secret: &str, version: &str) -> ApiSettings {
        let mut api = crate::settings::Settings::load_from(None, Default::default())
            .expect("the default settings")
            .api;
        api.base_url = base_url.to_owned();
        api.key = "k y&1".to_owned();
        api.secret = SecretString::from(secret.to_owned());
        api.version = version.to_owned();
        api
    }

    #[test]
    fn the_prebuilt_url_is_the_one_reqwest_builds_from_the_pairs() {
        let id = VideoId::parse("7118694749548072205").expect("id");
        let cases = [
            ("https://api-gw.onebound.cn", "s3cr=t+/é%", ""),
            ("http://127.0.0.1:8080/", "secret", "v1.2"),
            ("https://example.com/base/path", "a b", "x y"),
        ];
        for (base, secret, version) in cases {
            let api = settings(base, secret, version);
            let client = ApiClient::new(&api).expect("client");
            let prebuilt = client.url.for_video(&id);
            // What reqwest's own query encoding makes of the same pairs.
            let mut fixed = vec![
                ("cache", api.cache.as_str()),
                ("lang", api.lang.as_str()),
                ("result_type", api.result_type.as_str()),
            ];
            if !version.is_empty() {
                fixed.push(("version", version));
            }
            let built = client
                .http
                .get(format!(
                    "{}/{ITEM_GET_VIDEO_PATH}",
                    base.trim_end_matches('/')
                ))
                .query(&[
                    ("key", api.key.as_str()),
                    ("secret", secret),
                    ("item_id", id.as_str()),
                ])
                .query(&fixed)
                .build()
                .expect("request");
            assert_eq!(prebuilt.as_str(), built.url().as_str(), "{base}");
        }
    }

    #[test]
    fn an_endpoint_that_is_not_a_plain_url_is_refused() {
        for base in ["not a url", "https://example.com/?a=1"] {
            match ApiClient::new(&settings(base, "secret", "")) {
                Err(ClientBuildError::Endpoint(shown)) => assert_eq!(shown, base),
                Err(other) => panic!("{base}: {other}"),
                Ok(_) => panic!("{base}: accepted"),
            }
        }
    }
}
