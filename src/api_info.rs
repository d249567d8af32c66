//! The call quota onebound reports in the `api_info` field of every answer.
//!
//! Seen in the wild: `today:39 max:10000 all[104=39+33+32];expires:2030-12-31`, `today:0 max:10000`,
//! `today: max:20000 all[=++];expires:2024-01-16`. Parsing tolerates any order, extra or missing spaces,
//! `;` or `,` between parts and empty values; unknown words are ignored and a part given twice keeps its
//! last value.

use std::fmt;

use chrono::NaiveDate;

/// Longest stretch of the text quoted back in an error message, in characters.
const QUOTE_CHARS: usize = 80;

/// The date format of the `expires` part.
const DATE_FORMAT: &str = "%Y-%m-%d";

/// The quota figures onebound reports in `api_info`; absent or empty parts are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ApiInfo {
    /// Calls made today (`today:39`).
    pub today: Option<u64>,
    /// Calls allowed per day (`max:10000`).
    pub max: Option<u64>,
    /// The total in `all[104=...]`.
    pub total: Option<u64>,
    /// The addends in `all[...=39+33+32]`; never `Some` of an empty list when parsed.
    pub total_parts: Option<Vec<u64>>,
    /// The day the API key expires (`expires:2030-12-31`).
    pub expires_on: Option<NaiveDate>,
}

/// Why an `api_info` text could not be read; each message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiInfoError {
    /// None of `today`, `max`, `all[...]` or `expires` appears in the text.
    #[error("api_info {text}: none of today:, max:, all[...] or expires: found")]
    NoKnownParts {
        /// The text, quoted and shortened.
        text: String,
    },
    /// A part is present but its value cannot be read.
    #[error("api_info {text}: {part} value {value} is not {expected}")]
    Malformed {
        /// The text, quoted and shortened.
        text: String,
        /// Which part is malformed: `today`, `max`, `all` or `expires`.
        part: &'static str,
        /// The offending value, quoted and shortened.
        value: String,
        /// What the value should look like.
        expected: &'static str,
    },
}

/// Quotes `text` for an error message on one line, cut to [`QUOTE_CHARS`] characters.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// The parts of an `api_info` text.
#[derive(Clone, Copy)]
enum Key {
    Today,
    Max,
    All,
    Expires,
}

impl Key {
    /// Every key, with the character that ends its name (`:` or `[`).
    const ALL: [(Key, char); 4] = [
        (Key::Today, ':'),
        (Key::Max, ':'),
        (Key::All, '['),
        (Key::Expires, ':'),
    ];

    /// The key's name as written in the text.
    fn name(self) -> &'static str {
        match self {
            Key::Today => "today",
            Key::Max => "max",
            Key::All => "all",
            Key::Expires => "expires",
        }
    }
}

/// Tells whether `c` separates parts.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == ';' || c == ','
}

/// If `rest` starts with a key (case-insensitive, spaces allowed before `:` or `[`), returns it and what follows.
fn key_at(rest: &str) -> Option<(Key, &str)> {
    Key::ALL.iter().find_map(|&(key, end)| {
        let name = key.name();
        let head = rest.get(..name.len())?;
        if !head.eq_ignore_ascii_case(name) {
            return None;
        }
        let after = rest[name.len()..].trim_start();
        after.strip_prefix(end).map(|value| (key, value))
    })
}

/// Splits `rest` into a value and what follows: the value ends at a separator or where another key starts.
fn take_value(rest: &str) -> (&str, &str) {
    let end = rest
        .char_indices()
        // Every key starts with a letter: no need to look for one at a digit.
        .find(|&(at, c)| {
            is_separator(c) || (c.is_ascii_alphabetic() && key_at(&rest[at..]).is_some())
        })
        .map_or(rest.len(), |(at, _)| at);
    rest.split_at(end)
}

