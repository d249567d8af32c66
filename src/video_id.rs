//! Douyin video ids and the watch-list entries users paste: bare ids, video URLs, share text.
//!
//! Only Douyin's own hosts count (`douyin.com`, `iesdouyin.com` and their subdomains, matched on a dot
//! boundary, case and one trailing dot ignored). In share text, the URL on a Douyin host that names a
//! video or is a short link decides; other URLs are passed over, and links to two different videos
//! are refused rather than one of them chosen. Short links are returned unresolved.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use url::Url;

/// Fewest digits a video id may have (real ids have 19).
pub const MIN_ID_DIGITS: usize = 8;
/// Most digits a video id may have (real ids have 19).
pub const MAX_ID_DIGITS: usize = 24;

/// Longest stretch of an entry quoted back in an error message, in characters.
const QUOTE_CHARS: usize = 80;

/// The host that serves Douyin share short links.
const SHORT_LINK_HOST: &str = "v.douyin.com";

/// Douyin's own registrable domains; these and their subdomains count as Douyin hosts.
const DOUYIN_DOMAINS: [&str; 2] = ["douyin.com", "iesdouyin.com"];

/// An http(s) URL inside share text: ASCII URL characters only, so it stops at Chinese text.
static URL_IN_TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+").unwrap());

/// A Douyin video id: the decimal digits onebound calls `num_iid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct VideoId(String);

/// Why a string of would-be id digits is not a video id.
enum IdProblem {
    NotDigits,
    Length(usize),
    LeadingZero,
}

/// Checks that `s` is 8 to 24 ASCII digits without a leading zero.
fn check_id(s: &str) -> Result<VideoId, IdProblem> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdProblem::NotDigits);
    }
    if !(MIN_ID_DIGITS..=MAX_ID_DIGITS).contains(&s.len()) {
        return Err(IdProblem::Length(s.len()));
    }
    if s.starts_with('0') {
        return Err(IdProblem::LeadingZero);
    }
    Ok(VideoId(s.to_owned()))
}

impl VideoId {
    /// Parses a bare video id: surrounding whitespace is trimmed, then 8 to 24 ASCII digits, no leading zero.
    pub fn parse(s: &str) -> Result<VideoId, InvalidInput> {
        check_id(s.trim()).map_err(|problem| InvalidInput::from_id_problem(s, problem))
    }

    /// Returns the id's digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for VideoId {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VideoId::parse(s)
    }
}

/// What one watch-list entry turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchInput {
    /// A video id, given directly or found in a Douyin video URL.
    Id(VideoId),
    /// A `v.douyin.com` short link that still has to be resolved over the network.
    ShortLink(Url),
}

/// Why a watch-list entry was rejected; each message quotes the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// The entry is empty or only whitespace.
    #[error("{entry}: empty entry, expected a video id or Douyin video URL")]
    Empty {
        /// The entry, quoted and shortened.
        entry: String,
    },
    /// The entry is neither digits nor contains an http(s) URL.
    #[error("{entry}: not a video id or Douyin video URL")]
    NotRecognised {
        /// The entry, quoted and shortened.
        entry: String,
    },
    /// The id has too few or too many digits.
    #[error(
        "{entry}: a video id has {MIN_ID_DIGITS} to {MAX_ID_DIGITS} digits, this one has {digits}"
    )]
    IdLength {
        /// The entry, quoted and shortened.
        entry: String,
        /// How many digits the id had.
        digits: usize,
    },
    /// The id starts with 0, which Douyin ids never do.
    #[error("{entry}: a video id never starts with 0")]
    IdLeadingZero {
        /// The entry, quoted and shortened.
        entry: String,
    },
    /// The URL is on a Douyin host but names no video.
    #[error("{entry}: Douyin URL without a video id")]
    NoVideoId {
        /// The entry, quoted and shortened.
        entry: String,
    },
    /// The entry's URLs are all on hosts other than Douyin's.
    #[error("{entry}: not a Douyin host")]
    NotDouyinHost {
        /// The entry, quoted and shortened.
        entry: String,
    },
    /// The entry names more than one video (or short link): which one was meant is unknown.
    #[error(
        "{entry}: names more than one video ({first} and {second}); give each as an entry of its own"
    )]
    SeveralVideos {
        /// The entry, quoted and shortened.
        entry: String,
        /// Two of the videos (ids or short links) it names.
        first: String,
        second: String,
    },
}

