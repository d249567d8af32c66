//! Resolves `v.douyin.com` share short links to video ids by following redirects hop by hop.
//!
//! Only Douyin hosts are ever contacted and page bodies are never read. Error messages name links without
//! their query strings, and reqwest errors are stripped of their URLs.

use std::error::Error as _;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::redirect;
use url::Url;

use crate::video_id::{VideoId, WatchInput, is_douyin_host, parse_watch_input};

/// Most requests made for one short link.
const MAX_HOPS: usize = 5;

/// Why a short link could not be resolved; each message names the link without its query string.
#[derive(Debug, thiserror::Error)]
pub enum ShortLinkError {
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client for short links: {}", chain(.error))]
    Client {
        /// The builder's error.
        error: reqwest::Error,
    },
    /// The link itself is not on a Douyin host, so it is not contacted.
    #[error("{link}: not a Douyin link, refusing to contact it")]
    NotDouyin {
        /// The link, without query or fragment.
        link: String,
    },
    /// A request failed before any answer arrived (DNS, connection, TLS...).
    #[error("{link}: request failed: {}", chain(.error))]
    Request {
        /// The link, without query or fragment.
        link: String,
        /// The request's error, stripped of its URL.
        error: reqwest::Error,
    },
    /// A hop did not answer within the timeout.
    #[error("{link}: no answer within {timeout:?}, try again later")]
    Timeout {
        /// The link, without query or fragment.
        link: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// A hop answered with something other than a redirect.
    #[error("{link}: short link did not redirect to a video (HTTP {status} from {at})")]
    NotRedirected {
        /// The link, without query or fragment.
        link: String,
        /// The HTTP status of the answer.
        status: u16,
        /// The URL that answered, without query or fragment.
        at: String,
    },
    /// A redirect came without a Location header that makes a URL.
    #[error("{link}: HTTP {status} redirect from {at} without a usable Location header")]
    NoLocation {
        /// The link, without query or fragment.
        link: String,
        /// The HTTP status of the redirect.
        status: u16,
        /// The URL that answered, without query or fragment.
        at: String,
    },
    /// A redirect pointed outside Douyin; it is not followed.
    #[error("{link}: redirects to {target}, which is not Douyin, so it was not followed")]
    LeftDouyin {
        /// The link, without query or fragment.
        link: String,
        /// The host (or scheme) the redirect pointed to.
        target: String,
    },
    /// Too many redirects without reaching a video URL.
    #[error("{link}: no video URL after {hops} redirects")]
    TooManyHops {
        /// The link, without query or fragment.
        link: String,
        /// How many requests were made.
        hops: usize,
    },
}

/// Writes an error and its causes on one line, `outer: inner: ...`.
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Shows a URL without credentials, query or fragment, which may carry tokens.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // Both fail only for URLs without a host, which have no credentials to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Tells whether `url` is an http(s) URL on a Douyin host.
fn on_douyin(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.domain().is_some_and(is_douyin_host)
}

/// Resolves Douyin short links by reading redirect `Location` headers, never the page body.
#[derive(Debug, Clone)]
pub struct ShortLinkResolver {
    client: reqwest::Client,
    max_hops: usize,
    timeout: Duration,
    dns_overrides: Vec<(String, SocketAddr)>,
}

impl ShortLinkResolver {
    /// Builds a resolver whose every request gives up after `timeout`; it follows at most 5 redirects.
    pub fn new(timeout: Duration) -> Result<Self, ShortLinkError> {
        Ok(ShortLinkResolver {
            client: build_client(timeout, &[])?,
            max_hops: MAX_HOPS,
            timeout,
            dns_overrides: Vec::new(),
        })
    }

    /// Sends requests for `host` to `addr`'s IP (keeping the URL's port) instead of asking DNS, and bypasses proxies.
    pub fn with_dns_override(
        mut self,
        host: &str,
        addr: SocketAddr,
    ) -> Result<Self, ShortLinkError> {
        self.dns_overrides.push((host.to_owned(), addr));
        self.client = build_client(self.timeout, &self.dns_overrides)?;
        Ok(self)
    }

