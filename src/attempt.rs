//! Judging one HTTP attempt: what it was (`Outcome`), what it cost, and what to do next.
//!
//! Pure: takes the status and body (or the transport failure) and the requested id, and applies
//! the error-code policy. The collector does the I/O around it.

use serde::Serialize;

use crate::error_code::{self, Policy};
use crate::response::{self, Item, RawItem};
use crate::video_id::VideoId;

/// How many characters of an unexpected body go into a failure message.
const EXCERPT_CHARS: usize = 200;

/// How an attempt ended, as stored in `fetches.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A snapshot was taken.
    Ok,
    /// onebound answered with an error code other than 0000.
    ApiError,
    /// The HTTP status was not 2xx.
    HttpError,
    /// No complete answer: connection refused or reset, timeout, body too large.
    TransportError,
    /// A 200 answer that is not a usable onebound envelope.
    DecodeError,
    /// No call was made (the quota reserve was reached before a retry).
    Skipped,
}

impl Outcome {
    /// The text stored in `fetches.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ApiError => "api_error",
            Outcome::HttpError => "http_error",
            Outcome::TransportError => "transport_error",
            Outcome::DecodeError => "decode_error",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Why a request got no complete answer; the key is what `fetches.error` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Timeout,
    Connect,
    /// The connection broke while sending or receiving.
    Reset,
    /// The body was larger than `api.max_body_bytes`.
    BodyTooLarge,
    /// A redirect: API calls follow none.
    Redirect,
}

impl TransportKind {
    /// The stable key stored in `fetches.error`.
    pub fn key(self) -> &'static str {
        match self {
            TransportKind::Timeout => "timeout",
            TransportKind::Connect => "connect",
            TransportKind::Reset => "connection_reset",
            TransportKind::BodyTooLarge => "body_too_large",
            TransportKind::Redirect => "redirect",
        }
    }
}

/// What came back from one request.
#[derive(Debug)]
pub enum Exchange<'a> {
    /// A complete HTTP answer.
    Answered { status: u16, body: &'a [u8] },
    /// No complete answer; `message` is one line and never contains the request URL.
    Failed {
        kind: TransportKind,
        message: String,
    },
}

/// What the collector does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Store the snapshot; the video is done for this pass.
    Store,
    /// A transient failure: retry after a backoff.
    Retry,
    /// Rate limited (4008, HTTP 429): retry after a backoff, with fewer calls in flight.
    SlowDown,
    /// onebound says the video does not exist (2000).
    NotFound,
    /// A failure retrying cannot fix for this video.
    GiveUp,
    /// An account-level failure: stop the whole pass.
    StopPass,
}

/// Everything known about an attempt once its answer is judged.
#[derive(Debug)]
pub struct Verdict {
    pub outcome: Outcome,
    pub next: Next,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub charged: bool,
    pub request_id: Option<String>,
    pub api_info: Option<String>,
    pub server_time: Option<String>,
    /// The item and its raw JSON, for `Next::Store` only.
    pub item: Option<(Item, RawItem)>,
}

impl Verdict {
    fn failure(outcome: Outcome, next: Next, error: &str, message: String) -> Verdict {
        Verdict {
            outcome,
            next,
            http_status: None,
            error_code: None,
            error: Some(error.to_owned()),
            reason: None,
            message: Some(message),
            charged: false,
            request_id: None,
            api_info: None,
            server_time: None,
            item: None,
        }
    }
}

/// What a failure code means: onebound's table for its codes, a sentence for our own keys.
pub fn describe_failure(code: &str) -> String {
    let text = match code {
        "timeout" => "request timed out (api.timeout)",
        "connect" => "could not connect to the API",
        "connection_reset" => "the connection broke before the answer was complete",
        "body_too_large" => "answer larger than api.max_body_bytes",
        "redirect" => "the API answered with a redirect",
        "invalid_answer" => "answer is not a onebound JSON envelope",
        "missing_error_code" => "answer has neither error_code nor item",
        "item_mismatch" => "0000 with the item of another video",
        "missing_item" => "0000 without an item",
        _ => {
            return match code.strip_prefix("http_") {
                Some(status) => format!("HTTP status {status}"),
                None => error_code::meaning(code),
            };
        }
    };
    text.to_owned()
}

/// Judges one exchange for `requested` by the error-code policy.
pub fn judge(requested: &VideoId, exchange: Exchange<'_>) -> Verdict {
    match exchange {
        Exchange::Failed { kind, message } => {
            let next = match kind {
                TransportKind::Timeout | TransportKind::Connect | TransportKind::Reset => {
                    Next::Retry
                }
                TransportKind::BodyTooLarge | TransportKind::Redirect => Next::GiveUp,
            };
            Verdict::failure(Outcome::TransportError, next, kind.key(), message)
        }
        Exchange::Answered { status, body } if !(200..300).contains(&status) => {
            let next = match status {
                429 => Next::SlowDown,
                500..=599 => Next::Retry,
                _ => Next::GiveUp,
            };
            let mut verdict = Verdict::failure(
                Outcome::HttpError,
                next,
                &format!("http_{status}"),
                format!("HTTP {status}: {}", response::excerpt(body, EXCERPT_CHARS)),
            );
            verdict.http_status = Some(status);
            verdict
        }
        Exchange::Answered { status, body } => {
            let mut verdict = judge_body(requested, body);
            verdict.http_status = Some(status);
            verdict
        }
    }
}