/// Quotes `entry` for an error message on one line, cut to [`QUOTE_CHARS`] characters.
fn quote(entry: &str) -> String {
    match entry.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{:?}…", &entry[..cut]),
        None => format!("{entry:?}"),
    }
}

impl InvalidInput {
    /// Turns a problem with an id given as a bare number into the error naming `entry`.
    fn from_id_problem(entry: &str, problem: IdProblem) -> Self {
        let entry = quote(entry);
        match problem {
            IdProblem::NotDigits => InvalidInput::NotRecognised { entry },
            IdProblem::Length(digits) => InvalidInput::IdLength { entry, digits },
            IdProblem::LeadingZero => InvalidInput::IdLeadingZero { entry },
        }
    }
}

/// Tells whether `host` is `douyin.com`, `iesdouyin.com` or a subdomain of either (not `evil-douyin.com`).
pub fn is_douyin_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    DOUYIN_DOMAINS.iter().any(|domain| {
        host == *domain
            || host.strip_suffix(domain).is_some_and(|prefix| {
                prefix.len() > 1
                    && prefix.ends_with('.')
                    && !prefix.starts_with('.')
                    && !prefix.contains("..")
            })
    })
}

/// Why a single URL gave no watch input.
enum UrlRejection {
    NotDouyin,
    NoVideoId,
    BadId(IdProblem),
}