    /// Follows `link`'s redirects, on Douyin hosts only, until one points at a video URL, and returns its id.
    pub async fn resolve(&self, link: &Url) -> Result<VideoId, ShortLinkError> {
        let name = redact(link);
        if !on_douyin(link) {
            return Err(ShortLinkError::NotDouyin { link: name });
        }
        let mut current = link.clone();
        for _ in 0..self.max_hops {
            let response = self
                .client
                .get(current.clone())
                .send()
                .await
                .map_err(|error| self.request_error(&name, error))?;
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned());
            drop(response);
            if !status.is_redirection() {
                return Err(ShortLinkError::NotRedirected {
                    link: name,
                    status: status.as_u16(),
                    at: redact(&current),
                });
            }
            let Some(next) = location
                .filter(|location| !location.is_empty())
                .and_then(|location| current.join(&location).ok())
            else {
                return Err(ShortLinkError::NoLocation {
                    link: name,
                    status: status.as_u16(),
                    at: redact(&current),
                });
            };
            match parse_watch_input(next.as_str()) {
                Ok(WatchInput::Id(id)) => return Ok(id),
                _ if on_douyin(&next) => current = next,
                _ => {
                    let target = match next.host_str() {
                        Some(host) if matches!(next.scheme(), "http" | "https") => host.to_owned(),
                        _ => format!("a {}: URL", next.scheme()),
                    };
                    return Err(ShortLinkError::LeftDouyin { link: name, target });
                }
            }
        }
        Err(ShortLinkError::TooManyHops {
            link: name,
            hops: self.max_hops,
        })
    }

    /// Turns a failed request into a timeout or request error, dropping the URL reqwest keeps.
    fn request_error(&self, link: &str, error: reqwest::Error) -> ShortLinkError {
        if error.is_timeout() {
            ShortLinkError::Timeout {
                link: link.to_owned(),
                timeout: self.timeout,
            }
        } else {
            ShortLinkError::Request {
                link: link.to_owned(),
                error: error.without_url(),
            }
        }
    }
}