/// Reads a whole number made of ASCII digits only.
fn number(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Reads a part's number, `None` when the value is empty.
fn optional_number(value: &str) -> Result<Option<u64>, ()> {
    if value.is_empty() {
        Ok(None)
    } else {
        number(value).map(Some).ok_or(())
    }
}

/// Reads the inside of `all[...]`: an optional total, then optionally `=` and `+`-separated addends.
fn all_contents(inside: &str) -> Result<(Option<u64>, Option<Vec<u64>>), ()> {
    let (total, parts) = match inside.split_once('=') {
        Some((total, parts)) => (total, Some(parts)),
        None => (inside, None),
    };
    let total = optional_number(total.trim())?;
    let Some(parts) = parts else {
        return Ok((total, None));
    };
    let parts: Vec<&str> = parts.split('+').map(str::trim).collect();
    if parts.iter().all(|part| part.is_empty()) {
        return Ok((total, None));
    }
    let parts = parts
        .iter()
        .map(|part| number(part).ok_or(()))
        .collect::<Result<Vec<u64>, ()>>()?;
    Ok((total, Some(parts)))
}

impl ApiInfo {
    /// Parses onebound's `api_info` text; fails only if no known part is present or a part's value is malformed.
    pub fn parse(s: &str) -> Result<ApiInfo, ApiInfoError> {
        let malformed = |part: Key, value: &str, expected: &'static str| ApiInfoError::Malformed {
            text: quote(s),
            part: part.name(),
            value: quote(value),
            expected,
        };
        let mut info = ApiInfo::default();
        let mut found = false;
        let mut rest = s;
        loop {
            rest = rest.trim_start_matches(is_separator);
            if rest.is_empty() {
                break;
            }
            let Some((key, after_key)) = key_at(rest) else {
                // An unknown word: skip to the next separator.
                rest = rest.trim_start_matches(|c| !is_separator(c));
                continue;
            };
            found = true;
            let after_key = after_key.trim_start();
            match key {
                Key::Today | Key::Max => {
                    let (value, after) = take_value(after_key);
                    let number = optional_number(value)
                        .map_err(|()| malformed(key, value, "a whole number"))?;
                    if matches!(key, Key::Today) {
                        info.today = number;
                    } else {
                        info.max = number;
                    }
                    rest = after;
                }
                Key::Expires => {
                    let (value, after) = take_value(after_key);
                    info.expires_on = if value.is_empty() {
                        None
                    } else {
                        let date = NaiveDate::parse_from_str(value, DATE_FORMAT)
                            .map_err(|_| malformed(key, value, "a date like 2030-12-31"))?;
                        Some(date)
                    };
                    rest = after;
                }
                Key::All => {
                    let Some((inside, after)) = after_key.split_once(']') else {
                        return Err(malformed(key, after_key, "closed with ]"));
                    };
                    (info.total, info.total_parts) = all_contents(inside)
                        .map_err(|()| malformed(key, inside, "like 104=39+33+32"))?;
                    rest = after;
                }
            }
        }
        if found {
            Ok(info)
        } else {
            Err(ApiInfoError::NoKnownParts { text: quote(s) })
        }
    }

    /// Calls left today: `max - today`, at least 0; `None` unless both figures are known.
    pub fn remaining(&self) -> Option<u64> {
        Some(self.max?.saturating_sub(self.today?))
    }
}

