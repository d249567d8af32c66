//! The onebound HTTP client: one `GET douyin/item_get_video/` per call, nothing else.
//!
//! Built once with the timeout and base URL from the settings. It speaks HTTP/1.1 through
//! hyper-util's pooled `legacy::Client` (the pool reqwest runs on), with TLS as reqwest's `rustls`
//! feature sets it up (hyper-rustls over hyper-util's `HttpConnector`). reqwest itself cost about
//! 70,000 instructions per call (re-parsing the URL, a redirect layer, header merging) for a
//! request that is the same every time but for the video id. It follows no redirects, caps the
//! body it reads, and builds its error messages from errors that never hold the request URL
//! (which carries the secret). A hostile or broken server may echo the request line back (PHP
//! warnings, firewall pages): the secret is blanked out of every body before anything else sees it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::{ACCEPT, HOST, HeaderValue, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};
use tracing::instrument;

use crate::attempt::{Exchange, TransportKind};
use crate::settings::ApiSettings;
use crate::video_id::VideoId;

/// How long a connection may sit idle and still be reused: reqwest's default, and shorter than
/// the point where NAT tables and load balancers tend to drop a silent connection without a word.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The path of the one API this client calls, below `api.base_url`.
pub const ITEM_GET_VIDEO_PATH: &str = "douyin/item_get_video/";

/// What the client calls itself in `User-Agent`.
const USER_AGENT_VALUE: &str = concat!("douyin-watch/", env!("CARGO_PKG_VERSION"));

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("cannot set up TLS for the API: {0}")]
    Tls(#[source] rustls::Error),
    /// The settings check `api.base_url`, so only a caller that skipped them meets this.
    #[error("api.base_url {0:?} is not an http(s) URL without a query or credentials")]
    Endpoint(String),
    /// Answers are searched for the secret so that an echo of it is blanked out; a secret too
    /// long for that search is refused rather than let through.
    #[error(
        "api.secret is too long to be searched for in answers ({0} characters); check its value"
    )]
    SecretTooLong(usize),
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
    /// Keep-alive connections to the API host.
    http: Client<TimedConnector, Empty<Bytes>>,
    /// The scheme and authority of every request URI (the pool's key).
    scheme: Scheme,
    authority: Authority,
    /// The request target's parts, built once: see [`RequestTarget`].
    target: RequestTarget,
    /// The `Host` header: the base URL's host, and its port unless it is the scheme's default.
    host: HeaderValue,
    /// For the whole exchange, connecting and reading the body included.
    timeout: Duration,
    max_body_bytes: usize,
    /// Matches the secret as sent (plain or URL-encoded); `None` for secrets too short to blank out
    /// without mangling ordinary text.
    secret_pattern: Option<regex::bytes::Regex>,
}

/// The request target (`/path?query`), encoded once: per call only the video id is put in.
#[derive(Clone)]
struct RequestTarget {
    /// The endpoint's path, percent-encoded.
    path: String,
    /// `key=…&secret=…&item_id=`, form-encoded as reqwest's `query` would: it holds the secret.
    head: SecretString,
    /// `&cache=…&lang=…` and the other fixed parameters, form-encoded.
    tail: String,
}

impl RequestTarget {
    fn new(endpoint: &url::Url, key: &str, secret: &str, fixed: &[(&str, String)]) -> Self {
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
        RequestTarget {
            path: endpoint.path().to_owned(),
            head: SecretString::from(head),
            tail,
        }
    }

    /// The target that asks for `video_id`: the path and query reqwest's `query` makes of the pairs.
    fn for_video(&self, video_id: &VideoId) -> PathAndQuery {
        let head = self.head.expose_secret();
        let mut target =
            String::with_capacity(self.path.len() + 1 + head.len() + 24 + self.tail.len());
        target.push_str(&self.path);
        target.push('?');
        target.push_str(head);
        target.extend(url::form_urlencoded::byte_serialize(
            video_id.as_str().as_bytes(),
        ));
        target.push_str(&self.tail);
        // `http` checks each byte; `ApiClient::new` has checked these very parts, and the
        // form-encoded id adds only characters that pass.
        PathAndQuery::from_maybe_shared(Bytes::from(target))
            .expect("a request target checked when the client was built")
    }

    /// Whether `http` takes the fixed parts as a request target.
    fn is_valid(&self) -> bool {
        let sample = format!("{}?{}{}", self.path, self.head.expose_secret(), self.tail);
        PathAndQuery::from_maybe_shared(Bytes::from(sample)).is_ok()
    }
}

