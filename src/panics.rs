//! What a panic shows, and the switch that injects faults for tests.
//!
//! A panic's message is written by whatever code panicked; a future bug could format a request
//! URL (which carries the secret) into it. The hook installed here logs every panic as one
//! `error` event through `tracing` (so JSON logs stay JSON), with the secret and the key blanked
//! out of it, instead of Rust's default hook printing it raw to stderr.
//!
//! Fault injection uses the [`fail`] crate: `DOUYIN_WATCH_FAILPOINTS="name=actions;..."` in
//! `fail`'s syntax (for example `collect-video=1*panic(boom)`). The tests use it to make a pass
//! task panic; never set it in production.

use std::panic::PanicHookInfo;
use std::sync::{PoisonError, RwLock};

/// Values blanked out of panic messages: the secret and the key, once the settings are loaded.
static CONCEALED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What replaces a concealed value.
const REDACTED: &str = "[redacted]";

/// The variable that turns fail points on.
pub const FAILPOINTS_VAR: &str = "DOUYIN_WATCH_FAILPOINTS";

/// Replaces the default panic hook with one that logs a concealed, one-line report.
pub fn install_hook() {
    std::panic::set_hook(Box::new(report_panic));
}

/// Blanks `value` (as written and as URL-encoded) out of every later panic message.
pub fn conceal(value: &str) {
    if value.is_empty() {
        return;
    }
    let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let mut concealed = CONCEALED.write().unwrap_or_else(PoisonError::into_inner);
    for form in [value.to_owned(), encoded] {
        if !concealed.contains(&form) {
            concealed.push(form);
        }
    }
    // Longest first, so a value containing another is blanked whole.
    concealed.sort_by_key(|form| std::cmp::Reverse(form.len()));
}

/// The message with every concealed value replaced.
fn scrub(message: &str) -> String {
    let concealed = CONCEALED.read().unwrap_or_else(PoisonError::into_inner);
    concealed.iter().fold(message.to_owned(), |text, form| {
        text.replace(form, REDACTED)
    })
}

/// The panic's message as text: panics carry a `&str` or a `String`, anything else is opaque.
fn payload_text(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-text panic payload)".to_owned())
}

/// One line: where, on which thread, and the concealed message.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let thread = std::thread::current();
    let location = info
        .location()
        .map(|at| format!("{}:{}", at.file(), at.line()))
        .unwrap_or_else(|| "an unknown place".to_owned());
    let message = scrub(&payload_text(info)).replace('\n', " ");
    format!(
        "thread '{}' panicked at {location}: {message}",
        thread.name().unwrap_or("unnamed")
    )
}

fn report_panic(info: &PanicHookInfo<'_>) {
    let report = describe(info);
    if tracing::dispatcher::has_been_set() {
        tracing::error!(panic = %report, "panic");
    } else {
        eprintln!("{report}");
    }
}

/// The fail point configuration in `DOUYIN_WATCH_FAILPOINTS` could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("{FAILPOINTS_VAR}: cannot set fail point {name:?}: {reason}")]
pub struct FailpointError {
    name: String,
    reason: String,
}

/// Applies `DOUYIN_WATCH_FAILPOINTS`, if set.
pub fn configure_failpoints() -> Result<(), FailpointError> {
    let Ok(spec) = std::env::var(FAILPOINTS_VAR) else {
        return Ok(());
    };
    for entry in spec.split(';').filter(|entry| !entry.trim().is_empty()) {
        let (name, actions) = entry.split_once('=').ok_or_else(|| FailpointError {
            name: entry.trim().to_owned(),
            reason: "expected name=actions".to_owned(),
        })?;
        fail::cfg(name.trim(), actions.trim()).map_err(|reason| FailpointError {
            name: name.trim().to_owned(),
            reason,
        })?;
    }
    Ok(())
}

/// The wait a test asks of an async step at the fail point `name` (`name=return(MS)`), so that
/// a signal can reach the process there; no wait when the point is off. (`fail`'s own `sleep`
/// blocks the thread, and with it the runtime that would see the signal.)
pub async fn failpoint_pause(name: &str) {
    let pause = (|| {
        fail::fail_point!(name, |ms: Option<String>| ms
            .and_then(|ms| ms.parse().ok())
            .map(std::time::Duration::from_millis));
        None
    })();
    if let Some(pause) = pause {
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_blanks_concealed_values_in_both_forms() {
        conceal("s3cr3t/+value");
        let scrubbed = scrub("GET /x?secret=s3cr3t%2F%2Bvalue&also=s3cr3t/+value failed");
        assert_eq!(scrubbed, "GET /x?secret=[redacted]&also=[redacted] failed");
        assert_eq!(scrub("nothing to hide"), "nothing to hide");
    }

    #[test]
    fn a_panic_inside_a_task_is_reported_concealed() {
        conceal("hook-secret-xyz");
        let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&reports);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            seen.lock().expect("lock").push(describe(info));
        }));
        let result =
            std::thread::spawn(|| panic!("calling ?secret=hook-secret-xyz\nfailed")).join();
        std::panic::set_hook(previous);
        assert!(result.is_err());
        // Other tests may panic meanwhile (the hook is process-wide): keep this one's report.
        let reports = reports.lock().expect("lock");
        let ours: Vec<_> = reports.iter().filter(|r| r.contains("calling")).collect();
        assert_eq!(ours.len(), 1, "{reports:?}");
        assert!(ours[0].contains("src/panics.rs:"), "{}", ours[0]);
        assert!(
            ours[0].ends_with(": calling ?secret=[redacted] failed"),
            "{}",
            ours[0]
        );
    }
}
