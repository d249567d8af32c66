//! A video's metadata in normalized form, its content hash, and which fields changed between
//! two versions. Normalized URLs are comparison keys, not fetchable addresses: shard hosts are
//! canonicalized and signatures dropped, so the real URLs live only in the stored raw item.

use url::Url;

use crate::response::Item;

/// The content fields in column order, as named in the `snapshots` table.
pub const FIELD_NAMES: [&str; 15] = [
    "title",
    "nick",
    "signature",
    "detail_url",
    "item_type",
    "author_uid",
    "short_id",
    "video_url",
    "video_url_raw",
    "cover_url",
    "music_title",
    "music_nick",
    "music_url",
    "music_cover_url",
    "item_imgs",
];

/// Query parameters dropped by [`normalize_url`] (compared ignoring ASCII case): expiry and
/// signatures, the sharer's device and session, share-context and tracking tags.
const VOLATILE_PARAMS: [&str; 22] = [
    "x-expires",
    "x-signature",
    "a_bogus",
    "x-bogus",
    "msToken",
    "_signature",
    "biz_sign",
    "l",
    "from",
    "from_ssr",
    "did",
    "iid",
    "mid",
    "u_code",
    "with_sec_did",
    "region",
    "titleType",
    "s",
    "se",
    "sc",
    "ts",
    "timestamp",
];

/// Query parameter prefixes dropped by [`normalize_url`] (compared ignoring ASCII case).
const VOLATILE_PREFIXES: [&str; 3] = ["x-orig-", "share_", "utm_"];

/// Media CDN domains whose hosts are numbered shards (`p3-sign.douyinpic.com`, `p26-sign.douyinpic.com`).
const SHARD_DOMAINS: [&str; 7] = [
    "douyinpic.com",
    "douyinstatic.com",
    "douyinvod.com",
    "zjcdn.com",
    "snssdk.com",
    "byteimg.com",
    "pstatp.com",
];

/// The start of every hashed encoding, naming it so that a future encoding cannot collide.
const HASH_DOMAIN: &[u8] = b"douyin-watch snapshot content v1\0";

/// A video's metadata in the normalized form that versions are compared by; field names match the `snapshots` columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// Video title, trimmed.
    pub title: Option<String>,
    /// Author's nickname, trimmed.
    pub nick: Option<String>,
    /// Author's profile signature, trimmed.
    pub signature: Option<String>,
    /// Share page URL, normalized.
    pub detail_url: Option<String>,
    /// Kind of post, such as "video".
    pub item_type: Option<String>,
    /// Author's user id (the item's `uid`).
    pub author_uid: Option<String>,
    /// Author's short id.
    pub short_id: Option<String>,
    /// Watermarked play URL, normalized.
    pub video_url: Option<String>,
    /// Play URL without watermark, normalized.
    pub video_url_raw: Option<String>,
    /// Cover image URL, normalized.
    pub cover_url: Option<String>,
    /// Music title, trimmed.
    pub music_title: Option<String>,
    /// Music author's nickname, trimmed.
    pub music_nick: Option<String>,
    /// Music file URL, normalized.
    pub music_url: Option<String>,
    /// Music cover image URL, normalized.
    pub music_cover_url: Option<String>,
    /// Image URLs, normalized, in the item's order.
    pub item_imgs: Vec<String>,
}

/// One field's value, borrowed, for hashing and comparing in [`FIELD_NAMES`] order.
#[derive(PartialEq)]
enum Field<'a> {
    /// A text field.
    Text(Option<&'a str>),
    /// A list field.
    List(&'a [String]),
}

impl Content {
    /// Normalizes an item: text fields trimmed, URL fields through [`normalize_url`], blanks as None.
    pub fn from_item(item: &Item) -> Content {
        Content {
            title: text(&item.title),
            nick: text(&item.nick),
            signature: text(&item.signature),
            detail_url: link(&item.detail_url),
            item_type: text(&item.item_type),
            author_uid: text(&item.uid),
            short_id: text(&item.short_id),
            video_url: link(&item.video_url),
            video_url_raw: link(&item.video_url_raw),
            cover_url: link(&item.cover_url),
            music_title: text(&item.music_title),
            music_nick: text(&item.music_nick),
            music_url: link(&item.music_url),
            music_cover_url: link(&item.music_cover_url),
            item_imgs: item
                .item_imgs
                .iter()
                .map(|url| normalize_url(url))
                .filter(|url| !url.is_empty())
                .collect(),
        }
    }

    /// Lowercase hex blake3 of an unambiguous length-prefixed encoding of every field in order.
    pub fn hash(&self) -> String {
        let mut encoded = Vec::with_capacity(1024);
        encoded.extend_from_slice(HASH_DOMAIN);
        for field in self.fields() {
            match field {
                Field::Text(None) => encoded.push(0),
                Field::Text(Some(value)) => {
                    encoded.push(1);
                    encode_str(&mut encoded, value);
                }
                Field::List(values) => {
                    encoded.push(2);
                    encoded.extend_from_slice(&(values.len() as u64).to_le_bytes());
                    for value in values {
                        encode_str(&mut encoded, value);
                    }
                }
            }
        }
        blake3::hash(&encoded).to_hex().to_string()
    }

    /// Names of the fields that differ from `previous`, in [`FIELD_NAMES`] order.
    pub fn changed_fields(&self, previous: &Content) -> Vec<&'static str> {
        FIELD_NAMES
            .into_iter()
            .zip(self.fields().into_iter().zip(previous.fields()))
            .filter(|(_, (now, before))| now != before)
            .map(|(name, _)| name)
            .collect()
    }

    /// Every field, in [`FIELD_NAMES`] order.
    fn fields(&self) -> [Field<'_>; FIELD_NAMES.len()] {
        [
            Field::Text(self.title.as_deref()),
            Field::Text(self.nick.as_deref()),
            Field::Text(self.signature.as_deref()),
            Field::Text(self.detail_url.as_deref()),
            Field::Text(self.item_type.as_deref()),
            Field::Text(self.author_uid.as_deref()),
            Field::Text(self.short_id.as_deref()),
            Field::Text(self.video_url.as_deref()),
            Field::Text(self.video_url_raw.as_deref()),
            Field::Text(self.cover_url.as_deref()),
            Field::Text(self.music_title.as_deref()),
            Field::Text(self.music_nick.as_deref()),
            Field::Text(self.music_url.as_deref()),
            Field::Text(self.music_cover_url.as_deref()),
            Field::List(&self.item_imgs),
        ]
    }
}

