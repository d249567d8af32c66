//! Layered configuration: compiled-in defaults, a TOML file, `DOUYIN_WATCH__SECTION__KEY` variables.
//!
//! Every key is documented in `config/default.toml`, which is also the source of the defaults.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlx::sqlite::SqliteConnectOptions;

use crate::cron_schedule::CronSchedule;

/// The defaults, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of the environment variables that override keys: `DOUYIN_WATCH__API__KEY` sets `api.key`.
pub const ENV_PREFIX: &str = "DOUYIN_WATCH";

/// A configuration that cannot be used; the message names the key and its environment variable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file, a variable or a value could not be read into the settings.
    #[error("configuration: {0}")]
    Load(String),
    /// A key has a value the program cannot work with.
    #[error(
        "configuration: {key} {problem} (set it in the config file or with {})",
        env_var(key)
    )]
    Invalid { key: &'static str, problem: String },
}

/// The name of the environment variable that sets `key` (`api.key` → `DOUYIN_WATCH__API__KEY`).
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
}

fn invalid(key: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// All settings, validated.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub api: ApiSettings,
    pub retry: RetrySettings,
    pub schedule: ScheduleSettings,
    pub quota: QuotaSettings,
    pub shutdown: ShutdownSettings,
    pub metrics: MetricsSettings,
    pub notify: NotifySettings,
    pub retention: RetentionSettings,
    pub log: LogSettings,
}

/// How long the call log is kept; snapshots are kept for ever.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days of `fetches` rows to keep; 0 keeps everything.
    pub fetches_days: u32,
    /// Days of `quota_samples` rows to keep; 0 keeps everything.
    pub quota_samples_days: u32,
}

impl RetentionSettings {
    /// The cutoffs at `now`: rows older than these go; `None` keeps a table whole.
    pub fn cutoffs(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) {
        // A retention longer than the calendar reaches back keeps everything (no overflow).
        let cutoff = |days: u32| {
            (days > 0)
                .then(|| chrono::TimeDelta::try_days(i64::from(days)))
                .flatten()
                .and_then(|age| now.checked_sub_signed(age))
        };
        (cutoff(self.fetches_days), cutoff(self.quota_samples_days))
    }

    /// True when something is ever pruned.
    pub fn enabled(&self) -> bool {
        self.fetches_days > 0 || self.quota_samples_days > 0
    }
}

/// The monitoring listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` for `/metrics` and `/healthz`; empty turns the listener off.
    pub listen: String,
}

/// Where the SQLite database lives.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    /// Passes make no call while the database's disk has less free (MiB); 0 never checks.
    pub min_free_mib: u64,
    /// The write-ahead log is cut back to this size (MiB) once checkpointed.
    pub wal_max_mib: u64,
}

/// How to reach onebound and how hard to push it.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    pub base_url: String,
    // Left out of `config show`'s TOML, which shows them as comments (`to_shown_toml`).
    #[serde(skip_serializing)]
    pub key: String,
    #[serde(skip_serializing)]
    pub secret: SecretString,
    pub secret_file: String,
    pub cache: String,
    pub lang: String,
    pub result_type: String,
    pub version: String,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub timeout: Duration,
    pub concurrency: usize,
    pub rate_per_sec: u32,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub short_link_timeout: Duration,
    pub max_body_bytes: usize,
}

/// Retries of transient failures.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub max_attempts: u32,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub base_delay: Duration,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub max_delay: Duration,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub account_pause: Duration,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub account_pause_max: Duration,
    /// How long a `not_found` video is left out of passes before one call checks it again.
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub not_found_recheck: Duration,
}

/// When the daemon runs passes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub cron: String,
    pub timezone: String,
    pub run_on_start: bool,
}

/// How much of the daily quota is never spent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    pub reserve: u64,
    pub warn_at: f64,
}

/// Where events are announced.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Receives a JSON POST per event; empty turns notifications off. Left out of `config
    /// show`'s TOML, which shows its host as a comment: such URLs carry access tokens.
    #[serde(skip_serializing)]
    pub webhook_url: String,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub timeout: Duration,
}

/// How long calls in flight may finish after SIGTERM.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub grace: Duration,
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogSettings {
    /// Pretty lines at `info`, for commands that run before (or without) the settings.
    fn default() -> LogSettings {
        LogSettings {
            format: LogFormat::Pretty,
            level: "info".to_owned(),
        }
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    /// Read by hand so that a wrong value is told the choices (serde would say "enum LogFormat
    /// does not have variant constructor xml").
    fn try_from(text: String) -> Result<LogFormat, String> {
        match text.as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "{text:?} is not a log format; use \"pretty\" or \"json\""
            )),
        }
    }
}

