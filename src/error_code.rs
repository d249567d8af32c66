//! onebound's `error_code` table and what the collector does with each code.

use std::borrow::Cow;

/// What the collector does with an answer carrying a given code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The call worked and the answer holds the video (0000).
    Success,
    /// The video does not exist; mark it not_found and do not retry (2000).
    NotFound,
    /// A passing failure on onebound's or Douyin's side; retry with backoff.
    Transient,
    /// Too many concurrent calls; back off and lower the pace.
    RateLimited,
    /// Something is wrong with this one request; skip the video without retrying.
    PerVideo,
    /// The account or API key cannot make calls; stop the pass at once.
    Account,
}

/// One row of the API's error-code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ErrorCode {
    /// The four-digit code, as onebound sends it in `error_code`.
    pub code: &'static str,
    /// onebound's English status text.
    pub status: &'static str,
    /// onebound's Chinese description.
    pub description_cn: &'static str,
    /// Whether onebound charges for a call answered with this code (是 in the table).
    pub charged: bool,
    /// What the collector does with this code.
    pub policy: Policy,
}

/// Builds one table row; keeps [`TABLE`] to one line per code.
const fn row(
    code: &'static str,
    status: &'static str,
    description_cn: &'static str,
    charged: bool,
    policy: Policy,
) -> ErrorCode {
    ErrorCode {
        code,
        status,
        description_cn,
        charged,
        policy,
    }
}

/// Every code in onebound's table for `douyin/item_get_video`, with our policy for it.
#[rustfmt::skip]
pub const TABLE: &[ErrorCode] = &[
    row("0000", "success", "接口调用成功并返回相关数据", true, Policy::Success),
    row("2000", "Search success but no result", "接口访问成功,但是搜索没有结果", true, Policy::NotFound),
    row("4000", "Server internal error", "服务器内部错误", false, Policy::Transient),
    row("4001", "Network error", "网络错误", false, Policy::Transient),
    row("4002", "Target server error", "目标服务器错误", false, Policy::Transient),
    row("4003", "Param error", "用户输入参数错误", false, Policy::PerVideo),
    row("4004", "Account not found", "用户帐号不存在", false, Policy::Account),
    row("4005", "Invalid authentication credentials", "授权失败", false, Policy::Account),
    row("4006", "API stopped", "您的当前API已停用", false, Policy::Account),
    row("4007", "Account stopped", "您的账户已停用", false, Policy::Account),
    row("4008", "API rate limit exceeded", "并发已达上限", false, Policy::RateLimited),
    row("4009", "API maintenance", "API维护中", false, Policy::Account),
    row("4010", "API not found with these values", "API不存在", false, Policy::Account),
    row("4012", "Please add api first", "请先添加api", false, Policy::Account),
    row("4013", "Number of calls exceeded", "调用次数超限", false, Policy::Account),
    row("4014", "Missing url param", "参数缺失", false, Policy::PerVideo),
    row("4015", "Wrong pageToken", "参数pageToken有误", false, Policy::PerVideo),
    row("4016", "Insufficient balance", "余额不足", false, Policy::Account),
    row("4017", "timeout error", "请求超时", false, Policy::Transient),
    row("5000", "unknown error", "未知错误", false, Policy::Transient),
];

/// Number of digits in onebound's codes.
const CODE_DIGITS: usize = 4;

/// Trims the code and left-pads an all-digit code to four digits (a JSON number `0` means `0000`).
fn normalise(code: &str) -> Cow<'_, str> {
    let code = code.trim();
    if !code.is_empty() && code.len() < CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        Cow::Owned(format!("{code:0>CODE_DIGITS$}"))
    } else {
        Cow::Borrowed(code)
    }
}

/// Finds the table row for `code` (surrounding whitespace ignored, short numbers zero-padded).
pub fn lookup(code: &str) -> Option<&'static ErrorCode> {
    let code = normalise(code);
    TABLE.iter().find(|row| row.code == code)
}

/// Tells what to do with an answer carrying `code`; codes not in the table are [`Policy::PerVideo`].
pub fn policy(code: &str) -> Policy {
    lookup(code).map_or(Policy::PerVideo, |row| row.policy)
}