/// What replaces the secret in an answer body: the text before the secret that the pattern
/// matched (see [`secret_pattern`]), then `[redacted]`.
const REDACTED: &[u8] = b"${before}[redacted]";

/// Secrets shorter than this are blanked out only where they follow `secret=`: anywhere else
/// they would match ordinary text (a one-letter secret would blank every such letter of an
/// answer, URLs included).
const MIN_FREE_TEXT_SECRET: usize = 8;

/// A pattern for the secret as an answer body can carry it, each character either as is or in
/// any encoding an echo of it may use: percent-encoded (as in an echoed request URL, `+` for a
/// space) and JSON-escaped (`\/` for `/` as PHP's `json_encode` writes it, `\"`, `\\`, or
/// `\uXXXX`), in either case of hex digits. A short secret is looked for only after `secret=`
/// (its `=` in any of those forms), which the group `before` holds. None for an empty secret.
fn secret_pattern(secret: &str) -> Result<Option<regex::bytes::Regex>, ClientBuildError> {
    if secret.is_empty() {
        return Ok(None);
    }
    let mut pattern = if secret.chars().count() < MIN_FREE_TEXT_SECRET {
        r"(?P<before>secret(?:=|%3[dD]|\\u003[dD]))".to_owned()
    } else {
        "(?P<before>)".to_owned()
    };
    for c in secret.chars() {
        let mut utf8 = [0; 4];
        let utf8 = c.encode_utf8(&mut utf8);
        let mut forms = vec![regex::escape(utf8)];
        let percent: String = utf8
            .bytes()
            .map(|b| format!("%{}", any_case_hex(&format!("{b:02x}"))))
            .collect();
        forms.push(percent);
        let mut utf16 = [0; 2];
        let escaped: String = c
            .encode_utf16(&mut utf16)
            .iter()
            .map(|unit| format!(r"\\u{}", any_case_hex(&format!("{unit:04x}"))))
            .collect();
        forms.push(escaped);
        match c {
            ' ' => forms.push(r"\+".to_owned()),
            '/' | '"' | '\\' => forms.push(format!(r"\\{}", regex::escape(&c.to_string()))),
            _ => {}
        }
        pattern.push_str(&format!("(?:{})", forms.join("|")));
    }
    regex::bytes::Regex::new(&pattern)
        .map(Some)
        .map_err(|_| ClientBuildError::SecretTooLong(secret.chars().count()))
}

/// A regex matching the hex digits `hex` in either case.
fn any_case_hex(hex: &str) -> String {
    hex.chars()
        .map(|d| match d {
            'a'..='f' => format!("[{d}{}]", d.to_ascii_uppercase()),
            _ => d.to_string(),
        })
        .collect()
}

impl ApiClient {
    /// Builds the client from the `[api]` settings.
    pub fn new(api: &ApiSettings) -> Result<ApiClient, ClientBuildError> {
        ApiClient::trusting(api, Vec::new())
    }