impl fmt::Display for ApiInfo {
    /// Writes onebound's format, e.g. `today:39 max:10000 all[104=39+33+32];expires:2030-12-31`, omitting absent parts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        if let Some(today) = self.today {
            words.push(format!("today:{today}"));
        }
        if let Some(max) = self.max {
            words.push(format!("max:{max}"));
        }
        if self.total.is_some() || self.total_parts.is_some() {
            let total = self
                .total
                .map(|total| total.to_string())
                .unwrap_or_default();
            let parts = match &self.total_parts {
                Some(parts) => {
                    let parts: Vec<String> = parts.iter().map(u64::to_string).collect();
                    format!("={}", parts.join("+"))
                }
                None => String::new(),
            };
            words.push(format!("all[{total}{parts}]"));
        }
        f.write_str(&words.join(" "))?;
        if let Some(expires_on) = self.expires_on {
            if !words.is_empty() {
                f.write_str(";")?;
            }
            write!(f, "expires:{}", expires_on.format(DATE_FORMAT))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    #[test]
    fn shapes() {
        let full = ApiInfo {
            today: Some(39),
            max: Some(10000),
            total: Some(104),
            total_parts: Some(vec![39, 33, 32]),
            expires_on: date(2030, 12, 31),
        };
        let cases: Vec<(&str, ApiInfo)> = vec![
            (
                "today:39 max:10000 all[104=39+33+32];expires:2030-12-31",
                full.clone(),
            ),
            (
                "today:0 max:10000",
                ApiInfo {
                    today: Some(0),
                    max: Some(10000),
                    ..ApiInfo::default()
                },
            ),
            (
                "today: max:20000 all[=++];expires:2024-01-16",
                ApiInfo {
                    max: Some(20000),
                    expires_on: date(2024, 1, 16),
                    ..ApiInfo::default()
                },
            ),
            (
                "  today : 39   max: 10000  all[ 104 = 39 + 33 + 32 ] ; expires: 2030-12-31 ;",
                full.clone(),
            ),
            (
                "today:39max:10000all[104=39+33+32]expires:2030-12-31",
                full.clone(),
            ),
            (
                "expires:2030-12-31;all[104=39+33+32] max:10000 today:39",
                full.clone(),
            ),
            (
                "TODAY:39 Max:10000 ALL[104=39+33+32];Expires:2030-12-31",
                full.clone(),
            ),
            (
                "today:39,max:10000,all[104=39+33+32],expires:2030-12-31",
                full.clone(),
            ),
            (
                "today:39\tmax:10000\nall[104=39+33+32];\r\nexpires:2030-12-31",
                full.clone(),
            ),
            (
                "today:39 max:10000 all[104=39];",
                ApiInfo {
                    today: Some(39),
                    max: Some(10000),
                    total: Some(104),
                    total_parts: Some(vec![39]),
                    ..ApiInfo::default()
                },
            ),
            (
                "today:39 max:10000 all[104]",
                ApiInfo {
                    today: Some(39),
                    max: Some(10000),
                    total: Some(104),
                    ..ApiInfo::default()
                },
            ),
            (
                "all[104=]",
                ApiInfo {
                    total: Some(104),
                    ..ApiInfo::default()
                },
            ),
            (
                "all[=39+33]",
                ApiInfo {
                    total_parts: Some(vec![39, 33]),
                    ..ApiInfo::default()
                },
            ),
            ("all[]", ApiInfo::default()),
            (
                "today:1 max:2;expires:",
                ApiInfo {
                    today: Some(1),
                    max: Some(2),
                    ..ApiInfo::default()
                },
            ),
            (
                "expires: ;today:1",
                ApiInfo {
                    today: Some(1),
                    ..ApiInfo::default()
                },
            ),
            ("today: max:", ApiInfo::default()),
            ("today:", ApiInfo::default()),
            (
                "expires:2030-12-31",
                ApiInfo {
                    expires_on: date(2030, 12, 31),
                    ..ApiInfo::default()
                },
            ),
            (
                "cache:1 today:5 region:cn",
                ApiInfo {
                    today: Some(5),
                    ..ApiInfo::default()
                },
            ),
            (
                "maximum:5 today:5",
                ApiInfo {
                    today: Some(5),
                    ..ApiInfo::default()
                },
            ),
            (
                "today:1 today:2",
                ApiInfo {
                    today: Some(2),
                    ..ApiInfo::default()
                },
            ),
            (
                "today:18446744073709551615",
                ApiInfo {
                    today: Some(u64::MAX),
                    ..ApiInfo::default()
                },
            ),
        ];
        for (text, want) in &cases {
            assert_eq!(ApiInfo::parse(text).as_ref(), Ok(want), "text {text:?}");
        }
    }

    #[test]
    fn malformed() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("   ;; ", None),
            ("hello world", None),
            ("maximum:5", None),
            ("today:abc max:10000", Some("today")),
            ("today:-1", Some("today")),
            ("today:+1", Some("today")),
            ("today:1.5", Some("today")),
            ("today:18446744073709551616", Some("today")),
            ("max:10k", Some("max")),
            ("expires:2024-13-45", Some("expires")),
            ("expires:tomorrow", Some("expires")),
            ("expires:2024-02-30", Some("expires")),
            ("all[104=39+x]", Some("all")),
            ("all[104=39++32]", Some("all")),
            ("all[abc]", Some("all")),
            ("all[104=39", Some("all")),
        ];
        for (text, part) in cases {
            let got = ApiInfo::parse(text);
            let ok = match (part, &got) {
                (None, Err(ApiInfoError::NoKnownParts { .. })) => true,
                (Some(want), Err(ApiInfoError::Malformed { part, .. })) => part == want,
                _ => false,
            };
            assert!(ok, "text {text:?}: wanted {part:?} error, got {got:?}");
        }
    }

    #[test]
    fn error_messages() {
        let cases: &[(&str, &str)] = &[
            (
                "hello",
                r#"api_info "hello": none of today:, max:, all[...] or expires: found"#,
            ),
            (
                "today:abc",
                r#"api_info "today:abc": today value "abc" is not a whole number"#,
            ),
            (
                "expires:2024-13-45",
                r#"api_info "expires:2024-13-45": expires value "2024-13-45" is not a date like 2030-12-31"#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                ApiInfo::parse(text).unwrap_err().to_string(),
                *want,
                "text {text:?}"
            );
        }
        let long = format!("{}\n", "z".repeat(10_000));
        let message = ApiInfo::parse(&long).unwrap_err().to_string();
        assert!(
            message.contains(&format!("\"{}\"…", "z".repeat(80))),
            "long text gave {message:?}"
        );
        assert!(
            message.len() < 200 && !message.contains('\n'),
            "long text gave {message:?}"
        );
    }

    #[test]
    fn display() {
        let cases: Vec<(ApiInfo, &str)> = vec![
            (
                ApiInfo {
                    today: Some(39),
                    max: Some(10000),
                    total: Some(104),
                    total_parts: Some(vec![39, 33, 32]),
                    expires_on: date(2030, 12, 31),
                },
                "today:39 max:10000 all[104=39+33+32];expires:2030-12-31",
            ),
            (
                ApiInfo {
                    today: Some(0),
                    max: Some(10000),
                    ..ApiInfo::default()
                },
                "today:0 max:10000",
            ),
            (
                ApiInfo {
                    max: Some(20000),
                    expires_on: date(2024, 1, 16),
                    ..ApiInfo::default()
                },
                "max:20000;expires:2024-01-16",
            ),
            (
                ApiInfo {
                    total: Some(104),
                    ..ApiInfo::default()
                },
                "all[104]",
            ),
            (
                ApiInfo {
                    total_parts: Some(vec![1, 2]),
                    ..ApiInfo::default()
                },
                "all[=1+2]",
            ),
            (
                ApiInfo {
                    expires_on: date(999, 1, 2),
                    ..ApiInfo::default()
                },
                "expires:0999-01-02",
            ),
            (ApiInfo::default(), ""),
        ];
        for (info, want) in &cases {
            assert_eq!(info.to_string(), *want, "info {info:?}");
        }
    }

    #[test]
    fn remaining() {
        let cases: &[(Option<u64>, Option<u64>, Option<u64>)] = &[
            (Some(39), Some(10000), Some(9961)),
            (Some(0), Some(10000), Some(10000)),
            (Some(10001), Some(10000), Some(0)),
            (None, Some(20000), None),
            (Some(39), None, None),
            (None, None, None),
        ];
        for &(today, max, want) in cases {
            let info = ApiInfo {
                today,
                max,
                ..ApiInfo::default()
            };
            assert_eq!(info.remaining(), want, "today {today:?} max {max:?}");
        }
    }

    /// Every `ApiInfo` that has at least one part and no empty `total_parts`.
    fn well_formed() -> impl Strategy<Value = ApiInfo> {
        (
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            proptest::option::of(proptest::collection::vec(any::<u64>(), 1..6)),
            proptest::option::of(0..=3_000_000i32),
        )
            .prop_map(|(today, max, total, total_parts, days)| ApiInfo {
                today,
                max,
                total,
                total_parts,
                expires_on: days.and_then(|days| NaiveDate::from_num_days_from_ce_opt(days + 1)),
            })
            .prop_filter("at least one part", |info| *info != ApiInfo::default())
    }

    proptest! {
        #[test]
        fn display_round_trips(info in well_formed()) {
            let text = info.to_string();
            prop_assert_eq!(ApiInfo::parse(&text), Ok(info), "text {:?}", text);
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = ApiInfo::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            text in r"((today|max|expires|all|TODAY| |:|;|\[|\]|=|\+|-|[0-9]{1,25}|x|é){0,40})",
        ) {
            let _ = ApiInfo::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_huge_text(
            unit in r"(today:|max:1|all\[1=|expires:2024-01-0|;| |x|é){1,4}",
            copies in 1_000usize..20_000,
        ) {
            let _ = ApiInfo::parse(&unit.repeat(copies));
        }
    }
}