/// Tells whether onebound charges for a call answered with `code`: only 0000 and 2000 are charged.
pub fn is_charged(code: &str) -> bool {
    lookup(code).is_some_and(|row| row.charged)
}

/// Describes `code` for logs and users, e.g. "Number of calls exceeded (调用次数超限)".
pub fn meaning(code: &str) -> String {
    match lookup(code) {
        Some(row) => format!("{} ({})", row.status, row.description_cn),
        None if code.trim().is_empty() => "missing error code".to_owned(),
        None => format!("unknown error code {}", code.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_api_code_has_its_policy_and_charge() {
        let cases: &[(&str, Policy, bool)] = &[
            ("0000", Policy::Success, true),
            ("2000", Policy::NotFound, true),
            ("4000", Policy::Transient, false),
            ("4001", Policy::Transient, false),
            ("4002", Policy::Transient, false),
            ("4003", Policy::PerVideo, false),
            ("4004", Policy::Account, false),
            ("4005", Policy::Account, false),
            ("4006", Policy::Account, false),
            ("4007", Policy::Account, false),
            ("4008", Policy::RateLimited, false),
            ("4009", Policy::Account, false),
            ("4010", Policy::Account, false),
            ("4012", Policy::Account, false),
            ("4013", Policy::Account, false),
            ("4014", Policy::PerVideo, false),
            ("4015", Policy::PerVideo, false),
            ("4016", Policy::Account, false),
            ("4017", Policy::Transient, false),
            ("5000", Policy::Transient, false),
        ];
        for (code, want_policy, want_charged) in cases {
            assert!(lookup(code).is_some(), "code {code:?} missing from TABLE");
            assert_eq!(policy(code), *want_policy, "code {code:?}");
            assert_eq!(is_charged(code), *want_charged, "code {code:?}");
        }
    }

    #[test]
    fn codes_are_normalised() {
        let cases: &[(&str, Option<&str>)] = &[
            (" 4013 ", Some("4013")),
            ("\t0000\n", Some("0000")),
            ("0", Some("0000")),
            ("000", Some("0000")),
            ("00000", None),
            ("4013x", None),
            ("", None),
            ("   ", None),
            ("40 13", None),
        ];
        for (code, want) in cases {
            assert_eq!(lookup(code).map(|row| row.code), *want, "code {code:?}");
        }
    }

    #[test]
    fn unknown_codes() {
        let cases: &[&str] = &["1234", "4011", "9999", "", "abc", "-1", "0001"];
        for code in cases {
            assert!(lookup(code).is_none(), "code {code:?}");
            assert_eq!(policy(code), Policy::PerVideo, "code {code:?}");
            assert!(!is_charged(code), "code {code:?}");
        }
    }

    #[test]
    fn meanings() {
        let cases: &[(&str, &str)] = &[
            ("4013", "Number of calls exceeded (调用次数超限)"),
            (" 0000 ", "success (接口调用成功并返回相关数据)"),
            (
                "2000",
                "Search success but no result (接口访问成功,但是搜索没有结果)",
            ),
            ("1234", "unknown error code 1234"),
            (" 1234 ", "unknown error code 1234"),
            ("", "missing error code"),
            ("  ", "missing error code"),
        ];
        for (code, want) in cases {
            assert_eq!(meaning(code), *want, "code {code:?}");
        }
    }

    #[test]
    fn table_has_twenty_unique_four_digit_codes() {
        assert_eq!(TABLE.len(), 20);
        let unique: HashSet<&str> = TABLE.iter().map(|row| row.code).collect();
        assert_eq!(unique.len(), 20, "duplicate codes in TABLE");
        for row in TABLE {
            assert!(
                row.code.len() == CODE_DIGITS && row.code.bytes().all(|b| b.is_ascii_digit()),
                "code {:?}",
                row.code
            );
        }
    }

    #[test]
    fn policy_serialises_in_snake_case() {
        let cases: &[(Policy, &str)] = &[
            (Policy::Success, "\"success\""),
            (Policy::NotFound, "\"not_found\""),
            (Policy::RateLimited, "\"rate_limited\""),
            (Policy::PerVideo, "\"per_video\""),
        ];
        for (policy, want) in cases {
            assert_eq!(
                serde_json::to_string(policy).unwrap(),
                *want,
                "policy {policy:?}"
            );
        }
    }
}