impl fmt::Debug for ApiSettings {
    /// Hand-written so the secret (and most of the key) never reach a log or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSettings")
            .field("base_url", &self.base_url)
            .field("key", &redact_key(&self.key))
            .field("secret", &"[redacted]")
            .field("secret_file", &self.secret_file)
            .field("cache", &self.cache)
            .field("lang", &self.lang)
            .field("result_type", &self.result_type)
            .field("version", &self.version)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .field("rate_per_sec", &self.rate_per_sec)
            .field("short_link_timeout", &self.short_link_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// The key with all but its last 4 characters hidden, for display.
pub fn redact_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    match chars.len() {
        0 => String::new(),
        n if n <= 4 => "*".repeat(n),
        n => format!(
            "{}{}",
            "*".repeat(n - 4),
            chars[n - 4..].iter().collect::<String>()
        ),
    }
}

fn show_duration<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*value).to_string())
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration like \"15s\" or \"2m\" ({e})"
        ))
    })
}

/// What the command about to run needs from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Database and logging only (`watch`, `history`, `quota`, ...).
    Database,
    /// Everything a pass needs: credentials included (`run`, `fetch`).
    Api,
}

impl Settings {
    /// Reads the layers: defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let environment = std::env::vars().collect();
        Self::load_from(file, environment)
    }

    /// Like [`Settings::load`] with an explicit environment, for tests.
    pub fn load_from(
        file: Option<&Path>,
        environment: std::collections::HashMap<String, String>,
    ) -> Result<Settings, SettingsError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.is_file() {
                let problem = if path.is_dir() {
                    "is a directory, not a file"
                } else if path.exists() {
                    "is not a regular file"
                } else {
                    "does not exist"
                };
                return Err(SettingsError::Load(format!(
                    "config file {} {problem} (given by --config or DOUYIN_WATCH_CONFIG)",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        // RUST_LOG overrides log.level (see `init_logging`), so a typo there silences the logs
        // just the same.
        if let Some(rust_log) = environment.get("RUST_LOG").filter(|v| !v.trim().is_empty()) {
            log_filter(rust_log).map_err(|why| {
                SettingsError::Load(format!("RUST_LOG (it overrides log.level) {why}"))
            })?;
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(environment)),
        );
        let config = builder
            .build()
            .map_err(|e| SettingsError::Load(describe_build_error(&e, file)))?;
        let mut settings: Settings = config
            .try_deserialize()
            .map_err(|e| SettingsError::Load(describe_deserialize_error(&e)))?;
        settings.read_secret_file()?;
        settings.validate()?;
        Ok(settings)
    }

    fn read_secret_file(&mut self) -> Result<(), SettingsError> {
        if self.api.secret_file.is_empty() || !self.api.secret.expose_secret().is_empty() {
            return Ok(());
        }
        let path = PathBuf::from(&self.api.secret_file);
        let content = std::fs::read_to_string(&path).map_err(|e| {
            invalid(
                "api.secret_file",
                format!("names {} which cannot be read ({e})", path.display()),
            )
        })?;
        if content.trim().is_empty() {
            return Err(invalid(
                "api.secret_file",
                format!("names {}, which is empty", path.display()),
            ));
        }
        self.api.secret = SecretString::from(content.trim().to_owned());
        Ok(())
    }

    /// Checks every value that does not need credentials.
    fn validate(&self) -> Result<(), SettingsError> {
        self.database_options()?;
        let base = url::Url::parse(&self.api.base_url)
            .map_err(|e| invalid("api.base_url", format!("is not a URL ({e})")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(
                "api.base_url",
                "must start with http:// or https://",
            ));
        }
        if base.query().is_some() {
            return Err(invalid(
                "api.base_url",
                "must not have a query (?...): the API's own parameters go there",
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid(
                "api.base_url",
                "must not hold credentials (user:password@): onebound takes api.key and api.secret",
            ));
        }
        if !matches!(self.api.cache.as_str(), "yes" | "no") {
            return Err(invalid(
                "api.cache",
                format!("is {:?}; use yes or no", self.api.cache),
            ));
        }
        if !matches!(self.api.lang.as_str(), "cn" | "en" | "ru") {
            return Err(invalid(
                "api.lang",
                format!("is {:?}; use cn, en or ru", self.api.lang),
            ));
        }
        if !matches!(self.api.result_type.as_str(), "json" | "jsonu") {
            return Err(invalid(
                "api.result_type",
                format!(
                    "is {:?}, which douyin-watch cannot read: it parses JSON, use json or jsonu",
                    self.api.result_type
                ),
            ));
        }
        if self.api.timeout.is_zero() {
            return Err(invalid("api.timeout", "must be longer than zero"));
        }
        if self.api.short_link_timeout.is_zero() {
            return Err(invalid(
                "api.short_link_timeout",
                "must be longer than zero",
            ));
        }
        if self.notify.timeout.is_zero() {
            return Err(invalid("notify.timeout", "must be longer than zero"));
        }
        if self.api.concurrency == 0 {
            return Err(invalid("api.concurrency", "must be at least 1"));
        }
        if self.api.max_body_bytes < 1024 {
            return Err(invalid("api.max_body_bytes", "must be at least 1024"));
        }
        if self.api.rate_per_sec == 0 {
            return Err(invalid("api.rate_per_sec", "must be at least 1"));
        }
        if self.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        if self.retry.account_pause_max < self.retry.account_pause {
            return Err(invalid(
                "retry.account_pause_max",
                "must not be shorter than retry.account_pause",
            ));
        }
        if self.retry.max_delay < self.retry.base_delay {
            return Err(invalid(
                "retry.max_delay",
                "must not be shorter than retry.base_delay",
            ));
        }
        self.timezone()?;
        self.cron()?;
        self.log_filter()?;
        self.metrics_listen()?;
        self.webhook_url()?;
        if !(0.0..=1.0).contains(&self.quota.warn_at) {
            return Err(invalid(
                "quota.warn_at",
                format!(
                    "is {}; use a fraction between 0 (off) and 1",
                    self.quota.warn_at
                ),
            ));
        }
        Ok(())
    }

    /// The webhook events are posted to; `None` when `notify.webhook_url` is empty.
    pub fn webhook_url(&self) -> Result<Option<url::Url>, SettingsError> {
        let text = self.notify.webhook_url.trim();
        if text.is_empty() {
            return Ok(None);
        }
        match url::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Some(url)),
            _ => Err(invalid(
                "notify.webhook_url",
                "is not an http:// or https:// URL",
            )),
        }
    }

    /// Where `run` serves `/metrics` and `/healthz`; `None` when `metrics.listen` is empty.
    pub fn metrics_listen(&self) -> Result<Option<std::net::SocketAddr>, SettingsError> {
        let listen = self.metrics.listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        listen.parse().map(Some).map_err(|_| {
            invalid(
                "metrics.listen",
                format!("{listen:?} is not an address like 127.0.0.1:9898"),
            )
        })
    }

    /// Checks what `run` and `fetch` need on top: the key and the secret.
    pub fn require(&self, needs: Needs) -> Result<(), SettingsError> {
        if needs == Needs::Api {
            if self.api.key.trim().is_empty() {
                return Err(invalid("api.key", "is not set"));
            }
            // What older releases' `config show` printed, saved as a config file: sending it
            // would be answered with 4005 and pause the account.
            if self.api.key.starts_with('*') {
                return Err(invalid(
                    "api.key",
                    "is shortened with *, as `config show` prints it: set the whole key",
                ));
            }
            if self.api.secret.expose_secret() == "[redacted]" {
                return Err(invalid(
                    "api.secret",
                    "is \"[redacted]\", as `config show` printed it: set the real secret \
                     (or use api.secret_file / DOUYIN_WATCH__API__SECRET_FILE)",
                ));
            }
            if self.api.secret.expose_secret().trim().is_empty() {
                return Err(invalid(
                    "api.secret",
                    "is not set (or use api.secret_file / DOUYIN_WATCH__API__SECRET_FILE)",
                ));
            }
        }
        Ok(())
    }

    /// The effective settings as TOML: what `config show` prints. The key (shortened to its last
    /// 4 characters) and whether a secret is set appear as comments, so a saved copy used as a
    /// config file cannot send a placeholder in their place.
    pub fn to_redacted_toml(&self) -> String {
        let shown = match toml::to_string(self) {
            Ok(shown) => shown,
            Err(e) => return format!("# cannot show the settings: {e}\n"),
        };
        let secret = if self.api.secret.expose_secret().is_empty() {
            "not set"
        } else {
            "set, hidden"
        };
        let credentials = format!(
            "# key = \"{}\"  (shortened; set it in a file or with {})\n\
             # secret: {secret} (set it with {}, or api.secret_file)\n",
            redact_key(&self.api.key),
            env_var("api.key"),
            env_var("api.secret"),
        );
        let webhook = match self.webhook_url() {
            Ok(Some(url)) => format!(
                "# webhook_url = \"{}://{}/…\"  (shortened: it may hold a token; set it in a \
                 file or with {})\n",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                env_var("notify.webhook_url"),
            ),
            _ => "# webhook_url: not set\n".to_owned(),
        };
        shown
            .replacen("[api]\n", &format!("[api]\n{credentials}"), 1)
            .replacen("[notify]\n", &format!("[notify]\n{webhook}"), 1)
    }

    /// SQLite connection options for `database.url`.
    pub fn database_options(&self) -> Result<SqliteConnectOptions, SettingsError> {
        // sqlx takes any text but a `sqlite:` URL as a file name (a plain path works), so
        // `postgres://host/db` made a file of that name.
        if self.database.url.contains("://") && !self.database.url.starts_with("sqlite:") {
            return Err(invalid(
                "database.url",
                format!(
                    "{:?} is not a SQLite URL like sqlite://data/douyin-watch.db \
                     (douyin-watch stores into SQLite only)",
                    self.database.url
                ),
            ));
        }
        let options = SqliteConnectOptions::from_str(&self.database.url).map_err(|e| {
            invalid(
                "database.url",
                format!(
                    "{:?} is not a SQLite URL like sqlite://data/douyin-watch.db ({e})",
                    self.database.url
                ),
            )
        })?;
        // An empty name makes SQLite open a temporary database, deleted on close: every row
        // written to it (`sqlite://$UNSET_VARIABLE`) would be lost without a word. An in-memory
        // one is lost the same way.
        let filename = options.get_filename().to_string_lossy();
        let in_memory = filename == ":memory:" || self.database.url.contains("mode=memory");
        // A name ending in `/` is meant as a folder: SQLite would make (or take over) a file
        // of that name.
        if filename.is_empty()
            || filename.ends_with('/')
            || in_memory
            || options.get_filename().is_dir()
        {
            return Err(invalid(
                "database.url",
                format!(
                    "{:?} names no database file; write one like sqlite://data/douyin-watch.db",
                    self.database.url
                ),
            ));
        }
        // sqlx hands SQLite a `file:` name as a URI: SQLite opens the file it names, while the
        // store would know it by the whole text (no pass lock, no guard on exports over it).
        if options
            .get_filename()
            .to_string_lossy()
            .starts_with("file:")
        {
            return Err(invalid(
                "database.url",
                format!(
                    "{:?} names the file as an SQLite URI (file:...); write it as \
                     sqlite:///path/to/douyin-watch.db",
                    self.database.url
                ),
            ));
        }
        // Without a limit SQLite keeps the log file at the largest size it ever reached, which a
        // reader holding a transaction open for days can make gigabytes.
        let wal_max_bytes = self.database.wal_max_mib.saturating_mul(1024 * 1024);
        Ok(options.pragma(
            "journal_size_limit",
            i64::try_from(wal_max_bytes).unwrap_or(i64::MAX).to_string(),
        ))
    }

    /// The time zone cron expressions are read in.
    pub fn timezone(&self) -> Result<chrono_tz::Tz, SettingsError> {
        self.schedule.timezone.parse().map_err(|_| {
            invalid(
                "schedule.timezone",
                format!(
                    "{:?} is not a time zone name like Asia/Shanghai or UTC",
                    self.schedule.timezone
                ),
            )
        })
    }

    /// `log.level` as a tracing filter. Each directive must name a level: tracing reads a bare
    /// word as a module name, so a typo (`warning`) would silence every line, errors included.
    pub fn log_filter(&self) -> Result<tracing_subscriber::EnvFilter, SettingsError> {
        log_filter(&self.log.level).map_err(|why| invalid("log.level", why))
    }

    /// The cron expression in the 6-field form the scheduler takes (a 5-field one gets `0` seconds).
    pub fn cron(&self) -> Result<String, SettingsError> {
        let expression = cron_with_seconds(&self.schedule.cron).ok_or_else(|| {
            invalid(
                "schedule.cron",
                format!(
                    "{:?} needs 5 fields (\"*/30 * * * *\") or 6 with seconds first (\"0 */30 * * * *\")",
                    self.schedule.cron
                ),
            )
        })?;
        let timezone = self.timezone()?;
        let Some(schedule) = CronSchedule::parse(&expression, timezone) else {
            return Err(invalid(
                "schedule.cron",
                format!("{:?} is not a valid cron expression", self.schedule.cron),
            ));
        };
        // The daemon would run and collect nothing, its health check green since no tick came.
        if schedule.next_after(chrono::Utc::now()).is_none() {
            return Err(invalid(
                "schedule.cron",
                format!(
                    "{:?} never fires (a day that no month has?)",
                    self.schedule.cron
                ),
            ));
        }
        Ok(expression)
    }
}