/// Classifies one URL: a video URL with its id, a short link, or why it is neither.
///
/// A video path or `modal_id` wins over the short-link host, so `v.douyin.com/share/video/ID` is an id.
fn classify_url(url: &Url) -> Result<WatchInput, UrlRejection> {
    let host = match url.domain() {
        Some(host) if matches!(url.scheme(), "http" | "https") && is_douyin_host(host) => {
            host.trim_end_matches('.').to_ascii_lowercase()
        }
        _ => return Err(UrlRejection::NotDouyin),
    };
    let segments: Vec<&str> = url
        .path_segments()
        .map(|segments| segments.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let candidate = match segments.as_slice() {
        ["video" | "note", id, ..] | ["share", "video" | "note", id, ..] => Some((*id).to_owned()),
        _ => url
            .query_pairs()
            .find(|(key, _)| key == "modal_id")
            .map(|(_, value)| value.into_owned()),
    };
    match candidate.as_deref().map(check_id) {
        Some(Ok(id)) => Ok(WatchInput::Id(id)),
        Some(Err(IdProblem::NotDigits)) | None
            if host == SHORT_LINK_HOST && !segments.is_empty() =>
        {
            Ok(WatchInput::ShortLink(url.clone()))
        }
        Some(Err(IdProblem::NotDigits)) | None => Err(UrlRejection::NoVideoId),
        Some(Err(problem)) => Err(UrlRejection::BadId(problem)),
    }
}

/// A `,` or `;` running straight into another http(s) URL: where URLs were joined into one entry.
static JOINED_URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)([,;])(https?://)").unwrap());

/// Finds the http(s) URLs in an entry: the whole entry if it is one URL, else those inside share text.
fn urls_in(entry: &str) -> Vec<Url> {
    // URLs joined by a comma or semicolon ("URL,URL") are apart, not one URL with a comma in its
    // path: the joint becomes a space, which the scan below stops at.
    let entry = JOINED_URL.replace_all(entry, "$1 $2");
    let entry = entry.as_ref();
    // A whole entry that is one URL is taken as is, so characters the text scan stops at do not
    // cut it; only punctuation after it, as in a list ("URL,"), is not part of it.
    if !entry.contains(char::is_whitespace)
        && let Ok(url) = Url::parse(entry.trim_end_matches(TRAILING_PUNCTUATION))
        && matches!(url.scheme(), "http" | "https")
    {
        return vec![url];
    }
    URL_IN_TEXT
        .find_iter(entry)
        .filter_map(|found| Url::parse(found.as_str().trim_end_matches(TRAILING_PUNCTUATION)).ok())
        .collect()
}

/// Punctuation that ends a sentence or a list item after a URL, never the end of a video's URL.
const TRAILING_PUNCTUATION: [char; 9] = ['.', ',', ';', ':', '!', '?', '\'', ')', ']'];

/// Digits from which a number beside a URL is taken for a video id (Douyin's have 19).
const LIKELY_ID_DIGITS: usize = 15;

/// Whether two short links are the same link written differently: scheme, host case, a trailing
/// slash and the query (`?from=copy`) do not change where they lead.
fn same_short_link(a: &Url, b: &Url) -> bool {
    let code = |url: &Url| {
        (
            url.host_str().map(str::to_ascii_lowercase),
            url.path().trim_end_matches('/').to_owned(),
        )
    };
    code(a) == code(b)
}

/// Works out what one watch-list entry is: a bare id, a Douyin video URL, a short link, or share text holding one.
pub fn parse_watch_input(entry: &str) -> Result<WatchInput, InvalidInput> {
    let trimmed = entry.trim();
    if trimmed.is_empty() {
        return Err(InvalidInput::Empty {
            entry: quote(entry),
        });
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return check_id(trimmed)
            .map(WatchInput::Id)
            .map_err(|problem| InvalidInput::from_id_problem(entry, problem));
    }
    let urls = urls_in(trimmed);
    let mut first_douyin_problem = None;
    // A video's own URL wins over short links beside it (most likely the same video's); two
    // different videos, or two different short links, leave the entry ambiguous.
    let several =
        |first: &dyn fmt::Display, second: &dyn fmt::Display| InvalidInput::SeveralVideos {
            entry: quote(entry),
            first: first.to_string(),
            second: second.to_string(),
        };
    let (mut id, mut short_link): (Option<VideoId>, Option<Url>) = (None, None);
    let mut second_short_link = None;
    // A bare id beside a URL (a line "ID URL" of a list) names a video too. Only numbers as
    // long as Douyin's ids count: share text may hold other numbers (a phone number).
    let bare_ids = trimmed
        .split_whitespace()
        .filter(|token| !urls.is_empty() && token.len() >= LIKELY_ID_DIGITS)
        .filter_map(|token| check_id(token).ok());
    let found = urls
        .iter()
        .map(classify_url)
        .chain(bare_ids.map(|bare| Ok(WatchInput::Id(bare))));
    for classified in found {
        match classified {
            Ok(WatchInput::Id(found)) => match &id {
                None => id = Some(found),
                Some(first) if *first == found => {}
                Some(first) => return Err(several(first, &found)),
            },
            Ok(WatchInput::ShortLink(found)) => match &short_link {
                None => short_link = Some(found),
                Some(first) if same_short_link(first, &found) => {}
                Some(_) => {
                    second_short_link.get_or_insert(found);
                }
            },
            Err(UrlRejection::NotDouyin) => {}
            Err(problem) => {
                first_douyin_problem.get_or_insert(problem);
            }
        }
    }
    if let Some(id) = id {
        return Ok(WatchInput::Id(id));
    }
    if let (Some(first), Some(second)) = (&short_link, &second_short_link) {
        return Err(several(first, second));
    }
    if let Some(link) = short_link {
        return Ok(WatchInput::ShortLink(link));
    }
    let entry = quote(entry);
    Err(match first_douyin_problem {
        Some(UrlRejection::BadId(IdProblem::Length(digits))) => {
            InvalidInput::IdLength { entry, digits }
        }
        Some(UrlRejection::BadId(IdProblem::LeadingZero)) => InvalidInput::IdLeadingZero { entry },
        Some(_) => InvalidInput::NoVideoId { entry },
        None if urls.is_empty() => InvalidInput::NotRecognised { entry },
        None => InvalidInput::NotDouyinHost { entry },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "7118694749548072205";

    /// What a test expects `parse_watch_input` to give.
    #[derive(Debug)]
    enum Want {
        Id(&'static str),
        Short(&'static str),
        Empty,
        NotRecognised,
        IdLength(usize),
        LeadingZero,
        NoVideoId,
        NotDouyin,
        Several,
    }

    fn check(entry: &str, want: &Want) {
        let got = parse_watch_input(entry);
        let ok = match (want, &got) {
            (Want::Id(id), Ok(WatchInput::Id(got))) => got.as_str() == *id,
            (Want::Short(url), Ok(WatchInput::ShortLink(got))) => got.as_str() == *url,
            (Want::Empty, Err(InvalidInput::Empty { .. }))
            | (Want::NotRecognised, Err(InvalidInput::NotRecognised { .. }))
            | (Want::LeadingZero, Err(InvalidInput::IdLeadingZero { .. }))
            | (Want::NoVideoId, Err(InvalidInput::NoVideoId { .. }))
            | (Want::NotDouyin, Err(InvalidInput::NotDouyinHost { .. }))
            | (Want::Several, Err(InvalidInput::SeveralVideos { .. })) => true,
            (Want::IdLength(n), Err(InvalidInput::IdLength { digits, .. })) => digits == n,
            _ => false,
        };
        assert!(ok, "entry {entry:?}: wanted {want:?}, got {got:?}");
    }

    #[test]
    fn watch_inputs() {
        let cases: &[(&str, Want)] = &[
            // Bare ids.
            ("7118694749548072205", Want::Id(ID)),
            ("  7118694749548072205\n", Want::Id(ID)),
            ("12345678", Want::Id("12345678")),
            (
                "123456789012345678901234",
                Want::Id("123456789012345678901234"),
            ),
            ("1234567", Want::IdLength(7)),
            ("1234567890123456789012345", Want::IdLength(25)),
            ("0118694749548072205", Want::LeadingZero),
            ("", Want::Empty),
            ("   \t\n", Want::Empty),
            ("-7118694749548072205", Want::NotRecognised),
            ("+7118694749548072205", Want::NotRecognised),
            ("71186947495480722O5", Want::NotRecognised),
            ("7118694749548072205abc", Want::NotRecognised),
            ("abc", Want::NotRecognised),
            (
                "7118694749548072205 7118694749548072206",
                Want::NotRecognised,
            ),
            (
                "７１１８６９４７４９５４８０７２２０５",
                Want::NotRecognised,
            ),
            (
                "www.douyin.com/video/7118694749548072205",
                Want::NotRecognised,
            ),
            (
                "ftp://www.douyin.com/video/7118694749548072205",
                Want::NotRecognised,
            ),
            // Video pages.
            (
                "https://www.douyin.com/video/7118694749548072205",
                Want::Id(ID),
            ),
            (
                "http://www.douyin.com/video/7118694749548072205",
                Want::Id(ID),
            ),
            ("https://douyin.com/video/7118694749548072205", Want::Id(ID)),
            (
                "https://www.douyin.com/video/7118694749548072205/",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/video/7118694749548072205?previous_page=app_code_link#top",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/video/7118694749548072205#comments",
                Want::Id(ID),
            ),
            (
                "HTTPS://WWW.DOUYIN.COM/video/7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com./video/7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com:443/video/7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://m.douyin.com/video/7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/note/7118694749548072205",
                Want::Id(ID),
            ),
            ("https://www.douyin.com/video/abc", Want::NoVideoId),
            ("https://www.douyin.com/video/", Want::NoVideoId),
            ("https://www.douyin.com/video/123", Want::IdLength(3)),
            (
                "https://www.douyin.com/video/0118694749548072205",
                Want::LeadingZero,
            ),
            // Share pages.
            (
                "https://www.iesdouyin.com/share/video/7118694749548072205/?region=&mid=7118694851976284941&u_code=0",
                Want::Id(ID),
            ),
            (
                "https://www.iesdouyin.com/share/video/7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://iesdouyin.com/share/video/7118694749548072205/extra/path",
                Want::Id(ID),
            ),
            (
                "https://www.iesdouyin.com/share/note/7118694749548072205/",
                Want::Id(ID),
            ),
            (
                "https://www.iesdouyin.com/share/user/7118694749548072205",
                Want::NoVideoId,
            ),
            // modal_id on any Douyin page.
            (
                "https://www.douyin.com/user/MS4wLjABAAAAxyz?modal_id=7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/discover?modal_id=7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/?a=1&modal_id=7118694749548072205&b=2",
                Want::Id(ID),
            ),
            ("https://www.douyin.com/discover?modal_id=", Want::NoVideoId),
            (
                "https://www.douyin.com/discover?modal_id=x1",
                Want::NoVideoId,
            ),
            ("https://www.douyin.com/user/x", Want::NoVideoId),
            (
                "https://www.douyin.com/user/7118694749548072205",
                Want::NoVideoId,
            ),
            ("https://www.douyin.com/", Want::NoVideoId),
            // Short links.
            (
                "https://v.douyin.com/iRNBho6u/",
                Want::Short("https://v.douyin.com/iRNBho6u/"),
            ),
            (
                "https://v.douyin.com/iRNBho6u",
                Want::Short("https://v.douyin.com/iRNBho6u"),
            ),
            (
                "http://v.douyin.com:8080/abc/",
                Want::Short("http://v.douyin.com:8080/abc/"),
            ),
            ("https://v.douyin.com/", Want::NoVideoId),
            (
                "https://v.douyin.com/share/video/7118694749548072205/",
                Want::Id(ID),
            ),
            ("https://v.douyin.com/video/12/", Want::IdLength(2)),
            // Share text.
            (
                "7.43 复制打开抖音，看看【喵喵喵喵咪的作品】#好看的小姐姐 #这谁顶得住啊 https://v.douyin.com/iRNBho6u/ a@G.vs 01/12 Kjc:/",
                Want::Short("https://v.douyin.com/iRNBho6u/"),
            ),
            (
                "看看这个 https://www.douyin.com/video/7118694749548072205 很好看",
                Want::Id(ID),
            ),
            (
                "看看这个https://www.douyin.com/video/7118694749548072205，很好看",
                Want::Id(ID),
            ),
            (
                "see https://www.douyin.com/video/7118694749548072205.",
                Want::Id(ID),
            ),
            (
                "https://example.com/x https://www.douyin.com/video/7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/video/7118694749548072205 https://v.douyin.com/iRNBho6u/",
                Want::Id(ID),
            ),
            // Two videos in one entry: which was meant is unknown, so neither is added.
            (
                "7118694749548072206 https://www.douyin.com/video/7203810298745328956",
                Want::Several,
            ),
            (
                "7118694749548072205 https://www.douyin.com/video/7118694749548072205",
                Want::Id(ID),
            ),
            // A phone number in share text is no video id.
            (
                "call 13800138000 https://www.douyin.com/video/7118694749548072205",
                Want::Id(ID),
            ),
            // One short link written several ways is one link.
            (
                "https://v.douyin.com/iRNBho6u/ http://v.douyin.com/iRNBho6u?from=copy",
                Want::Short("https://v.douyin.com/iRNBho6u/"),
            ),
            (
                "看看 https://www.douyin.com/video/7118694749548072205 和 \
                 https://www.douyin.com/video/7203810298745328956",
                Want::Several,
            ),
            (
                "https://v.douyin.com/iRNBho6u/ https://v.douyin.com/iRNBho7v/",
                Want::Several,
            ),
            // URLs joined by a comma or semicolon are read apart.
            (
                "https://www.douyin.com/video/7118694749548072205,\
                 https://www.douyin.com/video/7203810298745328956",
                Want::Several,
            ),
            (
                "https://www.douyin.com/video/7118694749548072205;\
                 HTTPS://v.douyin.com/iRNBho6u/",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/video/7118694749548072205,\
                 https://www.douyin.com/video/7118694749548072205",
                Want::Id(ID),
            ),
            (
                "https://v.douyin.com/iRNBho6u/,https://v.douyin.com/iRNBho7v/",
                Want::Several,
            ),
            // Punctuation after a whole-entry URL, as in a list, is not part of it.
            (
                "https://www.douyin.com/video/7118694749548072205,",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/video/7118694749548072205/.",
                Want::Id(ID),
            ),
            (
                "https://v.douyin.com/iRNBho6u/;",
                Want::Short("https://v.douyin.com/iRNBho6u/"),
            ),
            // A URL inside another's query is not a joint.
            (
                "https://www.douyin.com/video/7118694749548072205?from=https://example.com/x",
                Want::Id(ID),
            ),
            (
                "https://www.douyin.com/video/7118694749548072205 \
                 https://www.iesdouyin.com/share/video/7118694749548072205/",
                Want::Id(ID),
            ),
            (
                "看看 https://www.douyin.com/user/x 和 https://v.douyin.com/abc/",
                Want::Short("https://v.douyin.com/abc/"),
            ),
            ("看看 https://www.douyin.com/user/x", Want::NoVideoId),
            (
                "看看 https://example.com/video/7118694749548072205",
                Want::NotDouyin,
            ),
            ("看看这个视频吧", Want::NotRecognised),
            // Foreign hosts.
            ("https://example.com/video/1", Want::NotDouyin),
            (
                "https://evil-douyin.com/video/7118694749548072205",
                Want::NotDouyin,
            ),
            (
                "https://douyin.com.evil.net/video/7118694749548072205",
                Want::NotDouyin,
            ),
            (
                "https://notiesdouyin.com/share/video/7118694749548072205",
                Want::NotDouyin,
            ),
            (
                "https://127.0.0.1/video/7118694749548072205",
                Want::NotDouyin,
            ),
            (
                "https://www.douyin.com@evil.net/video/7118694749548072205",
                Want::NotDouyin,
            ),
        ];
        for (entry, want) in cases {
            check(entry, want);
        }
    }

    #[test]
    fn douyin_hosts() {
        let cases: &[(&str, bool)] = &[
            ("douyin.com", true),
            ("www.douyin.com", true),
            ("v.douyin.com", true),
            ("a.b.douyin.com", true),
            ("iesdouyin.com", true),
            ("www.iesdouyin.com", true),
            ("WWW.DouYin.COM", true),
            ("www.douyin.com.", true),
            ("evil-douyin.com", false),
            ("evildouyin.com", false),
            ("douyin.com.evil.net", false),
            ("douyin.co", false),
            (".douyin.com", false),
            ("a..douyin.com", false),
            ("", false),
            ("com", false),
        ];
        for (host, want) in cases {
            assert_eq!(is_douyin_host(host), *want, "host {host:?}");
        }
    }

    #[test]
    fn error_messages() {
        let cases: &[(&str, &str)] = &[
            ("abc", r#""abc": not a video id or Douyin video URL"#),
            (
                "https://www.douyin.com/user/x",
                r#""https://www.douyin.com/user/x": Douyin URL without a video id"#,
            ),
            (
                "https://example.com/video/1",
                r#""https://example.com/video/1": not a Douyin host"#,
            ),
            (
                "  ",
                r#""  ": empty entry, expected a video id or Douyin video URL"#,
            ),
            (
                "123",
                r#""123": a video id has 8 to 24 digits, this one has 3"#,
            ),
            ("01234567", r#""01234567": a video id never starts with 0"#),
            ("a\nb", r#""a\nb": not a video id or Douyin video URL"#),
        ];
        for (entry, want) in cases {
            let got = parse_watch_input(entry)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert_eq!(got, *want, "entry {entry:?}");
        }
        let long = "x".repeat(500);
        let message = parse_watch_input(&long).unwrap_err().to_string();
        assert!(message.len() < 150, "long entry gave {message:?}");
        assert!(!message.contains('\n'), "long entry gave {message:?}");
    }

    #[test]
    fn video_id_api() {
        let cases: &[(&str, Option<&str>)] = &[
            (" 7118694749548072205 ", Some(ID)),
            ("12345678", Some("12345678")),
            ("1234567", None),
            ("0118694749548072205", None),
            ("https://www.douyin.com/video/7118694749548072205", None),
            ("", None),
        ];
        for (input, want) in cases {
            let parsed = VideoId::parse(input).ok();
            assert_eq!(
                parsed.as_ref().map(VideoId::as_str),
                *want,
                "input {input:?}"
            );
            let from_str = input.parse::<VideoId>().ok();
            assert_eq!(from_str, parsed, "input {input:?}");
            if let Some(id) = parsed {
                assert_eq!(id.to_string(), id.as_str(), "input {input:?}");
            }
        }
        let id = VideoId::parse(ID).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{ID}\""));
    }

    proptest! {
        #[test]
        fn parse_watch_input_never_panics(entry in any::<String>()) {
            let _ = parse_watch_input(&entry);
        }

        #[test]
        fn parse_watch_input_never_panics_on_url_like_text(
            entry in r"(https?://)?[a-z.]{0,12}douyin\.com[/?=&a-z0-9_%.:@\[\]]{0,40}( .{0,10})?",
        ) {
            let _ = parse_watch_input(&entry);
        }

        #[test]
        fn video_url_yields_its_id(id in "[1-9][0-9]{7,23}") {
            let entry = format!("https://www.douyin.com/video/{id}?x=1");
            let got = parse_watch_input(&entry);
            prop_assert!(
                matches!(&got, Ok(WatchInput::Id(got)) if got.as_str() == id),
                "entry {entry:?} gave {got:?}"
            );
        }
    }
}