/// Appends a length-prefixed string to `encoded`.
fn encode_str(encoded: &mut Vec<u8>, value: &str) {
    encoded.extend_from_slice(&(value.len() as u64).to_le_bytes());
    encoded.extend_from_slice(value.as_bytes());
}

/// A text field trimmed, None when blank.
fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A URL field normalized, None when blank.
fn link(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(normalize_url)
        .filter(|v| !v.is_empty())
}

/// Strips the volatile parts of an http(s) URL: shard digits of CDN hosts (`p26-sign.douyinpic.com` → `p-sign.douyinpic.com`), signature, expiry, device and tracking parameters, and an empty `?` or `#`; other input is only trimmed.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    match url.strip_prefix("//") {
        Some(rest) => normalize_absolute(&format!("https://{rest}"))
            .and_then(|n| n.strip_prefix("https:").map(str::to_owned)),
        None => normalize_absolute(url),
    }
    .unwrap_or_else(|| url.to_owned())
}

/// [`normalize_url`] for an absolute URL; None when it does not parse or is not http(s).
///
/// Most URLs in answers are already in the exact form `url::Url` would write them; those are
/// normalized by slicing the text ([`CanonicalUrl`]), which gives the same result as parsing
/// (a property test checks it) at a tenth of the cost: parsing (IDNA included) was a sixth of
/// the collector's instructions per fetch. Anything else goes through the parser.
fn normalize_absolute(text: &str) -> Option<String> {
    match CanonicalUrl::split(text) {
        Some(url) => Some(url.normalized()),
        None => normalize_parsed(text),
    }
}

/// [`normalize_absolute`] through `url::Url`, for any input.
fn normalize_parsed(text: &str) -> Option<String> {
    let mut url = Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    if let Some((head, tail)) = url.host_str().and_then(unsharded_host) {
        url.set_host(Some(&format!("{head}{tail}"))).ok()?;
    }
    if let Some(kept) = url.query().and_then(kept_query) {
        url.set_query(Some(kept.as_str()).filter(|q| !q.is_empty()));
    }
    if url.fragment() == Some("") {
        url.set_fragment(None);
    }
    Some(url.into())
}

/// The query without its volatile parameters (and empty pairs), or None when nothing is dropped.
fn kept_query(query: &str) -> Option<String> {
    let mut kept = String::with_capacity(query.len());
    push_kept_pairs(&mut kept, query).then_some(kept)
}

/// Appends the pairs of `query` that [`kept_query`] keeps, joined by `&`, to `out`; true when
/// some pair was dropped.
fn push_kept_pairs(out: &mut String, query: &str) -> bool {
    let start = out.len();
    let mut dropped = false;
    // Split with memchr: `str::split` costs more per pair than the rest of the work on it.
    let mut rest = Some(query);
    while let Some(text) = rest {
        let (pair, after) = match memchr::memchr(b'&', text.as_bytes()) {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        rest = after;
        let name = memchr::memchr(b'=', pair.as_bytes()).map_or(pair, |at| &pair[..at]);
        if pair.is_empty() || is_volatile(name) {
            dropped = true;
        } else {
            if out.len() > start {
                out.push('&');
            }
            out.push_str(pair);
        }
    }
    dropped
}

/// [`BYTE_CLASSES`] bit: a byte of a plain host (lowercase ASCII letters, digits, `-`, `.`).
const HOST_BYTE: u8 = 1;
/// [`BYTE_CLASSES`] bit: a byte the URL standard never escapes in a path.
const PATH_BYTE: u8 = 2;
/// [`BYTE_CLASSES`] bit: a byte the URL standard leaves as is in a query.
const QUERY_BYTE: u8 = 4;

/// The plain-form classes of every byte, looked up once per byte: the checks of
/// [`CanonicalUrl`] run over every byte of every URL in every answer.
static BYTE_CLASSES: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut classes = [0; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.') {
            class |= HOST_BYTE;
        }
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
            )
        {
            class |= PATH_BYTE;
        }
        if b.is_ascii_graphic() && !matches!(b, b'"' | b'#' | b'<' | b'>' | b'\'') {
            class |= QUERY_BYTE;
        }
        classes[i] = class;
        i += 1;
    }
    classes
}