/// A tracing filter in which every directive names a level (see [`Settings::log_filter`]); the
/// error says what is wrong and what to write.
fn log_filter(text: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    // tracing also takes 0 (off) to 5 (trace) for a level.
    const LEVELS: [&str; 12] = [
        "error", "warn", "info", "debug", "trace", "off", "0", "1", "2", "3", "4", "5",
    ];
    let advice = format!(
        "use one of {}, or directives such as \"douyin_watch=debug,info\"",
        LEVELS[..6].join(", ")
    );
    let directives: Vec<&str> = text.split(',').map(str::trim).collect();
    if directives.iter().all(|d| d.is_empty()) {
        return Err(format!("is empty; {advice}"));
    }
    for directive in directives.iter().filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(*directive, |(_, level)| level);
        if !LEVELS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(level.trim()))
        {
            return Err(format!("{directive:?} names no level; {advice}"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map_err(|error| format!("{text:?} is not a filter ({error}); {advice}"))
}

/// `expr` with a seconds field: 6-field expressions are kept, 5-field ones get a leading `0`.
pub fn cron_with_seconds(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.len() {
        6 => Some(fields.join(" ")),
        5 => Some(format!("0 {}", fields.join(" "))),
        _ => None,
    }
}

/// The config crate's messages name the key; add the variable that sets it.
/// What the layers' reading says, except that a config file that is not TOML is described by
/// where and what the mistake is: toml's own message quotes the offending line, which may be the
/// secret's (`secret = "a\b"`, an unquoted secret).
fn describe_build_error(error: &config::ConfigError, file: Option<&Path>) -> String {
    let (config::ConfigError::FileParse { cause, .. }, Some(path)) = (error, file) else {
        return error.to_string();
    };
    let Some(toml_error) = cause.downcast_ref::<toml::de::Error>() else {
        return format!("config file {} cannot be read as TOML", path.display());
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let place = match toml_error.span().and_then(|span| text.get(..span.start)) {
        Some(before) => {
            let line_start = before.rfind('\n').map_or(0, |at| at + 1);
            format!(
                " at line {}, column {}",
                before.matches('\n').count() + 1,
                before[line_start..].chars().count() + 1
            )
        }
        None => String::new(),
    };
    format!(
        "config file {} is not valid TOML{place}: {}",
        path.display(),
        toml_error.message().trim().replace('\n', "; ")
    )
}

fn describe_deserialize_error(error: &config::ConfigError) -> String {
    let text = error.to_string();
    let (problem, section) = match text.rsplit_once(" for key `") {
        Some((problem, rest)) => (problem, rest.split('`').next()),
        None => (text.as_str(), None),
    };
    if let Some(unknown) = describe_unknown_key(problem, section) {
        return unknown;
    }
    match section {
        Some(key) => format!("{text} (check the config file or {})", env_var(key)),
        None => text,
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as the key a person misspelt, where it
/// may have come from, and the keys there are: a misspelt key would otherwise have no effect.
fn describe_unknown_key(problem: &str, section: Option<&str>) -> Option<String> {
    let rest = problem.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let known = rest
        .trim_start_matches(", expected ")
        .trim_start_matches("one of ")
        .replace('`', "");
    Some(match section {
        Some(section) => {
            let key = format!("{section}.{field}");
            format!(
                "unknown key {key} (from the config file, or the variable {}); \
                 the keys of [{section}] are: {known}",
                env_var(&key)
            )
        }
        None => format!(
            "unknown section [{field}] (from the config file, or a DOUYIN_WATCH__{}__… variable); \
             the sections are: {known}",
            field.to_uppercase()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_retention_longer_than_the_calendar_keeps_everything_instead_of_panicking() {
        let now = chrono::Utc::now();
        let retention = RetentionSettings {
            fetches_days: 100_000_000,
            quota_samples_days: u32::MAX,
        };
        assert_eq!(retention.cutoffs(now), (None, None));
        let retention = RetentionSettings {
            fetches_days: 30,
            quota_samples_days: 0,
        };
        assert_eq!(
            retention.cutoffs(now),
            (Some(now - chrono::TimeDelta::days(30)), None)
        );
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let environment: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(None, environment)
    }

    #[test]
    fn defaults_load_and_are_valid() {
        let settings = load_env(&[]).expect("defaults are valid");
        assert_eq!(settings.database.url, "sqlite://data/douyin-watch.db");
        assert_eq!(settings.api.base_url, "https://api-gw.onebound.cn");
        assert_eq!(settings.api.timeout, Duration::from_secs(15));
        assert_eq!(settings.schedule.timezone, "Asia/Shanghai");
        assert_eq!(settings.log.format, LogFormat::Pretty);
        assert!(settings.require(Needs::Database).is_ok());
    }

    #[test]
    fn environment_overrides_defaults() {
        let settings = load_env(&[
            ("DOUYIN_WATCH__API__KEY", "k123456"),
            ("DOUYIN_WATCH__API__SECRET", "s3cr3t"),
            ("DOUYIN_WATCH__API__CONCURRENCY", "8"),
            ("DOUYIN_WATCH__RETRY__BASE_DELAY", "250ms"),
            ("DOUYIN_WATCH__SCHEDULE__RUN_ON_START", "false"),
        ])
        .expect("valid");
        assert_eq!(settings.api.key, "k123456");
        assert_eq!(settings.api.secret.expose_secret(), "s3cr3t");
        assert_eq!(settings.api.concurrency, 8);
        assert_eq!(settings.retry.base_delay, Duration::from_millis(250));
        assert!(!settings.schedule.run_on_start);
        assert!(settings.require(Needs::Api).is_ok());
    }

    #[test]
    fn a_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("douyin-watch.toml");
        std::fs::write(&path, "[api]\nkey = \"from-file\"\nlang = \"en\"\n").expect("write");
        let environment = HashMap::from([("DOUYIN_WATCH__API__LANG".into(), "ru".into())]);
        let settings = Settings::load_from(Some(&path), environment).expect("valid");
        assert_eq!(settings.api.key, "from-file");
        assert_eq!(settings.api.lang, "ru");
    }

    #[test]
    fn a_file_that_is_not_toml_is_placed_without_showing_its_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("douyin-watch.toml");
        for (text, place, what) in [
            (
                "[api]\nkey = \"k\"\nsecret = \"秘密canary\\Secret99\"\n",
                "line 3, column 20",
                "missing escaped value",
            ),
            (
                "# 秘密\n[api]\nsecret = canarySecret99\n",
                "line 3, column 10",
                "string values must be quoted",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let error = Settings::load_from(Some(&path), HashMap::new())
                .expect_err("not TOML")
                .to_string();
            assert!(
                error.contains(&format!("is not valid TOML at {place}: {what}")),
                "{error}"
            );
            assert!(!error.contains("canary"), "{error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }

    #[test]
    fn invalid_values_name_the_key_and_the_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("DOUYIN_WATCH__API__CONCURRENCY", "0", "api.concurrency"),
            ("DOUYIN_WATCH__API__RATE_PER_SEC", "0", "api.rate_per_sec"),
            ("DOUYIN_WATCH__API__RESULT_TYPE", "xml", "api.result_type"),
            ("DOUYIN_WATCH__API__CACHE", "maybe", "api.cache"),
            ("DOUYIN_WATCH__API__LANG", "fr", "api.lang"),
            ("DOUYIN_WATCH__API__BASE_URL", "ftp://x", "api.base_url"),
            (
                "DOUYIN_WATCH__API__BASE_URL",
                "https://example.com/?a=1",
                "api.base_url",
            ),
            (
                "DOUYIN_WATCH__API__BASE_URL",
                "https://user:pw@example.com",
                "api.base_url",
            ),
            (
                "DOUYIN_WATCH__DATABASE__URL",
                "postgres://host/db",
                "database.url",
            ),
            (
                "DOUYIN_WATCH__DATABASE__URL",
                "sqlite:file:/tmp/douyin-watch.db",
                "database.url",
            ),
            // SQLite would open a temporary database and lose every row written to it.
            ("DOUYIN_WATCH__DATABASE__URL", "sqlite://", "database.url"),
            ("DOUYIN_WATCH__DATABASE__URL", "sqlite:", "database.url"),
            (
                "DOUYIN_WATCH__DATABASE__URL",
                "sqlite::memory:",
                "database.url",
            ),
            (
                "DOUYIN_WATCH__DATABASE__URL",
                "sqlite:///tmp",
                "database.url",
            ),
            (
                "DOUYIN_WATCH__DATABASE__URL",
                "sqlite://new-folder/",
                "database.url",
            ),
            (
                "DOUYIN_WATCH__DATABASE__URL",
                "sqlite://data.db?mode=memory",
                "database.url",
            ),
            ("DOUYIN_WATCH__API__TIMEOUT", "0s", "api.timeout"),
            (
                "DOUYIN_WATCH__SCHEDULE__CRON",
                "every hour",
                "schedule.cron",
            ),
            (
                "DOUYIN_WATCH__SCHEDULE__CRON",
                "0 99 * * * *",
                "schedule.cron",
            ),
            (
                "DOUYIN_WATCH__SCHEDULE__CRON",
                "0 0 31 2 *",
                "schedule.cron",
            ),
            (
                "DOUYIN_WATCH__SCHEDULE__TIMEZONE",
                "Mars/Base",
                "schedule.timezone",
            ),
            (
                "DOUYIN_WATCH__RETRY__MAX_ATTEMPTS",
                "0",
                "retry.max_attempts",
            ),
            ("DOUYIN_WATCH__RETRY__MAX_DELAY", "1ms", "retry.max_delay"),
            (
                "DOUYIN_WATCH__METRICS__LISTEN",
                "localhost",
                "metrics.listen",
            ),
            ("DOUYIN_WATCH__API__TIMEOUT", "soon", "api.timeout"),
            ("DOUYIN_WATCH__API__CONCURRENCY", "many", "api.concurrency"),
            (
                "DOUYIN_WATCH__API__SHORT_LINK_TIMEOUT",
                "0s",
                "api.short_link_timeout",
            ),
            ("DOUYIN_WATCH__NOTIFY__TIMEOUT", "0s", "notify.timeout"),
            // tracing would read these as module names and log nothing else, errors included.
            ("DOUYIN_WATCH__LOG__LEVEL", "warning", "log.level"),
            ("DOUYIN_WATCH__LOG__FORMAT", "xml", "log.format"),
            (
                "DOUYIN_WATCH__LOG__LEVEL",
                "douyin_watch=verbose",
                "log.level",
            ),
            ("DOUYIN_WATCH__LOG__LEVEL", "info,debg", "log.level"),
            ("DOUYIN_WATCH__LOG__LEVEL", " , ", "log.level"),
            // A misspelt key would otherwise have no effect at all.
            ("DOUYIN_WATCH__API__CONCURENCY", "8", "api.concurency"),
        ];
        for (variable, value, key) in cases {
            let error = load_env(&[(variable, value)])
                .expect_err(&format!("{variable}={value} must be refused"))
                .to_string();
            assert!(error.contains(key), "{variable}={value}: {error}");
            assert!(error.contains(&env_var(key)), "{variable}={value}: {error}");
            assert!(
                !error.contains('\n'),
                "{variable}={value}: one line: {error}"
            );
        }
    }

    #[test]
    fn a_rust_log_that_names_no_level_is_refused_too() {
        let error = load_env(&[("RUST_LOG", "warning")])
            .expect_err("RUST_LOG=warning must be refused")
            .to_string();
        assert!(
            error.contains("RUST_LOG") && error.contains("\"warning\" names no level"),
            "{error}"
        );
        assert!(load_env(&[("RUST_LOG", "douyin_watch=debug")]).is_ok());
        assert!(load_env(&[("RUST_LOG", "")]).is_ok(), "empty: not set");
    }

    #[test]
    fn log_levels_and_directives_with_levels_are_accepted() {
        for level in [
            "info",
            "WARN",
            "off",
            "3",
            "douyin_watch=debug,info",
            "info,",
            "sqlx=warn, debug",
        ] {
            let settings = load_env(&[("DOUYIN_WATCH__LOG__LEVEL", level)])
                .unwrap_or_else(|e| panic!("{level:?}: {e}"));
            assert!(settings.log_filter().is_ok(), "{level:?}");
        }
    }

    #[test]
    fn misspelt_keys_and_sections_in_a_file_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("douyin-watch.toml");
        let cases = [
            (
                "[api]\nconcurency = 8\n",
                "unknown key api.concurency",
                "concurrency",
            ),
            (
                "[schedul]\ncron = \"0 0 * * * *\"\n",
                "unknown section [schedul]",
                "schedule",
            ),
        ];
        for (text, named, suggested) in cases {
            std::fs::write(&path, text).expect("write");
            let error = Settings::load_from(Some(&path), HashMap::new())
                .expect_err(text)
                .to_string();
            assert!(error.contains(named), "{text}: {error}");
            assert!(error.contains(suggested), "{text}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn run_and_fetch_need_key_and_secret() {
        let settings = load_env(&[]).expect("valid");
        let error = settings
            .require(Needs::Api)
            .expect_err("no key")
            .to_string();
        assert!(error.contains("DOUYIN_WATCH__API__KEY"), "{error}");
        let settings = load_env(&[("DOUYIN_WATCH__API__KEY", "k")]).expect("valid");
        let error = settings
            .require(Needs::Api)
            .expect_err("no secret")
            .to_string();
        assert!(error.contains("DOUYIN_WATCH__API__SECRET"), "{error}");
    }

    #[test]
    fn the_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "file-secret\n").expect("write");
        let settings = load_env(&[
            ("DOUYIN_WATCH__API__KEY", "k"),
            (
                "DOUYIN_WATCH__API__SECRET_FILE",
                path.to_str().expect("utf-8"),
            ),
        ])
        .expect("valid");
        assert_eq!(settings.api.secret.expose_secret(), "file-secret");
        let error = load_env(&[("DOUYIN_WATCH__API__SECRET_FILE", "/nonexistent/secret")])
            .expect_err("missing file")
            .to_string();
        assert!(error.contains("DOUYIN_WATCH__API__SECRET_FILE"), "{error}");
        std::fs::write(&path, " \n").expect("write");
        let error = load_env(&[(
            "DOUYIN_WATCH__API__SECRET_FILE",
            path.to_str().expect("utf-8"),
        )])
        .expect_err("an empty file")
        .to_string();
        assert!(error.contains("is empty"), "{error}");
        assert!(error.contains("DOUYIN_WATCH__API__SECRET_FILE"), "{error}");
    }

    #[test]
    fn debug_output_hides_the_secret_and_most_of_the_key() {
        let settings = load_env(&[
            ("DOUYIN_WATCH__API__KEY", "key-abcdefgh"),
            ("DOUYIN_WATCH__API__SECRET", "very-secret-value"),
        ])
        .expect("valid");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(!debug.contains("key-abcd"), "{debug}");
        assert!(debug.contains("efgh"), "{debug}");
    }

    #[test]
    fn the_shown_configuration_hides_the_secret_and_reads_back() {
        let settings = load_env(&[
            ("DOUYIN_WATCH__API__KEY", "key-abcdefgh"),
            ("DOUYIN_WATCH__API__SECRET", "very-secret-value"),
            ("DOUYIN_WATCH__API__TIMEOUT", "1m 30s"),
            (
                "DOUYIN_WATCH__NOTIFY__WEBHOOK_URL",
                "https://oapi.dingtalk.com/robot/send?access_token=hook-token",
            ),
        ])
        .expect("valid");
        let shown = settings.to_redacted_toml();
        assert!(!shown.contains("hook-token"), "{shown}");
        assert!(
            shown.contains("# webhook_url = \"https://oapi.dingtalk.com/…\""),
            "{shown}"
        );
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("key-abcd"), "{shown}");
        assert!(shown.contains("# secret: set, hidden"), "{shown}");
        assert!(shown.contains("# key = \"********efgh\""), "{shown}");
        assert!(shown.contains("timeout = \"1m 30s\""), "{shown}");
        // Saved as a config file, the output reads back, and the credentials still come from
        // where they came from: a placeholder is never taken for the secret.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shown.toml");
        std::fs::write(&path, &shown).expect("write");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "from-the-file\n").expect("write");
        let environment = HashMap::from([
            (
                "DOUYIN_WATCH__API__KEY".to_owned(),
                "key-abcdefgh".to_owned(),
            ),
            (
                "DOUYIN_WATCH__API__SECRET_FILE".to_owned(),
                secret_file.display().to_string(),
            ),
        ]);
        let again = Settings::load_from(Some(&path), environment).expect("reads back");
        assert_eq!(again.api.timeout, Duration::from_secs(90));
        assert_eq!(again.schedule.cron, settings.schedule.cron);
        assert_eq!(again.api.key, "key-abcdefgh");
        assert_eq!(again.api.secret.expose_secret(), "from-the-file");
        assert!(again.require(Needs::Api).is_ok());
    }

    #[test]
    fn placeholders_that_config_show_used_to_print_are_not_sent() {
        let cases = [
            (
                [
                    ("DOUYIN_WATCH__API__KEY", "********efgh"),
                    ("DOUYIN_WATCH__API__SECRET", "s3"),
                ],
                "api.key",
            ),
            (
                // A 5-character key kept 4: one star.
                [
                    ("DOUYIN_WATCH__API__KEY", "*bcde"),
                    ("DOUYIN_WATCH__API__SECRET", "s3"),
                ],
                "api.key",
            ),
            (
                [
                    ("DOUYIN_WATCH__API__KEY", "key-abcdefgh"),
                    ("DOUYIN_WATCH__API__SECRET", "[redacted]"),
                ],
                "api.secret",
            ),
        ];
        for (environment, key) in cases {
            let error = load_env(&environment)
                .expect("loads")
                .require(Needs::Api)
                .expect_err("a placeholder must be refused")
                .to_string();
            assert!(error.contains(key), "{error}");
            assert!(error.contains("config show"), "{error}");
        }
    }

    #[test]
    fn cron_expressions_get_a_seconds_field() {
        let cases = [
            ("*/30 * * * *", Some("0 */30 * * * *")),
            ("0 0 * * * *", Some("0 0 * * * *")),
            ("  */5   * * * * * ", Some("*/5 * * * * *")),
            ("* * *", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                cron_with_seconds(input).as_deref(),
                expected,
                "input {input:?}"
            );
        }
    }
}
