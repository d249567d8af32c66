//! The admin endpoints' request bodies, their errors and answers (`/_sim/stats`, `/_sim/script`,
//! `/_sim/today`), for tests that run the simulator as a separate process.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Scripted;
use super::http::Response;

/// Why an admin request was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum AdminError {
    /// The body is not the expected JSON.
    #[error("invalid JSON body: {0}")]
    Json(#[from] serde_json::Error),
    /// `item_id` is empty.
    #[error("item_id must not be empty")]
    EmptyItemId,
    /// One scripted answer is not valid.
    #[error("answers[{index}]: {problem}")]
    Answer {
        /// Its position in `answers`.
        index: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The endpoint exists but not with this method.
    #[error("method not allowed (GET /_sim/stats, POST /_sim/script, POST /_sim/today)")]
    Method,
    /// No such endpoint.
    #[error("no such endpoint (GET /_sim/stats, POST /_sim/script, POST /_sim/today)")]
    NotFound,
}

impl AdminError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::Json(_) | AdminError::EmptyItemId | AdminError::Answer { .. } => 400,
            AdminError::Method => 405,
            AdminError::NotFound => 404,
        }
    }
}

/// The body of `POST /_sim/today`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TodayRequest {
    /// The new value of today's charged-call counter.
    pub today: u64,
}

/// The body of `POST /_sim/script`, with its answers checked.
#[derive(Debug, PartialEq)]
pub(super) struct ScriptRequest {
    /// The item id the answers are for.
    pub item_id: String,
    /// The answers, in order.
    pub answers: Vec<Scripted>,
}

/// `POST /_sim/script` as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScriptRequest {
    /// The item id.
    item_id: String,
    /// The answers.
    answers: Vec<AnswerSpec>,
}

/// One scripted answer as sent: exactly one kind, e.g. `{"code": "4000"}` or `{"delay_ms": 500}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerSpec {
    /// [`Scripted::Code`].
    code: Option<String>,
    /// [`Scripted::Http`]'s status (the body is `body`).
    http: Option<u16>,
    /// [`Scripted::Http`]'s body, or on its own [`Scripted::Body`].
    body: Option<String>,
    /// [`Scripted::Reset`] when `true`.
    reset: Option<bool>,
    /// [`Scripted::Hang`] when `true`.
    hang: Option<bool>,
    /// [`Scripted::Delay`] in milliseconds.
    delay_ms: Option<u64>,
    /// [`Scripted::Item`].
    item: Option<serde_json::Value>,
    /// [`Scripted::Trickle`].
    trickle: Option<TrickleSpec>,
    /// [`Scripted::ResetMidBody`].
    reset_mid_body: Option<ResetMidBodySpec>,
    /// [`Scripted::Redirect`]'s location.
    redirect: Option<String>,
    /// [`Scripted::Huge`]'s size in bytes.
    huge: Option<usize>,
}

/// `{"trickle": {"body": "...", "chunk": 1, "every_ms": 100}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrickleSpec {
    /// The body.
    body: String,
    /// Bytes per write, at least 1.
    chunk: usize,
    /// Milliseconds between writes.
    every_ms: u64,
}

/// `{"reset_mid_body": {"body": "...", "after": 10}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetMidBodySpec {
    /// The body announced in full.
    body: String,
    /// Bytes of it sent before the reset.
    after: usize,
}

/// The complaint when an answer gives no kind or several.
const ONE_KIND: &str = "give exactly one of code, http (with an optional body), body, reset: true, \
                        hang: true, delay_ms, item, trickle, reset_mid_body, redirect, huge";

impl TryFrom<AnswerSpec> for Scripted {
    type Error = &'static str;

    fn try_from(spec: AnswerSpec) -> Result<Self, Self::Error> {
        let AnswerSpec {
            code,
            http,
            body,
            reset,
            hang,
            delay_ms,
            item,
            trickle,
            reset_mid_body,
            redirect,
            huge,
        } = spec;
        // `body` is a kind of its own unless it goes with `http`.
        let kinds = [
            code.is_some(),
            http.is_some(),
            body.is_some() && http.is_none(),
            reset.is_some(),
            hang.is_some(),
            delay_ms.is_some(),
            item.is_some(),
            trickle.is_some(),
            reset_mid_body.is_some(),
            redirect.is_some(),
            huge.is_some(),
        ];
        if kinds.iter().filter(|given| **given).count() != 1 {
            return Err(ONE_KIND);
        }
        if let Some(code) = code {
            return if code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()) {
                Ok(Scripted::Code(code))
            } else {
                Err("code must be four digits, e.g. \"4000\"")
            };
        }
        if let Some(status) = http {
            return if (100..=999).contains(&status) {
                Ok(Scripted::Http(status, body.unwrap_or_default()))
            } else {
                Err("http must be a status from 100 to 999")
            };
        }
        if let Some(body) = body {
            return Ok(Scripted::Body(body.into_bytes()));
        }
        if let Some(item) = item {
            return if item.is_object() {
                Ok(Scripted::Item(item))
            } else {
                Err("item must be a JSON object")
            };
        }
        if let Some(TrickleSpec {
            body,
            chunk,
            every_ms,
        }) = trickle
        {
            return if chunk == 0 {
                Err("trickle.chunk must be at least 1")
            } else {
                Ok(Scripted::Trickle {
                    body: body.into_bytes(),
                    chunk,
                    every: Duration::from_millis(every_ms),
                })
            };
        }
        if let Some(ResetMidBodySpec { body, after }) = reset_mid_body {
            return if after > body.len() {
                Err("reset_mid_body.after must not be longer than its body")
            } else {
                Ok(Scripted::ResetMidBody {
                    body: body.into_bytes(),
                    after,
                })
            };
        }
        if let Some(location) = redirect {
            return if location.trim().is_empty() || location.chars().any(char::is_control) {
                Err("redirect must be a location without control characters")
            } else {
                Ok(Scripted::Redirect(location))
            };
        }
        if let Some(bytes) = huge {
            return Ok(Scripted::Huge { bytes });
        }
        match (reset, hang, delay_ms) {
            (Some(true), None, None) => Ok(Scripted::Reset),
            (None, Some(true), None) => Ok(Scripted::Hang),
            (None, None, Some(ms)) => Ok(Scripted::Delay(Duration::from_millis(ms))),
            _ => Err(ONE_KIND),
        }
    }
}

/// Reads and checks the body of `POST /_sim/script`.
pub(super) fn parse_script(body: &[u8]) -> Result<ScriptRequest, AdminError> {
    let raw: RawScriptRequest = serde_json::from_slice(body)?;
    let item_id = raw.item_id.trim().to_owned();
    if item_id.is_empty() {
        return Err(AdminError::EmptyItemId);
    }
    let answers = raw
        .answers
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            Scripted::try_from(spec).map_err(|problem| AdminError::Answer { index, problem })
        })
        .collect::<Result<_, _>>()?;
    Ok(ScriptRequest { item_id, answers })
}

/// A JSON answer of an admin endpoint.
pub(super) fn admin_json(status: u16, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => Response::json(status, body),
        Err(error) => Response::text(500, format!("cannot encode the answer: {error}")),
    }
}