    /// The client, trusting `extra_roots` besides the platform's certificates: a test's own root,
    /// none in production.
    fn trusting(
        api: &ApiSettings,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Result<ApiClient, ClientBuildError> {
        let refused = || ClientBuildError::Endpoint(api.base_url.clone());
        let endpoint = url::Url::parse(&format!(
            "{}/{ITEM_GET_VIDEO_PATH}",
            api.base_url.trim_end_matches('/')
        ))
        .map_err(|_| refused())?;
        if endpoint.query().is_some()
            || endpoint.cannot_be_a_base()
            || !endpoint.username().is_empty()
            || endpoint.password().is_some()
        {
            return Err(refused());
        }
        let scheme = match endpoint.scheme() {
            "http" => Scheme::HTTP,
            "https" => Scheme::HTTPS,
            _ => return Err(refused()),
        };
        // `host_str` keeps an IPv6 address in brackets, as `Host` wants it.
        let host_header = match (endpoint.host_str(), endpoint.port()) {
            (Some(name), Some(port)) => format!("{name}:{port}"),
            (Some(name), None) => name.to_owned(),
            (None, _) => return Err(refused()),
        };
        let authority = Authority::try_from(host_header.as_str()).map_err(|_| refused())?;
        let host_header = HeaderValue::try_from(host_header).map_err(|_| refused())?;

        let mut fixed_query = vec![
            ("cache", api.cache.clone()),
            ("lang", api.lang.clone()),
            ("result_type", api.result_type.clone()),
        ];
        if !api.version.is_empty() {
            fixed_query.push(("version", api.version.clone()));
        }
        let target = RequestTarget::new(
            &endpoint,
            &api.key,
            api.secret.expose_secret(),
            &fixed_query,
        );
        if !target.is_valid() {
            return Err(refused());
        }
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        // Plain `http` never uses TLS: it gets a config without roots rather than paying for the
        // platform's (loading them costs about 19 million instructions).
        let tls = match scheme.as_str() {
            "https" => tls_config(extra_roots),
            _ => unused_tls_config(),
        }
        .map_err(ClientBuildError::Tls)?;
        let connector = TimedConnector {
            inner: HttpsConnector::from((tcp, tls)),
            timeout: api.timeout.min(Duration::from_secs(10)),
        };
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .set_host(false)
            .build(connector);
        Ok(ApiClient {
            http,
            scheme,
            authority,
            target,
            host: host_header,
            timeout: api.timeout,
            max_body_bytes: api.max_body_bytes,
            secret_pattern: secret_pattern(api.secret.expose_secret())?,
        })
    }

    /// Asks for one video. Never fails: a missing answer is an `Answer::Failed`.
    ///
    /// The span is at debug level: at the default `info` it is not created at all, which saves
    /// its cost on every call.
    #[instrument(level = "debug", skip_all, fields(video_id = %video_id))]
    pub async fn item_get_video(&self, video_id: &VideoId) -> Answer {
        match tokio::time::timeout(self.timeout, self.exchange(video_id)).await {
            Ok(answer) => answer,
            Err(_) => Answer::Failed {
                kind: TransportKind::Timeout,
                message: format!(
                    "no complete answer within api.timeout ({})",
                    humantime::format_duration(self.timeout)
                ),
            },
        }
    }

    /// One GET and its whole answer, without the overall timeout.
    async fn exchange(&self, video_id: &VideoId) -> Answer {
        let mut request = Request::new(Empty::<Bytes>::new());
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(self.target.for_video(video_id));
        *request.uri_mut() = Uri::from_parts(uri).expect("scheme, authority and target are set");
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));

        let response = match self.http.request(request).await {
            Ok(response) => response,
            Err(error) => return send_failed(&error),
        };
        let status = response.status();
        if status.is_redirection() {
            // The unread body makes the connection unusable; dropping it closes it.
            return Answer::Failed {
                kind: TransportKind::Redirect,
                message: format!(
                    "HTTP {} redirect: API calls follow no redirects",
                    status.as_u16()
                ),
            };
        }
        let mut incoming = response.into_body();
        let mut body = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    return Answer::Failed {
                        kind: TransportKind::Reset,
                        message: error_chain(&BodyError(error)),
                    };
                }
            };
            // Trailers, if a server sends any, are not part of the answer.
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
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
        Answer::Received {
            status: status.as_u16(),
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

/// TLS as reqwest's `rustls` feature sets it up: the platform's trust through
/// rustls-platform-verifier, the aws-lc-rs provider, TLS 1.2 and 1.3. ALPN offers HTTP/1.1 only:
/// that is all this client speaks.
fn tls_config(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // With no extra roots this is `Verifier::new`: the platform's roots alone.
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The config an `http` client's connector holds but never uses.
fn unused_tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// A broken body: hyper's error says what broke, this says when.
#[derive(Debug, thiserror::Error)]
#[error("error reading the answer body")]
struct BodyError(#[source] hyper::Error);

/// Opens a connection (TLS on top for `https`) within the connect timeout.
#[derive(Clone)]
struct TimedConnector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connecting (TCP, then TLS) took longer than the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("connecting took longer than {}", humantime::format_duration(*.0))]
struct ConnectTimedOut(Duration);

impl tower_service::Service<Uri> for TimedConnector {
    type Response = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| Box::new(ConnectTimedOut(timeout)) as BoxError)?
        })
    }
}