/// Builds a client that never follows redirects by itself, with the timeout and DNS overrides.
fn build_client(
    timeout: Duration,
    dns_overrides: &[(String, SocketAddr)],
) -> Result<reqwest::Client, ShortLinkError> {
    let mut builder = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .timeout(timeout);
    if !dns_overrides.is_empty() {
        builder = builder.no_proxy();
    }
    for (host, addr) in dns_overrides {
        builder = builder.resolve(host, *addr);
    }
    builder.build().map_err(|error| ShortLinkError::Client {
        error: error.without_url(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const ID: &str = "7118694749548072205";

    /// A mock server plus a resolver that sends Douyin's hosts and `evil.example` to it.
    async fn setup(timeout: Duration) -> (MockServer, ShortLinkResolver, u16) {
        let server = MockServer::start().await;
        let addr = *server.address();
        let mut resolver = ShortLinkResolver::new(timeout).unwrap();
        for host in [
            "v.douyin.com",
            "www.iesdouyin.com",
            "evil.example",
            "douyin.com.evil.net",
        ] {
            resolver = resolver.with_dns_override(host, addr).unwrap();
        }
        (server, resolver, addr.port())
    }

    fn redirect_to(status: u16, location: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).insert_header("Location", location)
    }

    fn short_link(port: u16, code: &str) -> Url {
        Url::parse(&format!("http://v.douyin.com:{port}/{code}/")).unwrap()
    }

    #[tokio::test]
    async fn one_redirect_to_a_video() {
        let (server, resolver, port) = setup(Duration::from_secs(5)).await;
        let cases: &[(&str, u16, String)] = &[
            (
                "a1",
                302,
                format!("https://www.iesdouyin.com/share/video/{ID}/?region=CN&mid=1&u_code=0"),
            ),
            ("a2", 301, format!("https://www.douyin.com/video/{ID}")),
            ("a3", 307, format!("/share/video/{ID}/?region=CN")),
            (
                "a4",
                308,
                format!("https://www.douyin.com/discover?modal_id={ID}"),
            ),
            ("a5", 302, format!("  https://www.douyin.com/note/{ID}  ")),
        ];
        for (code, status, location) in cases {
            Mock::given(method("GET"))
                .and(path(format!("/{code}/")))
                .respond_with(redirect_to(*status, location))
                .expect(1)
                .mount(&server)
                .await;
            let got = resolver.resolve(&short_link(port, code)).await;
            assert_eq!(
                got.as_ref()
                    .map(VideoId::as_str)
                    .map_err(ToString::to_string),
                Ok(ID),
                "location {location:?}"
            );
        }
    }

    #[tokio::test]
    async fn two_hops_through_another_douyin_host() {
        let (server, resolver, port) = setup(Duration::from_secs(5)).await;
        Mock::given(method("GET"))
            .and(path("/two/"))
            .and(header("host", format!("v.douyin.com:{port}").as_str()))
            .respond_with(redirect_to(
                302,
                &format!("http://www.iesdouyin.com:{port}/goto/xyz?from=share"),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/goto/xyz"))
            .and(header("host", format!("www.iesdouyin.com:{port}").as_str()))
            .respond_with(redirect_to(302, &format!("/share/video/{ID}/")))
            .expect(1)
            .mount(&server)
            .await;
        let got = resolver.resolve(&short_link(port, "two")).await.unwrap();
        assert_eq!(got.as_str(), ID);
        server.verify().await;
    }

    #[tokio::test]
    async fn redirect_off_douyin_is_not_followed() {
        let (server, resolver, port) = setup(Duration::from_secs(5)).await;
        Mock::given(method("GET"))
            .and(path(format!("/video/{ID}")))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let cases: &[(&str, String, &str)] = &[
            (
                "e1",
                format!("http://evil.example:{port}/video/{ID}"),
                "evil.example",
            ),
            (
                "e2",
                format!("http://douyin.com.evil.net:{port}/video/{ID}"),
                "douyin.com.evil.net",
            ),
            (
                "e3",
                format!("http://127.0.0.1:{port}/video/{ID}"),
                "127.0.0.1",
            ),
            (
                "e4",
                format!("snssdk1128://aweme/detail/{ID}"),
                "a snssdk1128: URL",
            ),
        ];
        for (code, location, target) in cases {
            Mock::given(method("GET"))
                .and(path(format!("/{code}/")))
                .respond_with(redirect_to(302, location))
                .expect(1)
                .mount(&server)
                .await;
            let got = resolver.resolve(&short_link(port, code)).await;
            assert!(
                matches!(&got, Err(ShortLinkError::LeftDouyin { target: got, .. }) if got == target),
                "location {location:?} gave {got:?}"
            );
        }
        server.verify().await;
    }

    #[tokio::test]
    async fn foreign_link_is_not_contacted() {
        let (server, resolver, port) = setup(Duration::from_secs(5)).await;
        Mock::given(method("GET"))
            .respond_with(redirect_to(
                302,
                &format!("https://www.douyin.com/video/{ID}"),
            ))
            .expect(0)
            .mount(&server)
            .await;
        let cases = [
            format!("http://evil.example:{port}/abc/"),
            format!("http://127.0.0.1:{port}/abc/"),
        ];
        for link in &cases {
            let got = resolver.resolve(&Url::parse(link).unwrap()).await;
            assert!(
                matches!(got, Err(ShortLinkError::NotDouyin { .. })),
                "link {link:?} gave {got:?}"
            );
        }
        server.verify().await;
    }

    #[tokio::test]
    async fn redirect_loop_stops_after_five_hops() {
        let (server, resolver, port) = setup(Duration::from_secs(5)).await;
        Mock::given(method("GET"))
            .and(path("/loop/"))
            .respond_with(redirect_to(302, "/loop/"))
            .expect(5)
            .mount(&server)
            .await;
        let got = resolver.resolve(&short_link(port, "loop")).await;
        assert!(
            matches!(got, Err(ShortLinkError::TooManyHops { hops: 5, .. })),
            "got {got:?}"
        );
        server.verify().await;
    }

    #[tokio::test]
    async fn answers_that_are_not_usable_redirects() {
        let (server, resolver, port) = setup(Duration::from_secs(5)).await;
        let cases: &[(&str, ResponseTemplate, String)] = &[
            (
                "ok",
                ResponseTemplate::new(200).set_body_string("<html>video page</html>"),
                format!(
                    "http://v.douyin.com:{port}/ok/: short link did not redirect to a video (HTTP 200 from http://v.douyin.com:{port}/ok/)"
                ),
            ),
            (
                "gone",
                ResponseTemplate::new(404),
                format!(
                    "http://v.douyin.com:{port}/gone/: short link did not redirect to a video (HTTP 404 from http://v.douyin.com:{port}/gone/)"
                ),
            ),
            (
                "bare",
                ResponseTemplate::new(302),
                format!(
                    "http://v.douyin.com:{port}/bare/: HTTP 302 redirect from http://v.douyin.com:{port}/bare/ without a usable Location header"
                ),
            ),
        ];
        for (code, response, want) in cases {
            Mock::given(method("GET"))
                .and(path(format!("/{code}/")))
                .respond_with(response.clone())
                .expect(1)
                .mount(&server)
                .await;
            let got = resolver.resolve(&short_link(port, code)).await.unwrap_err();
            assert_eq!(got.to_string(), *want, "code {code:?}");
        }
    }

    #[tokio::test]
    async fn douyin_page_without_video_ends_in_an_error() {
        let (server, resolver, port) = setup(Duration::from_secs(5)).await;
        Mock::given(method("GET"))
            .and(path("/expired/"))
            .respond_with(redirect_to(302, "/home?from=expired"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/home"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let got = resolver.resolve(&short_link(port, "expired")).await;
        assert!(
            matches!(&got, Err(ShortLinkError::NotRedirected { status: 200, at, .. }) if at.ends_with("/home")),
            "got {got:?}"
        );
    }

    #[tokio::test]
    async fn timeout_error_hides_the_query_string() {
        let (server, resolver, port) = setup(Duration::from_millis(200)).await;
        Mock::given(method("GET"))
            .and(path("/slow/"))
            .respond_with(
                redirect_to(302, &format!("https://www.douyin.com/video/{ID}"))
                    .set_delay(Duration::from_secs(3)),
            )
            .mount(&server)
            .await;
        let link = Url::parse(&format!(
            "http://v.douyin.com:{port}/slow/?token=s3cret&u_code=42#frag"
        ))
        .unwrap();
        let got = resolver.resolve(&link).await.unwrap_err();
        assert!(matches!(got, ShortLinkError::Timeout { .. }), "got {got:?}");
        let text = format!("{got} / {got:?}");
        for secret in ["token", "s3cret", "u_code", "?", "frag"] {
            assert!(!text.contains(secret), "{secret:?} leaked in {text:?}");
        }
        assert!(
            text.contains(&format!("http://v.douyin.com:{port}/slow/")),
            "{text:?}"
        );
    }

    #[tokio::test]
    async fn request_error_hides_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = listener.local_addr().unwrap();
        drop(listener);
        let resolver = ShortLinkResolver::new(Duration::from_secs(5))
            .unwrap()
            .with_dns_override("v.douyin.com", closed)
            .unwrap();
        let link = Url::parse(&format!(
            "http://v.douyin.com:{}/abc/?token=s3cret",
            closed.port()
        ))
        .unwrap();
        let got = resolver.resolve(&link).await.unwrap_err();
        assert!(matches!(got, ShortLinkError::Request { .. }), "got {got:?}");
        let text = format!("{got} / {got:?}");
        assert!(!text.contains("s3cret"), "query leaked in {text:?}");
        assert!(!text.contains('\n'), "message spans lines: {text:?}");
    }
}