/// Whether every byte of `bytes` is in `class` (a [`BYTE_CLASSES`] bit).
fn all_in_class(bytes: &[u8], class: u8) -> bool {
    // Without a branch per byte (URLs that fail are rare), so that the loop unrolls.
    bytes
        .iter()
        .fold(class, |classes, &b| classes & BYTE_CLASSES[usize::from(b)])
        != 0
}

/// An http(s) URL whose text is already what `url::Url` would serialize it as, split into parts.
///
/// Only plain forms qualify, so that no rule of the URL standard can apply: a lowercase scheme and
/// host of ASCII letters, digits, dots and hyphens (no IDNA `xn--` labels, no IPv4-like last label,
/// no port or user), a path of characters that are never escaped and without `.` or `..` segments
/// or `%`, a query of printable ASCII that the standard leaves as is, and no fragment.
struct CanonicalUrl<'a> {
    /// `http://` or `https://`.
    scheme: &'a str,
    host: &'a str,
    path: &'a str,
    /// The text after `?`, when there is a `?`.
    query: Option<&'a str>,
}

impl<'a> CanonicalUrl<'a> {
    fn split(text: &'a str) -> Option<CanonicalUrl<'a>> {
        let rest_at = if text.starts_with("https://") {
            8
        } else if text.starts_with("http://") {
            7
        } else {
            return None;
        };
        let (scheme, rest) = text.split_at(rest_at);
        let (host, rest) = rest.split_at(memchr::memchr(b'/', rest.as_bytes())?);
        let (path, query) = match memchr::memchr(b'?', rest.as_bytes()) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let url = CanonicalUrl {
            scheme,
            host,
            path,
            query,
        };
        (url.host_is_plain() && url.path_is_plain() && url.query_is_plain()).then_some(url)
    }

    fn host_is_plain(&self) -> bool {
        let host = self.host.as_bytes();
        if !all_in_class(host, HOST_BYTE) {
            return false;
        }
        let labels_ok = host.split(|&b| b == b'.').all(|label| {
            label.first().is_some_and(|&b| b != b'-')
                && label.last().is_some_and(|&b| b != b'-')
                && !label.starts_with(b"xn--")
        });
        // A last label starting with a digit could be read as an IPv4 number.
        let last_label_at = memchr::memrchr(b'.', host).map_or(0, |dot| dot + 1);
        labels_ok && host.get(last_label_at).is_some_and(u8::is_ascii_lowercase)
    }

    fn path_is_plain(&self) -> bool {
        let path = self.path.as_bytes();
        // A `.` or `..` segment: a dot right after a `/` (the path starts with one), followed by
        // the segment's end or by one more dot and the end.
        let is_dot_segment = |dot: usize| {
            path[dot - 1] == b'/'
                && matches!(
                    &path[dot + 1..],
                    [] | [b'/', ..] | [b'.'] | [b'.', b'/', ..]
                )
        };
        all_in_class(path, PATH_BYTE) && !memchr::memchr_iter(b'.', path).any(is_dot_segment)
    }

    fn query_is_plain(&self) -> bool {
        self.query
            .is_none_or(|query| all_in_class(query.as_bytes(), QUERY_BYTE))
    }

    /// [`normalize_parsed`]'s result, assembled from the parts.
    fn normalized(&self) -> String {
        let mut url = String::with_capacity(
            self.scheme.len()
                + self.host.len()
                + self.path.len()
                + 1
                + self.query.map_or(0, str::len),
        );
        url.push_str(self.scheme);
        match unsharded_host(self.host) {
            Some((head, tail)) => {
                url.push_str(head);
                url.push_str(tail);
            }
            None => url.push_str(self.host),
        }
        url.push_str(self.path);
        if let Some(query) = self.query {
            url.push('?');
            let before = url.len();
            push_kept_pairs(&mut url, query);
            // An empty query loses its `?`, as `url::Url::set_query` would have it.
            if url.len() == before {
                url.pop();
            }
        }
        url
    }
}

/// A CDN shard host without its shard number, or None if `host` is not one: the first label is
/// `<letters><digits>`, optionally followed by `-<anything>`, directly under a [`SHARD_DOMAINS`]
/// domain (`p26-sign.douyinpic.com` → `p-sign.douyinpic.com`, `p3.douyinpic.com` → `p.douyinpic.com`),
/// as the text before the shard number and the text after it.
fn unsharded_host(host: &str) -> Option<(&str, &str)> {
    let dot = memchr::memchr(b'.', host.as_bytes())?;
    let (label, domain) = (&host[..dot], &host[dot + 1..]);
    if !SHARD_DOMAINS.contains(&domain) {
        return None;
    }
    let letters = label.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = label[letters..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let suffix = &label[letters + digits..];
    (letters > 0 && digits > 0 && (suffix.is_empty() || suffix.starts_with('-')))
        .then(|| (&host[..letters], &host[letters + digits..]))
}

/// Whether a query parameter name is in the volatile list.
fn is_volatile(name: &str) -> bool {
    VOLATILE_PARAMS.iter().any(|v| v.eq_ignore_ascii_case(name))
        || VOLATILE_PREFIXES.iter().any(|prefix| {
            name.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::decode;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    const OK: &[u8] = include_bytes!("../tests/fixtures/item_get_video.ok.json");

    /// The item of the ok fixture.
    fn fixture_item() -> Item {
        decode(OK).unwrap().item.unwrap()
    }

    #[test]
    fn kept_query_drops_volatile_and_empty_pairs_and_says_when_nothing_was_dropped() {
        let cases = [
            ("a=1&b=2", None),
            ("a=1&&b=2", Some("a=1&b=2")),
            ("a=1&X-Expires=2&utm_source=x&b&l=9", Some("a=1&b")),
            ("x-signature=abc", Some("")),
            ("", Some("")),
            ("&", Some("")),
            ("=v&from", Some("=v")),
        ];
        for (query, kept) in cases {
            assert_eq!(kept_query(query).as_deref(), kept, "{query:?}");
        }
    }

    #[test]
    fn normalize_url_cases() {
        let cases = [
            // The fixture's URLs.
            (
                "https://www.iesdouyin.com/share/video/7118694749548072205/?region=&mid=7118694851976284941&u_code=0&did=MS4wLjABAAAANwkJuWIRFOzg5uCpDRpMj4OX-QryoDgn-yYlXQnRwQQ&iid=MS4wLjABAAAANwkJuWIRFOzg5uCpDRpMj4OX-QryoDgn-yYlXQnRwQQ&with_sec_did=1&titleType=title",
                "https://www.iesdouyin.com/share/video/7118694749548072205/",
            ),
            (
                "https://aweme.snssdk.com/aweme/v1/playwm/?video_id=v0200fg10000cb5atp3c77ubg4uvvnhg&ratio=720p&line=0",
                "https://aweme.snssdk.com/aweme/v1/playwm/?video_id=v0200fg10000cb5atp3c77ubg4uvvnhg&ratio=720p&line=0",
            ),
            (
                "https://p26-sign.douyinpic.com/tos-cn-p-0015/fd7cd149586445ffa92a54d0b0c505e9~c5_300x400.jpeg?x-expires=1665640800&x-signature=jK%2BWPYf9Mm0A1qaUdLTMxYEYEiQ%3D&from=3213915784_large&s=PackSourceEnum_DOUYIN_REFLOW&se=false&sc=cover&l=202209291425290102091581361D06B75C",
                "https://p-sign.douyinpic.com/tos-cn-p-0015/fd7cd149586445ffa92a54d0b0c505e9~c5_300x400.jpeg",
            ),
            (
                "https://sf3-cdn-tos.douyinstatic.com/obj/ies-music/7118694844603681549.mp3",
                "https://sf-cdn-tos.douyinstatic.com/obj/ies-music/7118694844603681549.mp3",
            ),
            (
                "https://p3.douyinpic.com/aweme/1080x1080/aweme-avatar/a.jpeg?from=116350172",
                "https://p.douyinpic.com/aweme/1080x1080/aweme-avatar/a.jpeg",
            ),
            // Shard hosts.
            (
                "https://p3-sign.douyinpic.com/a.jpeg",
                "https://p-sign.douyinpic.com/a.jpeg",
            ),
            (
                "https://p9.douyinpic.com/a.jpeg",
                "https://p.douyinpic.com/a.jpeg",
            ),
            (
                "https://sf6-cdn-tos.douyinstatic.com/a.mp3",
                "https://sf-cdn-tos.douyinstatic.com/a.mp3",
            ),
            (
                "https://v26-web.douyinvod.com/a/video/",
                "https://v-web.douyinvod.com/a/video/",
            ),
            (
                "https://v3-web.douyinvod.com/a/video/",
                "https://v-web.douyinvod.com/a/video/",
            ),
            (
                "https://v5-dy-o-abtest.zjcdn.com/a",
                "https://v-dy-o-abtest.zjcdn.com/a",
            ),
            (
                "https://api5-normal-c-lf.snssdk.com/a",
                "https://api-normal-c-lf.snssdk.com/a",
            ),
            (
                "https://p3-pc.byteimg.com/a.jpeg",
                "https://p-pc.byteimg.com/a.jpeg",
            ),
            (
                "https://p1.pstatp.com/a.jpeg",
                "https://p.pstatp.com/a.jpeg",
            ),
            (
                "https://P3-SIGN.DouyinPic.com/a.jpeg",
                "https://p-sign.douyinpic.com/a.jpeg",
            ),
            // Hosts that are not shards keep their digits.
            ("https://aweme.snssdk.com/a", "https://aweme.snssdk.com/a"),
            ("https://p3.example.com/a", "https://p3.example.com/a"),
            (
                "https://p3.douyinpic.com.example.com/a",
                "https://p3.douyinpic.com.example.com/a",
            ),
            (
                "https://a.p3.douyinpic.com/a",
                "https://a.p3.douyinpic.com/a",
            ),
            ("https://3p.douyinpic.com/a", "https://3p.douyinpic.com/a"),
            ("https://p3x.douyinpic.com/a", "https://p3x.douyinpic.com/a"),
            ("https://douyinpic.com/a", "https://douyinpic.com/a"),
            ("http://10.0.0.3:8080/a?from=1", "http://10.0.0.3:8080/a"),
            (
                "https://www.douyin.com/video/7118694749548072205",
                "https://www.douyin.com/video/7118694749548072205",
            ),
            // Volatile parameters go, meaningful ones stay in their order.
            (
                "https://example.com/a?b=2&ts=1&a=1&timestamp=9",
                "https://example.com/a?b=2&a=1",
            ),
            (
                "https://example.com/a?utm_source=x&share_sign=y&share_version=1&id=3",
                "https://example.com/a?id=3",
            ),
            (
                "https://example.com/a?x-orig-expires=1&x-orig-sign=2&line=0",
                "https://example.com/a?line=0",
            ),
            (
                "https://example.com/a?biz_sign=1&a_bogus=2&X-Bogus=3&msToken=4&_signature=5&from_ssr=1",
                "https://example.com/a",
            ),
            (
                "https://example.com/a?TITLETYPE=title&Region=CN&ratio=720p",
                "https://example.com/a?ratio=720p",
            ),
            (
                "https://example.com/a?sec_uid=MS4w&sign=1",
                "https://example.com/a?sec_uid=MS4w&sign=1",
            ),
            (
                "https://example.com/a?l&flag&&z=",
                "https://example.com/a?flag&z=",
            ),
            ("https://example.com/a?", "https://example.com/a"),
            ("https://example.com/a?x-expires=1", "https://example.com/a"),
            (
                "https://example.com/a?from=1&sc=2&se=3&s=4",
                "https://example.com/a",
            ),
            (
                "https://example.com/a?v=%2B1+2",
                "https://example.com/a?v=%2B1+2",
            ),
            // Fragments: an empty one goes, others stay.
            ("https://example.com/a?from=1#", "https://example.com/a"),
            (
                "https://example.com/a?from=1#top",
                "https://example.com/a#top",
            ),
            (
                "https://example.com/a#x?from=1",
                "https://example.com/a#x?from=1",
            ),
            // Scheme-relative URLs are normalized and stay scheme-relative.
            (
                "//p3.douyinpic.com/a.jpeg?from=1",
                "//p.douyinpic.com/a.jpeg",
            ),
            // Whitespace, unparseable and non-http input is only trimmed.
            ("  https://example.com/a?l=1 \n", "https://example.com/a"),
            ("", ""),
            ("   ", ""),
            ("not a url?from=1", "not a url?from=1"),
            (
                " http://exa mple.com/?from=1 ",
                "http://exa mple.com/?from=1",
            ),
            ("/relative/path?from=1", "/relative/path?from=1"),
            (
                "ftp://p3.douyinpic.com/a?from=1",
                "ftp://p3.douyinpic.com/a?from=1",
            ),
            ("data:image/png;base64,AAAA", "data:image/png;base64,AAAA"),
        ];
        let mut sliced = 0;
        for (input, expected) in cases {
            let normalized = normalize_url(input);
            assert_eq!(normalized, expected, "{input}");
            assert_eq!(
                normalize_url(&normalized),
                normalized,
                "idempotent for {input}"
            );
            if let Some(url) = CanonicalUrl::split(input.trim()) {
                assert_eq!(
                    Some(url.normalized()),
                    normalize_parsed(input.trim()),
                    "{input}"
                );
                sliced += 1;
            }
        }
        // The fixture's URLs and most of the cases above take the sliced path.
        assert!(sliced >= 20, "{sliced} cases sliced");
    }

    #[test]
    fn the_fixture_urls_are_sliced_not_parsed() {
        let item = fixture_item();
        let urls = [
            &item.detail_url,
            &item.video_url,
            &item.cover_url,
            &item.music_url,
        ];
        for url in urls.into_iter().flatten() {
            assert!(CanonicalUrl::split(url.trim()).is_some(), "{url}");
        }
    }

    #[test]
    fn from_item_normalizes_the_fixture() {
        let content = Content::from_item(&fixture_item());
        let expected = Content {
            title: Some("#好看的小姐姐 #这谁顶得住啊 #身材很哇塞 #美女 #大长腿".into()),
            nick: Some("喵喵喵喵咪".into()),
            signature: Some(
                "❤️感谢官方提供的网络平台\n❤️素材来源于网络\n❤️感谢每一位粉丝的支持你我共同努力"
                    .into(),
            ),
            detail_url: Some("https://www.iesdouyin.com/share/video/7118694749548072205/".into()),
            item_type: Some("video".into()),
            author_uid: Some("2362203779104899".into()),
            short_id: Some("65143561044".into()),
            video_url: Some("https://aweme.snssdk.com/aweme/v1/playwm/?video_id=v0200fg10000cb5atp3c77ubg4uvvnhg&ratio=720p&line=0".into()),
            video_url_raw: Some("https://aweme.snssdk.com/aweme/v1/play/?video_id=v0200fg10000cb5atp3c77ubg4uvvnhg&ratio=720p&line=0".into()),
            cover_url: Some("https://p-sign.douyinpic.com/tos-cn-p-0015/fd7cd149586445ffa92a54d0b0c505e9~c5_300x400.jpeg".into()),
            music_title: Some("@喵喵喵喵咪创作的原声一喵喵喵喵咪(原声中的歌曲:Anzap - Jessie Diamond Dj Remix-Zunda Project)".into()),
            music_nick: Some("喵喵喵喵咪".into()),
            music_url: Some("https://sf-cdn-tos.douyinstatic.com/obj/ies-music/7118694844603681549.mp3".into()),
            music_cover_url: Some("https://p.douyinpic.com/aweme/1080x1080/aweme-avatar/tos-cn-avt-0015_bd0af63490a2eac04fb4c2cd54c03d1e.jpeg".into()),
            item_imgs: Vec::new(),
        };
        assert_eq!(content, expected);
    }

    #[test]
    fn from_item_trims_text_and_drops_blanks() {
        let item = Item {
            title: Some("  t \n".into()),
            nick: Some("   ".into()),
            uid: Some(" 42 ".into()),
            detail_url: Some(" ".into()),
            item_imgs: vec![" https://p3.douyinpic.com/a.jpeg?l=1 ".into(), "  ".into()],
            ..Item::default()
        };
        let expected = Content {
            title: Some("t".into()),
            author_uid: Some("42".into()),
            item_imgs: vec!["https://p.douyinpic.com/a.jpeg".into()],
            ..Content::default()
        };
        assert_eq!(Content::from_item(&item), expected);
    }

    #[test]
    fn volatile_cover_url_changes_hash_the_same() {
        let item = fixture_item();
        let mut changed = item.clone();
        changed.cover_url = Some("https://p3-sign.douyinpic.com/tos-cn-p-0015/fd7cd149586445ffa92a54d0b0c505e9~c5_300x400.jpeg?x-expires=1700000000&x-signature=AAAA%3D&from=3213915784_large&s=PackSourceEnum_DOUYIN_REFLOW&se=false&sc=cover&l=20231114000000010209158136FFFFFF".into());
        changed.music_cover_url = Some("https://p9.douyinpic.com/aweme/1080x1080/aweme-avatar/tos-cn-avt-0015_bd0af63490a2eac04fb4c2cd54c03d1e.jpeg?from=999".into());
        changed.music_url = Some(
            "https://sf6-cdn-tos.douyinstatic.com/obj/ies-music/7118694844603681549.mp3".into(),
        );
        let (before, after) = (Content::from_item(&item), Content::from_item(&changed));
        assert_eq!(after.changed_fields(&before), Vec::<&str>::new());
        assert_eq!(after.hash(), before.hash());
    }

    #[test]
    fn title_change_hashes_differently_and_is_named() {
        let item = fixture_item();
        let mut changed = item.clone();
        changed.title = Some("新标题".into());
        let (before, after) = (Content::from_item(&item), Content::from_item(&changed));
        assert_ne!(after.hash(), before.hash());
        assert_eq!(after.changed_fields(&before), ["title"]);
    }

    #[test]
    fn blank_and_missing_are_the_same() {
        let blank = Item {
            title: Some(String::new()),
            cover_url: Some("  ".into()),
            ..Item::default()
        };
        let (blank, missing) = (
            Content::from_item(&blank),
            Content::from_item(&Item::default()),
        );
        assert_eq!(blank, missing);
        assert_eq!(blank.hash(), missing.hash());
    }

    /// Stored versions are compared by this hash: an upgrade that hashed the same content
    /// differently would make a new version of every watched video on its first pass.
    #[test]
    fn the_fixture_hashes_as_it_always_has() {
        let mut with_images = Content::from_item(&fixture_item());
        with_images.item_imgs = vec!["https://p.douyinpic.com/a.jpeg".into(), String::new()];
        assert_eq!(
            (
                Content::from_item(&fixture_item()).hash(),
                with_images.hash()
            ),
            (GOLDEN.to_owned(), GOLDEN_WITH_IMAGES.to_owned())
        );
    }
    /// The hashes of the two contents above, as every release so far has stored them.
    const GOLDEN: &str = "58778e3de73079eedd0eb7aa3cb18559eba40aee30199536e8f3823dbdab838d";
    const GOLDEN_WITH_IMAGES: &str =
        "bf992f8889b38ca3c9f2e64da9620191fa009a3e9409aa0b4a3a575b48632e14";

    #[test]
    fn hash_is_lowercase_hex_blake3() {
        let hash = Content::default().hash();
        assert_eq!(hash.len(), 64, "{hash}");
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{hash}"
        );
    }

    #[test]
    fn hash_distinguishes_shifted_boundaries() {
        let text = |value: &str| Some(value.to_owned());
        let pairs = [
            (
                Content {
                    title: text("ab"),
                    nick: text("c"),
                    ..Content::default()
                },
                Content {
                    title: text("a"),
                    nick: text("bc"),
                    ..Content::default()
                },
            ),
            (
                Content {
                    title: text("a"),
                    ..Content::default()
                },
                Content {
                    nick: text("a"),
                    ..Content::default()
                },
            ),
            (
                Content {
                    title: Some(String::new()),
                    ..Content::default()
                },
                Content::default(),
            ),
            (
                Content {
                    item_imgs: vec!["ab".into(), "c".into()],
                    ..Content::default()
                },
                Content {
                    item_imgs: vec!["a".into(), "bc".into()],
                    ..Content::default()
                },
            ),
            (
                Content {
                    item_imgs: vec![String::new()],
                    ..Content::default()
                },
                Content::default(),
            ),
            (
                Content {
                    music_cover_url: text("x"),
                    ..Content::default()
                },
                Content {
                    item_imgs: vec!["x".into()],
                    ..Content::default()
                },
            ),
        ];
        for (one, other) in pairs {
            assert_ne!(one.hash(), other.hash(), "{one:?} vs {other:?}");
            assert!(
                !one.changed_fields(&other).is_empty(),
                "{one:?} vs {other:?}"
            );
        }
    }

    #[test]
    fn changed_fields_names_every_field_in_order() {
        let text = |value: &str| Some(value.to_owned());
        let full = Content {
            title: text("a"),
            nick: text("a"),
            signature: text("a"),
            detail_url: text("a"),
            item_type: text("a"),
            author_uid: text("a"),
            short_id: text("a"),
            video_url: text("a"),
            video_url_raw: text("a"),
            cover_url: text("a"),
            music_title: text("a"),
            music_nick: text("a"),
            music_url: text("a"),
            music_cover_url: text("a"),
            item_imgs: vec!["a".into()],
        };
        assert_eq!(full.changed_fields(&Content::default()), FIELD_NAMES);
        assert_eq!(Content::default().changed_fields(&full), FIELD_NAMES);
    }

    /// Arbitrary contents over a small alphabet, so that near-collisions are common.
    fn any_content() -> impl Strategy<Value = Content> {
        (
            prop::array::uniform14(prop::option::of("[ab]{0,3}")),
            prop::collection::vec("[ab]{0,3}", 0..3),
        )
            .prop_map(|(texts, item_imgs)| {
                let [
                    title,
                    nick,
                    signature,
                    detail_url,
                    item_type,
                    author_uid,
                    short_id,
                    video_url,
                    video_url_raw,
                    cover_url,
                    music_title,
                    music_nick,
                    music_url,
                    music_cover_url,
                ] = texts;
                Content {
                    title,
                    nick,
                    signature,
                    detail_url,
                    item_type,
                    author_uid,
                    short_id,
                    video_url,
                    video_url_raw,
                    cover_url,
                    music_title,
                    music_nick,
                    music_url,
                    music_cover_url,
                    item_imgs,
                }
            })
    }

    /// URL text made mostly of plain parts, with everything the URL standard rewrites mixed in:
    /// case, IDNA and numeric hosts, ports, users, escapes, dot segments, characters it
    /// percent-encodes, empty labels and queries, fragments.
    fn url_text() -> impl Strategy<Value = String> {
        let text = |s: &str| Just(s.to_owned());
        let scheme = prop_oneof![
            8 => text("https://"), 2 => text("http://"), 1 => text("HTTPS://"),
            1 => text("ftp://"), 1 => text("https:/"), 1 => text("https:///"),
        ];
        let user = prop_oneof![9 => text(""), 1 => text("u@")];
        let label = prop_oneof![
            12 => "[a-z]{1,3}[0-9]{0,2}(-[a-z]{1,3})?", 2 => text("douyinpic"), 2 => text("com"),
            1 => "[A-Z]{1,2}", 1 => "xn--[a-z0-9]{1,4}", 1 => "[0-9]{1,3}", 1 => "0x[0-9a-f]",
            1 => text("é"), 1 => "-[a-z]", 1 => "[a-z]-", 1 => text(""),
        ];
        let host = prop::collection::vec(label, 1..4).prop_map(|labels| labels.join("."));
        let port = prop_oneof![9 => text(""), 1 => ":[0-9]{1,4}"];
        let segment = prop_oneof![
            12 => "[a-zA-Z0-9_~!$&'()*+,;=:@.-]{0,5}", 1 => text("."), 1 => text(".."),
            1 => "%2[eE]", 1 => text("%41"), 1 => r#"[ \t"<>`{}^|é\\%]"#,
        ];
        let path = prop::collection::vec(segment, 1..4)
            .prop_map(|segments| segments.iter().map(|s| format!("/{s}")).collect::<String>());
        let pair = prop_oneof![
            8 => "[a-zA-Z_-]{1,6}(=[a-zA-Z0-9%./:?-]{0,4})?", 1 => text("from=1"),
            1 => text("x-expires=1"), 1 => "utm_[a-z]=x", 1 => text(""),
            1 => r##"[ "#<>'\\é^`{}|]"##,
        ];
        let query = prop_oneof![
            4 => text(""),
            6 => prop::collection::vec(pair, 0..4).prop_map(|pairs| format!("?{}", pairs.join("&"))),
        ];
        let fragment = prop_oneof![9 => text(""), 1 => "#[a-z]{0,2}"];
        (scheme, user, host, port, path, query, fragment)
            .prop_map(|(a, b, c, d, e, f, g)| [a, b, c, d, e, f, g].concat())
    }

    /// Enough of the generated URLs take the sliced path for the property to check it.
    #[test]
    fn one_generated_url_in_ten_or_more_is_sliced() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = url_text();
        let sliced = (0..1000)
            .filter(|_| {
                let url = strategy.new_tree(&mut runner).expect("a url").current();
                CanonicalUrl::split(&url).is_some()
            })
            .count();
        assert!(sliced >= 100, "{sliced} of 1000 sliced");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Wherever the sliced path applies, it gives what the parser gives.
        #[test]
        fn sliced_normalization_is_the_parsers(url in url_text()) {
            if let Some(sliced) = CanonicalUrl::split(&url) {
                prop_assert_eq!(Some(sliced.normalized()), normalize_parsed(&url));
            }
        }
    }

    proptest! {
        #[test]
        fn hash_is_deterministic_and_self_comparison_is_empty(content in any_content()) {
            prop_assert_eq!(content.hash(), content.clone().hash());
            prop_assert!(content.changed_fields(&content).is_empty());
        }

        /// The hash is blake3 of the encoding its documentation gives, spelled out here again
        /// (with fields long enough to cross blake3's 1 KiB chunks).
        #[test]
        fn hash_is_blake3_of_the_documented_encoding(
            content in any_content(),
            long_title in prop::option::of("[ab]{0,1500}"),
            long_image in "[ab]{1000,2100}",
        ) {
            let mut content = content;
            content.title = long_title;
            content.item_imgs.push(long_image);
            let mut encoded = HASH_DOMAIN.to_vec();
            let push_str = |encoded: &mut Vec<u8>, value: &str| {
                encoded.extend_from_slice(&(value.len() as u64).to_le_bytes());
                encoded.extend_from_slice(value.as_bytes());
            };
            for field in content.fields() {
                match field {
                    Field::Text(None) => encoded.push(0),
                    Field::Text(Some(value)) => {
                        encoded.push(1);
                        push_str(&mut encoded, value);
                    }
                    Field::List(values) => {
                        encoded.push(2);
                        encoded.extend_from_slice(&(values.len() as u64).to_le_bytes());
                        for value in values {
                            push_str(&mut encoded, value);
                        }
                    }
                }
            }
            prop_assert_eq!(content.hash(), blake3::hash(&encoded).to_hex().to_string());
        }

        #[test]
        fn hash_agrees_with_changed_fields(one in any_content(), other in any_content()) {
            prop_assert_eq!(one.hash() == other.hash(), one.changed_fields(&other).is_empty());
            prop_assert_eq!(one == other, one.changed_fields(&other).is_empty());
        }

        #[test]
        fn normalize_url_is_idempotent(
            url in concat!(
                r"(https?:)?//[a-z]{1,3}[0-9]{0,2}(-[a-z]{1,3})?\.(douyinpic|example)\.com",
                r"/[a-z/]{0,6}(\?[a-z_\-]{1,8}=[a-z0-9%]{0,3}(&[a-z_\-]{1,8}=[a-z0-9]{0,3}){0,3})?",
                r"(#[a-z]{0,2})?",
            ),
        ) {
            let once = normalize_url(&url);
            prop_assert_eq!(normalize_url(&once), once.clone());
        }
    }
}