/// Classifies a failure to get a response head. hyper-util's error prints only its kind
/// ("client error (Connect)"); below it are the connector's and hyper's errors, none of which
/// holds the request URI, so the message cannot carry its URL (and the secret in it).
fn send_failed(error: &hyper_util::client::legacy::Error) -> Answer {
    use std::error::Error;
    let mut timed_out = false;
    let mut source = error.source();
    while let Some(cause) = source {
        timed_out |= cause.is::<ConnectTimedOut>();
        source = cause.source();
    }
    let (kind, what) = match (error.is_connect(), timed_out) {
        (true, true) => (TransportKind::Timeout, "cannot connect to the API host"),
        (true, false) => (TransportKind::Connect, "cannot connect to the API host"),
        (false, _) => (TransportKind::Reset, "error sending request"),
    };
    let message = match error.source() {
        Some(cause) => format!("{what}: {}", error_chain(cause)),
        None => format!("{what}: {error}"),
    };
    Answer::Failed { kind, message }
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

    /// `body` with the secret blanked out as the client does it.
    fn blanked(secret: &str, body: &str) -> String {
        let pattern = secret_pattern(secret).expect("built").expect("a pattern");
        String::from_utf8(pattern.replace_all(body.as_bytes(), REDACTED).into_owned())
            .expect("text")
    }

    #[test]
    fn the_secret_is_found_in_every_form_an_echo_may_take() {
        let secret = "Se/cr et+\\\"9é";
        let forms = [
            "Se/cr et+\\\"9é",
            // Form-encoded, as in an echoed request URL; percent escapes in either case.
            "Se%2Fcr+et%2B%5C%229%C3%A9",
            "Se%2fcr%20et%2b%5c%229%c3%a9",
            // JSON-escaped, as PHP's json_encode writes it (every `/` escaped, non-ASCII as \u).
            "Se\\/cr et+\\\\\\\"9\\u00e9",
            "\\u0053e\\u002Fcr\\u0020et+\\u005c\\u00229\\u00E9",
        ];
        for form in forms {
            assert_eq!(
                blanked(secret, &format!("<{form}>")),
                "<[redacted]>",
                "{form}"
            );
        }
        assert_eq!(
            blanked(secret, "Se/cr et"),
            "Se/cr et",
            "a part is not the secret"
        );
    }

    #[test]
    fn a_short_secret_is_blanked_out_after_secret_equals_only() {
        assert_eq!(
            blanked(
                "s3cr3t7",
                "GET ?key=k&secret=s3cr3t7&item_id=1 secret%3Ds3cr3t7 s3cr3t7"
            ),
            "GET ?key=k&secret=[redacted]&item_id=1 secret%3D[redacted] s3cr3t7"
        );
        let answer = r#"{"title":"sss","url":"https:\/\/p3-sign.douyinpic.com\/s.jpeg"}"#;
        assert_eq!(blanked("s", answer), answer, "ordinary text is left alone");
        assert_eq!(
            blanked("long-enough", "bad secret long-enough"),
            "bad secret [redacted]"
        );
        assert!(secret_pattern("").expect("built").is_none());
    }

    #[test]
    fn a_secret_too_long_to_search_for_is_refused() {
        match secret_pattern(&"x".repeat(100_000)) {
            Err(error @ ClientBuildError::SecretTooLong(100_000)) => assert_eq!(
                error.to_string(),
                "api.secret is too long to be searched for in answers (100000 characters); \
                 check its value"
            ),
            other => panic!("{other:?}"),
        }
    }

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
            ("http://[::1]:8080", "secret", ""),
        ];
        for (base, secret, version) in cases {
            let api = settings(base, secret, version);
            let client = ApiClient::new(&api).expect("client");
            let prebuilt = client.target.for_video(&id);
            // What reqwest's own query encoding makes of the same pairs.
            let mut fixed = vec![
                ("cache", api.cache.as_str()),
                ("lang", api.lang.as_str()),
                ("result_type", api.result_type.as_str()),
            ];
            if !version.is_empty() {
                fixed.push(("version", version));
            }
            let built = reqwest::Client::new()
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
            let url = built.url();
            assert_eq!(
                prebuilt.as_str(),
                format!("{}?{}", url.path(), url.query().expect("a query")),
                "{base}"
            );
            let authority = match url.port() {
                Some(port) => format!("{}:{port}", url.host_str().expect("a host")),
                None => url.host_str().expect("a host").to_owned(),
            };
            assert_eq!(client.host, authority.as_str(), "{base}");
        }
    }

    #[test]
    fn an_endpoint_that_is_not_a_plain_url_is_refused() {
        for base in [
            "not a url",
            "https://example.com/?a=1",
            "https://user:pass@example.com",
            "ftp://example.com",
        ] {
            match ApiClient::new(&settings(base, "secret", "")) {
                Err(ClientBuildError::Endpoint(shown)) => assert_eq!(shown, base),
                Err(other) => panic!("{base}: {other}"),
                Ok(_) => panic!("{base}: accepted"),
            }
        }
    }

    #[test]
    fn https_trusts_the_platform_roots_and_offers_only_http_1_1() {
        let config = tls_config(Vec::new()).expect("the platform's roots load");
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(ApiClient::new(&settings("https://api-gw.onebound.cn", "secret", "")).is_ok());
    }

    /// A test-only root and a certificate it signed for 127.0.0.1, made with openssl (valid until
    /// 2126); no platform trusts that root.
    const TEST_ROOT: &[u8] = include_bytes!("client/testdata/root.der");
    const TEST_SERVER_CERT: &[u8] = include_bytes!("client/testdata/server.der");
    const TEST_SERVER_KEY: &[u8] = include_bytes!("client/testdata/server.key.der");

    fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(TEST_SERVER_CERT.to_vec())],
                rustls::pki_types::PrivatePkcs8KeyDer::from(TEST_SERVER_KEY.to_vec()).into(),
            )
            .expect("the test certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// What a test server saw.
    #[derive(Default)]
    struct Seen {
        connections: std::sync::atomic::AtomicUsize,
        requests: std::sync::atomic::AtomicUsize,
    }

    impl Seen {
        fn connections(&self) -> usize {
            self.connections.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn requests(&self) -> usize {
            self.requests.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// Serves `{}` to every GET on 127.0.0.1, over TLS with the test certificate if `tls`; closes
    /// each connection after one answer if `close_after_answer`. Returns the base URL.
    async fn serve(tls: bool, close_after_answer: bool) -> (String, Arc<Seen>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Seen::default());
        let counts = seen.clone();
        tokio::spawn(async move {
            let acceptor = tls.then(tls_acceptor);
            while let Ok((tcp, _)) = listener.accept().await {
                counts
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let counts = counts.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                answer(stream, &counts, close_after_answer).await;
                            }
                        }
                        None => answer(tcp, &counts, close_after_answer).await,
                    }
                });
            }
        });
        let scheme = if tls { "https" } else { "http" };
        (format!("{scheme}://127.0.0.1:{port}"), seen)
    }

    async fn answer<S>(mut stream: S, seen: &Seen, close_after_answer: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            // The client's requests have no body: a request ends with its head.
            while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            buffer.clear();
            seen.requests
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
            if stream.write_all(reply).await.is_err() || close_after_answer {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }

    async fn assert_answers(client: &ApiClient) {
        let id = VideoId::parse("7118694749548072205").expect("id");
        match client.item_get_video(&id).await {
            Answer::Received { status, body } => {
                assert_eq!(status, 200);
                assert_eq!(body, b"{}");
            }
            Answer::Failed { kind, message } => panic!("{kind:?}: {message}"),
        }
    }

    #[tokio::test]
    async fn answers_over_tls_from_a_host_signed_by_a_trusted_root_on_one_connection() {
        let (base, seen) = serve(true, false).await;
        let root = CertificateDer::from(TEST_ROOT.to_vec());
        let client =
            ApiClient::trusting(&settings(&base, "secret", ""), vec![root]).expect("client");
        for _ in 0..3 {
            assert_answers(&client).await;
        }
        assert_eq!((seen.connections(), seen.requests()), (1, 3));
    }

    #[tokio::test]
    async fn a_host_the_platform_does_not_trust_is_a_connect_failure() {
        let (base, seen) = serve(true, false).await;
        let client = ApiClient::new(&settings(&base, "SECRET-canary-5150", "")).expect("client");
        let id = VideoId::parse("7118694749548072205").expect("id");
        match client.item_get_video(&id).await {
            Answer::Failed { kind, message } => {
                assert_eq!(kind, TransportKind::Connect, "{message}");
                assert!(message.contains("certificate"), "{message}");
                assert!(!message.contains("canary"), "{message}");
            }
            Answer::Received { status, .. } => panic!("HTTP {status} from an untrusted host"),
        }
        assert_eq!(seen.requests(), 0);
    }

    #[tokio::test]
    async fn calls_share_keep_alive_connections() {
        let (base, seen) = serve(false, false).await;
        let client = ApiClient::new(&settings(&base, "secret", "")).expect("client");
        assert_answers(&client).await;
        assert_answers(&client).await;
        assert_eq!(seen.connections(), 1);
        // The connection went back to the pool once its answer was read: a third call reuses it.
        assert_answers(&client).await;
        assert_eq!(seen.connections(), 1);

        // Four at once need four connections, which all stay for the next calls.
        let four = || async {
            tokio::join!(
                assert_answers(&client),
                assert_answers(&client),
                assert_answers(&client),
                assert_answers(&client)
            )
        };
        four().await;
        assert_eq!(seen.connections(), 4);
        four().await;
        assert_eq!(seen.connections(), 4);
        assert_eq!(seen.requests(), 11);
    }

    #[tokio::test]
    async fn a_connection_the_host_closed_is_not_reused() {
        let (base, seen) = serve(false, true).await;
        let client = ApiClient::new(&settings(&base, "secret", "")).expect("client");
        for _ in 0..3 {
            assert_answers(&client).await;
            // Let the connection task see the host's close before the next call.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!((seen.connections(), seen.requests()), (3, 3));
    }
}