fn judge_body(requested: &VideoId, body: &[u8]) -> Verdict {
    let answer = match response::decode(body) {
        Ok(answer) => answer,
        Err(error) => {
            return Verdict::failure(
                Outcome::DecodeError,
                Next::GiveUp,
                "invalid_answer",
                error.to_string(),
            );
        }
    };
    let code = answer.error_code.clone().or_else(|| {
        // Some answers carry no error_code at all; an item is then the only sign of success.
        answer.item.as_ref().map(|_| "0000".to_owned())
    });
    let mut verdict = Verdict {
        outcome: Outcome::ApiError,
        next: Next::GiveUp,
        http_status: None,
        charged: code.as_deref().is_some_and(error_code::is_charged),
        error_code: answer.error_code,
        error: answer.error,
        reason: answer.reason,
        message: None,
        request_id: answer.request_id,
        api_info: answer.api_info,
        server_time: answer.server_time,
        item: None,
    };
    let Some(code) = code else {
        verdict.outcome = Outcome::DecodeError;
        verdict.error = Some("missing_error_code".to_owned());
        verdict.message = Some(format!(
            "answer has neither error_code nor item: {}",
            response::excerpt(body, EXCERPT_CHARS)
        ));
        return verdict;
    };
    let policy = error_code::policy(&code);
    verdict.next = match policy {
        Policy::Success => Next::Store,
        Policy::NotFound => Next::NotFound,
        Policy::Transient => Next::Retry,
        Policy::RateLimited => Next::SlowDown,
        Policy::PerVideo => Next::GiveUp,
        Policy::Account => Next::StopPass,
    };
    if policy != Policy::Success {
        verdict.message = Some(format!("{code}: {}", error_code::meaning(&code)));
        return verdict;
    }
    let returned_id = answer
        .item
        .as_ref()
        .and_then(|item| item.num_iid.as_deref())
        .map(|id| id.trim().to_owned());
    match (answer.item, answer.raw_item) {
        (Some(item), Some(raw)) if returned_id.as_deref() == Some(requested.as_str()) => {
            verdict.outcome = Outcome::Ok;
            verdict.item = Some((item, raw));
        }
        (Some(_), Some(_)) => {
            verdict.outcome = Outcome::DecodeError;
            verdict.next = Next::GiveUp;
            verdict.error = Some("item_mismatch".to_owned());
            verdict.message = Some(format!(
                "asked for {requested} but the answer's item is {}",
                returned_id.as_deref().unwrap_or("missing its num_iid")
            ));
        }
        _ => {
            verdict.outcome = Outcome::DecodeError;
            verdict.next = Next::GiveUp;
            verdict.error = Some("missing_item".to_owned());
            verdict.message = Some("error_code 0000 but the answer has no item".to_owned());
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = include_bytes!("../tests/fixtures/item_get_video.ok.json");
    const NOT_FOUND: &[u8] = include_bytes!("../tests/fixtures/item_get_video.not_found.json");
    const FIXTURE_ID: &str = "7118694749548072205";

    fn id(text: &str) -> VideoId {
        VideoId::parse(text).expect("valid id")
    }

    fn envelope(code: &str) -> String {
        format!(
            r#"{{"error":"e","reason":"r","error_code":"{code}","api_info":"today:1 max:10","request_id":"rq"}}"#
        )
    }

    #[test]
    fn the_success_fixture_is_stored_and_charged() {
        let verdict = judge(
            &id(FIXTURE_ID),
            Exchange::Answered {
                status: 200,
                body: OK,
            },
        );
        assert_eq!(verdict.outcome, Outcome::Ok);
        assert_eq!(verdict.next, Next::Store);
        assert!(verdict.charged);
        assert_eq!(verdict.error_code.as_deref(), Some("0000"));
        assert_eq!(verdict.request_id.as_deref(), Some("gw-1.63353a5926054"));
        let (item, raw) = verdict.item.expect("item");
        assert_eq!(item.num_iid.as_deref(), Some(FIXTURE_ID));
        let raw = raw.text().expect("the raw item");
        assert!(raw.starts_with('{'), "{raw}");
    }

    #[test]
    fn the_not_found_fixture_marks_the_video_and_is_charged() {
        let verdict = judge(
            &id(FIXTURE_ID),
            Exchange::Answered {
                status: 200,
                body: NOT_FOUND,
            },
        );
        assert_eq!(verdict.outcome, Outcome::ApiError);
        assert_eq!(verdict.next, Next::NotFound);
        assert!(verdict.charged);
        assert_eq!(verdict.error.as_deref(), Some("item-not-found"));
        assert_eq!(verdict.reason.as_deref(), Some("没找到"));
        assert_eq!(verdict.api_info.as_deref(), Some("today:0 max:10000"));
    }

    #[test]
    fn every_code_of_the_api_table_leads_to_its_action() {
        let cases = [
            ("2000", Next::NotFound, true),
            ("4000", Next::Retry, false),
            ("4001", Next::Retry, false),
            ("4002", Next::Retry, false),
            ("4003", Next::GiveUp, false),
            ("4004", Next::StopPass, false),
            ("4005", Next::StopPass, false),
            ("4006", Next::StopPass, false),
            ("4007", Next::StopPass, false),
            ("4008", Next::SlowDown, false),
            ("4009", Next::StopPass, false),
            ("4010", Next::StopPass, false),
            ("4012", Next::StopPass, false),
            ("4013", Next::StopPass, false),
            ("4014", Next::GiveUp, false),
            ("4015", Next::GiveUp, false),
            ("4016", Next::StopPass, false),
            ("4017", Next::Retry, false),
            ("5000", Next::Retry, false),
            ("9999", Next::GiveUp, false),
        ];
        for (code, next, charged) in cases {
            let body = envelope(code);
            let verdict = judge(
                &id(FIXTURE_ID),
                Exchange::Answered {
                    status: 200,
                    body: body.as_bytes(),
                },
            );
            assert_eq!(verdict.outcome, Outcome::ApiError, "code {code}");
            assert_eq!(verdict.next, next, "code {code}");
            assert_eq!(verdict.charged, charged, "code {code}");
            assert_eq!(verdict.error_code.as_deref(), Some(code), "code {code}");
            assert!(
                verdict
                    .message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(code)),
                "code {code}"
            );
        }
    }

    #[test]
    fn an_item_for_another_video_is_a_charged_decode_error() {
        let verdict = judge(
            &id("7000000000000000001"),
            Exchange::Answered {
                status: 200,
                body: OK,
            },
        );
        assert_eq!(verdict.outcome, Outcome::DecodeError);
        assert_eq!(verdict.next, Next::GiveUp);
        assert_eq!(verdict.error.as_deref(), Some("item_mismatch"));
        assert!(
            verdict.charged,
            "onebound billed the answer even though it is unusable"
        );
        assert!(verdict.item.is_none());
    }

    #[test]
    fn success_without_an_item_is_a_decode_error() {
        let body = envelope("0000");
        let verdict = judge(
            &id(FIXTURE_ID),
            Exchange::Answered {
                status: 200,
                body: body.as_bytes(),
            },
        );
        assert_eq!(verdict.outcome, Outcome::DecodeError);
        assert_eq!(verdict.error.as_deref(), Some("missing_item"));
        assert!(verdict.charged);
    }

    #[test]
    fn http_errors_keep_status_and_excerpt() {
        let cases = [
            (502, Next::Retry),
            (503, Next::Retry),
            (429, Next::SlowDown),
            (404, Next::GiveUp),
            (403, Next::GiveUp),
        ];
        for (status, next) in cases {
            let body = b"<html><title>Bad Gateway</title></html>";
            let verdict = judge(&id(FIXTURE_ID), Exchange::Answered { status, body });
            assert_eq!(verdict.outcome, Outcome::HttpError, "status {status}");
            assert_eq!(verdict.next, next, "status {status}");
            assert_eq!(verdict.http_status, Some(status));
            assert_eq!(verdict.error, Some(format!("http_{status}")));
            let message = verdict.message.expect("message");
            assert!(message.contains("Bad Gateway"), "{message}");
            assert!(!verdict.charged);
        }
    }

    #[test]
    fn a_non_json_200_is_a_decode_error_with_an_excerpt() {
        let body = b"<html><body>maintenance</body></html>";
        let verdict = judge(&id(FIXTURE_ID), Exchange::Answered { status: 200, body });
        assert_eq!(verdict.outcome, Outcome::DecodeError);
        assert_eq!(verdict.next, Next::GiveUp);
        assert!(verdict.message.expect("message").contains("maintenance"));
        assert!(!verdict.charged);
    }

    #[test]
    fn transport_failures_are_retried_unless_retrying_cannot_help() {
        let cases = [
            (TransportKind::Timeout, Next::Retry),
            (TransportKind::Connect, Next::Retry),
            (TransportKind::Reset, Next::Retry),
            (TransportKind::BodyTooLarge, Next::GiveUp),
            (TransportKind::Redirect, Next::GiveUp),
        ];
        for (kind, next) in cases {
            let verdict = judge(
                &id(FIXTURE_ID),
                Exchange::Failed {
                    kind,
                    message: "it broke".into(),
                },
            );
            assert_eq!(verdict.outcome, Outcome::TransportError, "{kind:?}");
            assert_eq!(verdict.next, next, "{kind:?}");
            assert_eq!(verdict.error.as_deref(), Some(kind.key()));
            assert!(!verdict.charged);
        }
    }
}
