//! Decoding of one onebound `douyin/item_get_video` answer body into the envelope fields the
//! collector uses and the video item, tolerant of the API's loose typing: numbers where strings
//! belong and the reverse, empty containers meaning "nothing", and GBK-encoded error bodies.

use std::borrow::Cow;
use std::fmt;

use encoding_rs::{DecoderResult, GBK};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

/// How many characters of a body (or of an `item`) an error message quotes.
const EXCERPT_CHARS: usize = 200;

/// Bytes looked at by [`excerpt`] beyond four per wanted character, to absorb collapsed whitespace.
const EXCERPT_SLACK_BYTES: usize = 1024;

/// A decoded onebound answer: the envelope fields the collector uses, and the item if there was one.
#[derive(Debug)]
pub struct Answer {
    /// Status code such as "0000" or "2000", trimmed; numeric codes are left-padded to four digits.
    pub error_code: Option<String>,
    /// Short error name such as "item-not-found"; empty means none.
    pub error: Option<String>,
    /// Human-readable error reason, often Chinese; empty means none.
    pub reason: Option<String>,
    /// Quota information such as "today:39 max:10000".
    pub api_info: Option<String>,
    /// onebound's request id, for support tickets.
    pub request_id: Option<String>,
    /// Server clock as sent, such as "Beijing/2022-09-29 14:25:29".
    pub server_time: Option<String>,
    /// Server-side execution time in seconds.
    pub execution_time: Option<f64>,
    /// The video fields, when the answer carried a non-empty `item` object.
    pub item: Option<Item>,
    /// The `item` object exactly as received, for storage without re-serializing.
    pub raw_item: Option<RawItem>,
}

/// The JSON text of an answer's `item` object exactly as received.
///
/// Reading an answer in one pass does not tell where its item ends, and most answers repeat
/// content already stored, whose raw item is never needed. So when one pass read the answer,
/// this holds the answer's text, and the item is found in it only if [`RawItem::text`] is asked.
#[derive(Debug, Clone)]
pub struct RawItem(RawItemSource);

#[derive(Debug, Clone)]
enum RawItemSource {
    /// The item's own text.
    Item(Box<str>),
    /// The text of an answer [`decode`] accepted, with an object as its `item`.
    Answer(Box<str>),
}

impl RawItem {
    /// A raw item from the item's own JSON text.
    pub fn new(item_json: impl Into<Box<str>>) -> RawItem {
        RawItem(RawItemSource::Item(item_json.into()))
    }

    /// The item's JSON text. None only if an answer's text no longer reads as it did when it was
    /// decoded, which does not happen.
    pub fn text(&self) -> Option<&str> {
        match &self.0 {
            RawItemSource::Item(text) => Some(text),
            RawItemSource::Answer(answer) => top_level_item(answer).or_else(|| {
                serde_json::from_str::<RawItemOf<'_>>(answer)
                    .ok()?
                    .item
                    .map(RawValue::get)
            }),
        }
    }
}

/// The text of the top-level `item` value of `answer`, found by following only its strings and
/// nesting, or None where that cannot tell (a key written with an escape, `item` twice or
/// `null`, anything unexpected): then serde_json reads the answer again. The answer was decoded
/// as JSON already, so its structure is sound; reading it again through serde_json took 18,000
/// instructions per new version, the scan about a quarter less.
fn top_level_item(answer: &str) -> Option<&str> {
    let bytes = answer.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    let mut found = None;
    loop {
        at = skip_whitespace(bytes, at + 1);
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(bytes, at)?;
        let key = &bytes[at + 1..key_end - 1];
        if key.contains(&b'\\') {
            return None;
        }
        at = skip_whitespace(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_at = skip_whitespace(bytes, at + 1);
        let value_end = value_end(bytes, value_at)?;
        if key == b"item" {
            if found.is_some() {
                return None;
            }
            found = Some(&answer[value_at..value_end]);
        }
        at = skip_whitespace(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => {}
            Some(b'}') => return found.filter(|item| *item != "null"),
            _ => return None,
        }
    }
}

/// The first position from `at` that is not JSON whitespace.
fn skip_whitespace(bytes: &[u8], at: usize) -> usize {
    at + bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

/// The position after the string that starts (with its `"`) at `at`.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut from = at + 1;
    loop {
        let found = from + memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[found] == b'"' {
            return Some(found + 1);
        }
        // An escape: the byte after the backslash is never the string's end.
        from = found + 2;
    }
}

/// The position after the JSON value that starts at `at`.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => Some(
            at + bytes[at..]
                .iter()
                .take_while(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .count(),
        ),
    }
}

/// The `item` of an answer, captured; every other field passed over.
#[derive(Deserialize)]
struct RawItemOf<'a> {
    #[serde(borrow)]
    item: Option<&'a RawValue>,
}

/// The video fields of `item`, all optional because the API documents none as required.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Item {
    /// Video id (`num_iid`).
    pub num_iid: Option<String>,
    /// Video title.
    pub title: Option<String>,
    /// Kind of post (JSON key `type`), such as "video".
    pub item_type: Option<String>,
    /// Author's nickname.
    pub nick: Option<String>,
    /// Author's profile signature.
    pub signature: Option<String>,
    /// Share page URL.
    pub detail_url: Option<String>,
    /// Author's user id.
    pub uid: Option<String>,
    /// Author's short (Douyin) id.
    pub short_id: Option<String>,
    /// Watermarked play URL (`video.url`).
    pub video_url: Option<String>,
    /// Play URL without watermark (`video.url_raw`).
    pub video_url_raw: Option<String>,
    /// Cover image URL (`video.pic_url`).
    pub cover_url: Option<String>,
    /// Music title (`music.title`).
    pub music_title: Option<String>,
    /// Music author's nickname (`music.nick`).
    pub music_nick: Option<String>,
    /// Music file URL (`music.url`).
    pub music_url: Option<String>,
    /// Music cover image URL (`music.pic_url`).
    pub music_cover_url: Option<String>,
    /// Image URLs of `item_imgs`, in order, blank entries left out.
    pub item_imgs: Vec<String>,
}

/// Why an answer body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is empty or only whitespace.
    #[error("answer body is empty; the gateway sent nothing, retry later")]
    Empty,
    /// The body is not JSON, such as an HTML error page.
    #[error("answer is not JSON: \"{excerpt}\"")]
    NotJson {
        /// The start of the body.
        excerpt: String,
    },
    /// The body is the start of a JSON document that ends too early.
    #[error(
        "answer JSON is cut off after {len} bytes, the transfer was probably interrupted: \"{excerpt}\""
    )]
    Truncated {
        /// Length of the body in bytes.
        len: usize,
        /// The start of the body.
        excerpt: String,
    },
    /// The body is JSON, but not an object.
    #[error("answer is JSON {found} where onebound sends an object: \"{excerpt}\"")]
    NotAnObject {
        /// What the body is instead, such as "an array".
        found: &'static str,
        /// The start of the body.
        excerpt: String,
    },
    /// The `item` field holds something other than an object or an empty value.
    #[error(
        "answer's `item` is {found}, not an object; the API format may have changed: \"{excerpt}\""
    )]
    ItemNotAnObject {
        /// What `item` is instead, such as "a number".
        found: &'static str,
        /// The start of the `item` value.
        excerpt: String,
    },
    /// The body is a JSON object that breaks the envelope's rules, such as a repeated key.
    #[error("answer JSON does not fit onebound's format ({detail}): \"{excerpt}\"")]
    Malformed {
        /// What the JSON parser objected to.
        detail: String,
        /// The start of the body.
        excerpt: String,
    },
}

/// Decodes one answer body (UTF-8, or GBK as onebound's Chinese error bodies sometimes are).
pub fn decode(body: &[u8]) -> Result<Answer, DecodeError> {
    let text = text_of(body, true);
    let json = text.strip_prefix('\u{feff}').unwrap_or(&text);
    match json.trim_start_matches(JSON_WHITESPACE).as_bytes().first() {
        None => return Err(DecodeError::Empty),
        Some(b'{') => {}
        Some(&first) => {
            return Err(match serde_json::from_str::<IgnoredAny>(json) {
                Ok(_) => DecodeError::NotAnObject {
                    found: json_kind(first),
                    excerpt: excerpt(body, EXCERPT_CHARS),
                },
                Err(error) => parse_error(&error, body),
            });
        }
    }
    // One pass reads what onebound sends; anything one pass cannot read exactly (see
    // `read_item`), or that is not an answer at all, is read again the captured way, which also
    // words the errors.
    match one_pass_answer(json) {
        Some(answer) => Ok(answer),
        None => captured_answer(json, body),
    }
}

/// The answer `json` read in one pass, item included, or None where the captured reading must
/// decide.
fn one_pass_answer(json: &str) -> Option<Answer> {
    let (StreamedItem(item), fields) = serde_json::from_str::<Envelope<StreamedItem>>(json)
        .ok()?
        .split();
    let raw_item = item
        .as_ref()
        .map(|_| RawItem(RawItemSource::Answer(json.into())));
    Some(fields.into_answer(item, raw_item))
}

/// The answer `json` (the text of `body`) with its item captured as raw JSON and read from that.
fn captured_answer(json: &str, body: &[u8]) -> Result<Answer, DecodeError> {
    let (item, fields) = serde_json::from_str::<Envelope<Option<Box<RawValue>>>>(json)
        .map_err(|e| parse_error(&e, body))?
        .split();
    let (item, raw_item) = match item {
        None => (None, None),
        Some(raw) => match item_shape(&raw) {
            ItemShape::Nothing => (None, None),
            ItemShape::Other(found) => {
                return Err(DecodeError::ItemNotAnObject {
                    found,
                    excerpt: excerpt(raw.get().as_bytes(), EXCERPT_CHARS),
                });
            }
            ItemShape::Object => {
                let item = read_item(raw.get()).map_err(|e| parse_error(&e, body))?;
                (Some(item), Some(RawItem::new(Box::<str>::from(raw))))
            }
        },
    };
    Ok(fields.into_answer(item, raw_item))
}

/// Up to `max_chars` characters of a body for error messages: lossy UTF-8 (or GBK when it decodes cleanly as GBK), control characters replaced, whitespace collapsed.
pub fn excerpt(body: &[u8], max_chars: usize) -> String {
    let limit = max_chars
        .saturating_mul(4)
        .saturating_add(EXCERPT_SLACK_BYTES);
    match body.get(..limit) {
        Some(head) if head.len() < body.len() => one_line(&text_of(head, false), max_chars, true),
        _ => one_line(&text_of(body, true), max_chars, false),
    }
}

/// The whitespace JSON allows between tokens.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The text of `bytes`: UTF-8 if valid, else GBK if that decodes cleanly, else lossy UTF-8.
/// With `complete` false the bytes are a prefix, and a character cut off at the end is dropped.
fn text_of(bytes: &[u8], complete: bool) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(e) if !complete && e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()])
        }
        Err(_) => match gbk_text(bytes, complete) {
            Some(text) => Cow::Owned(text),
            None => String::from_utf8_lossy(bytes),
        },
    }
}

/// `bytes` decoded as GBK, or None if they are not clean GBK.
fn gbk_text(bytes: &[u8], complete: bool) -> Option<String> {
    let mut decoder = GBK.new_decoder_without_bom_handling();
    let capacity = decoder.max_utf8_buffer_length_without_replacement(bytes.len())?;
    let mut text = String::with_capacity(capacity);
    let (result, _) = decoder.decode_to_string_without_replacement(bytes, &mut text, complete);
    matches!(result, DecoderResult::InputEmpty).then_some(text)
}

/// `text` on one line of at most `max_chars` characters, ending in "…" when shortened
/// (or when `more` says the text is itself the start of something longer).
fn one_line(text: &str, max_chars: usize, more: bool) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    let mut shortened = more;
    for ch in text.chars() {
        if ch.is_whitespace() {
            space = count > 0;
            continue;
        }
        let ch = if ch.is_control() { '\u{fffd}' } else { ch };
        if count + usize::from(space) + 1 > max_chars {
            shortened = true;
            break;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        out.push(ch);
        count += 1;
    }
    if shortened && max_chars > 0 {
        while count >= max_chars {
            out.pop();
            count -= 1;
        }
        out.truncate(out.trim_end().len());
        out.push('…');
    }
    out
}

/// Maps a serde_json failure on `body` to the matching [`DecodeError`].
fn parse_error(error: &serde_json::Error, body: &[u8]) -> DecodeError {
    let excerpt = excerpt(body, EXCERPT_CHARS);
    match error.classify() {
        Category::Eof => DecodeError::Truncated {
            len: body.len(),
            excerpt,
        },
        Category::Data => DecodeError::Malformed {
            detail: one_line(&error.to_string(), EXCERPT_CHARS, false),
            excerpt,
        },
        Category::Syntax | Category::Io => DecodeError::NotJson { excerpt },
    }
}

/// Names the kind of JSON value that starts with `first`.
fn json_kind(first: u8) -> &'static str {
    match first {
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

/// What an `item` value amounts to.
enum ItemShape {
    /// A non-empty object.
    Object,
    /// One of the API's ways of saying "no item": `null`, `false`, `""`, `[]` or `{}`.
    Nothing,
    /// Anything else, named.
    Other(&'static str),
}

/// Classifies a raw `item` value.
fn item_shape(raw: &RawValue) -> ItemShape {
    let text = raw.get().trim_matches(JSON_WHITESPACE);
    let Some(&first) = text.as_bytes().first() else {
        return ItemShape::Nothing;
    };
    let empty_container = text[1..].trim_start_matches(JSON_WHITESPACE).len() == 1;
    match first {
        b'{' if empty_container => ItemShape::Nothing,
        b'{' => ItemShape::Object,
        b'[' if empty_container => ItemShape::Nothing,
        b'[' => ItemShape::Other("a non-empty array"),
        b'"' if text == "\"\"" => ItemShape::Nothing,
        b'"' => ItemShape::Other("a non-empty string"),
        b'n' | b'f' => ItemShape::Nothing,
        b't' => ItemShape::Other("true"),
        _ => ItemShape::Other("a number"),
    }
}

/// A status code: numbers are padded to four digits ("0" → "0000"), strings trimmed.
fn error_code(code: Scalar) -> Option<String> {
    match code {
        Scalar::Number(n) if n.bytes().all(|b| b.is_ascii_digit()) => Some(format!("{n:0>4}")),
        other => other.text().and_then(trimmed),
    }
}

/// `text` without surrounding whitespace, or None if nothing is left.
fn trimmed(text: String) -> Option<String> {
    match text.trim() {
        "" => None,
        t if t.len() == text.len() => Some(text),
        t => Some(t.to_owned()),
    }
}

/// The fields read from the top-level object, its `item` as `I`; all others are skipped unparsed.
#[derive(Default, Deserialize)]
#[serde(default, bound = "I: Deserialize<'de> + Default")]
struct Envelope<I> {
    item: I,
    error: Scalar,
    reason: Scalar,
    error_code: Scalar,
    api_info: Scalar,
    request_id: Scalar,
    server_time: Scalar,
    execution_time: Scalar,
}

impl<I> Envelope<I> {
    /// The item as read, and the other fields.
    fn split(self) -> (I, Envelope<()>) {
        let fields = Envelope {
            item: (),
            error: self.error,
            reason: self.reason,
            error_code: self.error_code,
            api_info: self.api_info,
            request_id: self.request_id,
            server_time: self.server_time,
            execution_time: self.execution_time,
        };
        (self.item, fields)
    }
}

impl Envelope<()> {
    fn into_answer(self, item: Option<Item>, raw_item: Option<RawItem>) -> Answer {
        Answer {
            error_code: error_code(self.error_code),
            error: self.error.text().and_then(trimmed),
            reason: self.reason.text().and_then(trimmed),
            api_info: self.api_info.text().and_then(trimmed),
            request_id: self.request_id.text().and_then(trimmed),
            server_time: self.server_time.text().and_then(trimmed),
            execution_time: self
                .execution_time
                .text()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .filter(|t| t.is_finite()),
            item,
            raw_item,
        }
    }
}

/// `item` read in one pass: an object's fields, or one of the API's ways of saying "no item"
/// (see [`ItemShape`]). Fails on anything else, on an object without a field it reads (which
/// may be `{}`, "no item"), and wherever one pass fails on the fields (see [`read_item`]), so
/// that the captured reading decides.
#[derive(Default)]
struct StreamedItem(Option<Item>);

impl<'de> Deserialize<'de> for StreamedItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StreamedItemVisitor)
    }
}

struct StreamedItemVisitor;

impl<'de> Visitor<'de> for StreamedItemVisitor {
    type Value = StreamedItem;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an item object or an empty value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let item = ItemWire::<OnePass>::deserialize(de::value::MapAccessDeserializer::new(map))?
            .into_item();
        if item == Item::default() {
            return Err(de::Error::custom("an item without fields read"));
        }
        Ok(StreamedItem(Some(item)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        match seq.next_element::<IgnoredAny>()? {
            None => Ok(StreamedItem(None)),
            Some(_) => Err(de::Error::custom("a non-empty array")),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        match text {
            "" => Ok(StreamedItem(None)),
            _ => Err(E::custom("a non-empty string")),
        }
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        match value {
            false => Ok(StreamedItem(None)),
            true => Err(E::custom("true")),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(StreamedItem(None))
    }
}

/// Reads an `item` object (already checked as JSON by the envelope's pass) in one pass, or, where
/// one pass cannot give the same result, with every field captured raw and read again.
///
/// One pass lets serde_json unescape each string as it goes; the captured way reads each value
/// two or three times (a third of an answer's decoding, for an escape-dense item), but keeps what
/// one pass loses: a number's exact text where it is not a plain integer (`1.50`, `-0`, integers
/// beyond 64 bits) and a field with a lone surrogate, which serde_json refuses as a whole and
/// the captured way reads as absent. One pass fails on both, and on any other error, and the
/// captured way decides (a property test holds the two equal wherever one pass succeeds).
fn read_item(json: &str) -> serde_json::Result<Item> {
    serde_json::from_str::<ItemWire<OnePass>>(json)
        .map(ItemWire::into_item)
        .or_else(|_| serde_json::from_str::<ItemWire<Captured>>(json).map(ItemWire::into_item))
}

/// How the text fields of an item are read (see [`read_item`]).
trait Reading: Default {
    /// One text field.
    type Scalar: DeserializeOwned + Default + Into<Scalar>;
    /// The `item_imgs` field.
    type Images: DeserializeOwned + Default + Into<Vec<String>>;
}

/// Every value read once, as serde_json parses it; fails where only [`Captured`] can decide.
#[derive(Default)]
struct OnePass;

impl Reading for OnePass {
    type Scalar = StreamedScalar;
    type Images = StreamedImages;
}

/// Every value captured raw and read again: slower, and exact for any valid JSON.
#[derive(Default)]
struct Captured;

impl Reading for Captured {
    type Scalar = Scalar;
    type Images = Images;
}

/// The fields read from an `item` object.
#[derive(Default, Deserialize)]
#[serde(default, bound = "")]
struct ItemWire<R: Reading> {
    num_iid: R::Scalar,
    title: R::Scalar,
    #[serde(rename = "type")]
    item_type: R::Scalar,
    nick: R::Scalar,
    signature: R::Scalar,
    detail_url: R::Scalar,
    uid: R::Scalar,
    short_id: R::Scalar,
    video: ObjectOr<VideoWire<R>>,
    music: ObjectOr<MusicWire<R>>,
    item_imgs: R::Images,
}

impl<R: Reading> ItemWire<R> {
    /// The public form of the item.
    fn into_item(self) -> Item {
        let text = |scalar: R::Scalar| scalar.into().text();
        let video = self.video.0;
        let music = self.music.0;
        Item {
            num_iid: text(self.num_iid),
            title: text(self.title),
            item_type: text(self.item_type),
            nick: text(self.nick),
            signature: text(self.signature),
            detail_url: text(self.detail_url),
            uid: text(self.uid),
            short_id: text(self.short_id),
            video_url: text(video.url),
            video_url_raw: text(video.url_raw),
            cover_url: text(video.pic_url),
            music_title: text(music.title),
            music_nick: text(music.nick),
            music_url: text(music.url),
            music_cover_url: text(music.pic_url),
            item_imgs: self.item_imgs.into(),
        }
    }
}

/// The fields read from `item.video`.
#[derive(Default, Deserialize)]
#[serde(default, bound = "")]
struct VideoWire<R: Reading> {
    url: R::Scalar,
    url_raw: R::Scalar,
    pic_url: R::Scalar,
}

/// The fields read from `item.music`.
#[derive(Default, Deserialize)]
#[serde(default, bound = "")]
struct MusicWire<R: Reading> {
    title: R::Scalar,
    nick: R::Scalar,
    url: R::Scalar,
    pic_url: R::Scalar,
}

/// The field read from an object entry of `item_imgs`.
#[derive(Default, Deserialize)]
#[serde(default, bound = "")]
struct ImageWire<R: Reading> {
    url: R::Scalar,
}

/// A loosely typed text field: a string, a number kept as written, or nothing usable.
#[derive(Default)]
enum Scalar {
    /// Missing, null, a boolean, an object, an array, or a string with a broken escape.
    #[default]
    Absent,
    /// A JSON string, unescaped.
    Text(String),
    /// A JSON number, as written.
    Number(String),
}

impl Scalar {
    /// Reads a raw JSON value.
    fn from_raw(raw: &RawValue) -> Scalar {
        let text = raw.get();
        match text.as_bytes().first() {
            // A lone surrogate (a title cut in the middle of an emoji) is read as U+FFFD, as
            // invalid UTF-8 is, rather than losing the whole text; serde_json refuses it.
            Some(b'"') => match text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .and_then(|inner| unescape(inner, Some(char::REPLACEMENT_CHARACTER)))
            {
                Some(inner) => Scalar::Text(inner),
                None => serde_json::from_str(text).map_or(Scalar::Absent, Scalar::Text),
            },
            Some(b'-' | b'0'..=b'9') => Scalar::Number(text.to_owned()),
            _ => Scalar::Absent,
        }
    }

    /// The text of a string or number.
    fn text(self) -> Option<String> {
        match self {
            Scalar::Absent => None,
            Scalar::Text(text) | Scalar::Number(text) => Some(text),
        }
    }
}

/// The text of a JSON string's inside (between its quotes) as serde_json reads it, for a string
/// serde_json has already checked as a raw value (every escape is one it knows, `\u` has four hex
/// digits). None for a lone surrogate, which serde_json refuses, or anything unexpected: the
/// caller then asks serde_json. Chinese text comes as `\uXXXX` escapes, and decoding them here
/// costs a small part of a second pass through serde_json (a property test holds the two equal).
/// With `lone_surrogate`, a lone surrogate is read as that character instead.
fn unescape(inner: &str, lone_surrogate: Option<char>) -> Option<String> {
    let bytes = inner.as_bytes();
    let mut text = String::with_capacity(inner.len());
    let mut at = 0;
    while let Some(offset) = memchr::memchr(b'\\', &bytes[at..]) {
        text.push_str(&inner[at..at + offset]);
        at += offset;
        let escape = *bytes.get(at + 1)?;
        at += 2;
        let decoded = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = hex_unit(bytes.get(at..at + 4)?)?;
                at += 4;
                let low = match bytes.get(at..at + 6) {
                    Some([b'\\', b'u', hex @ ..]) => hex_unit(hex),
                    _ => None,
                };
                match (unit, low) {
                    (0xD800..=0xDBFF, Some(low @ 0xDC00..=0xDFFF)) => {
                        at += 6;
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    (0xD800..=0xDFFF, _) => lone_surrogate?,
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        };
        text.push(decoded);
    }
    text.push_str(&inner[at..]);
    Some(text)
}

/// The value of four hex digits.
fn hex_unit(hex: &[u8]) -> Option<u32> {
    hex.iter().try_fold(0u32, |value, &digit| {
        Some(value * 16 + char::from(digit).to_digit(16)?)
    })
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&RawValue>::deserialize(deserializer).map(Scalar::from_raw)
    }
}

/// The visitor methods for the values a visitor passes over (numbers, booleans, null), each
/// giving `$value`.
macro_rules! passes_over_scalars {
    ($value:expr) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// A nested object's fields, or their defaults when the value is not an object (`[]`, `""`, null…).
#[derive(Default)]
struct ObjectOr<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for ObjectOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectOrVisitor(std::marker::PhantomData))
    }
}

/// Reads an object's fields as `T`, and passes over anything else.
struct ObjectOrVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ObjectOrVisitor<T> {
    type Value = ObjectOr<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectOr)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(ObjectOr(T::default()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(ObjectOr(T::default()))
    }

    passes_over_scalars!(ObjectOr(T::default()));
}

/// The URLs of `item_imgs`: a list (or an object, as PHP encodes sparse lists) of strings or of
/// objects with a `url` field, or a single string; anything else means no images.
#[derive(Default)]
struct Images(Vec<String>);

impl<'de> Deserialize<'de> for Images {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let entries: Vec<&RawValue> = match text.as_bytes().first() {
            Some(b'[') => serde_json::from_str(text).unwrap_or_default(),
            Some(b'{') => serde_json::from_str::<ValuesInOrder>(text)
                .map(|values| values.0)
                .unwrap_or_default(),
            Some(b'"') => vec![raw],
            _ => Vec::new(),
        };
        Ok(Images(kept_urls(entries.into_iter().map(image_url))))
    }
}

impl From<Images> for Vec<String> {
    fn from(images: Images) -> Vec<String> {
        images.0
    }
}

/// The URLs of `item_imgs` entries, in order, without blank or unusable ones.
fn kept_urls(urls: impl IntoIterator<Item = Option<String>>) -> Vec<String> {
    urls.into_iter()
        .flatten()
        .filter(|url| !url.trim().is_empty())
        .collect()
}

/// The URL of one `item_imgs` entry: a string, or an object's `url` field.
fn image_url(entry: &RawValue) -> Option<String> {
    match entry.get().as_bytes().first() {
        Some(b'"') => Scalar::from_raw(entry).text(),
        Some(b'{') => serde_json::from_str::<ImageWire<Captured>>(entry.get())
            .ok()?
            .url
            .text(),
        _ => None,
    }
}

/// [`Scalar`] read in one pass: a string as serde_json unescapes it, an integer as its digits.
/// Fails on other numbers, whose exact text one pass does not see (see [`read_item`]).
#[derive(Default)]
struct StreamedScalar(Scalar);

impl From<StreamedScalar> for Scalar {
    fn from(scalar: StreamedScalar) -> Scalar {
        scalar.0
    }
}

impl<'de> Deserialize<'de> for StreamedScalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StreamedScalarVisitor)
    }
}

/// Reads one value for [`StreamedScalar`].
struct StreamedScalarVisitor;

impl<'de> Visitor<'de> for StreamedScalarVisitor {
    type Value = StreamedScalar;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(StreamedScalar(Scalar::Text(text.to_owned())))
    }

    // JSON writes an integer in one way only, so its digits are its text; serde_json reads
    // `-0` and integers beyond 64 bits as floats.
    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
        Ok(StreamedScalar(Scalar::Number(number.to_string())))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
        Ok(StreamedScalar(Scalar::Number(number.to_string())))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom(
            "a number that is not a plain integer needs its exact text",
        ))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(StreamedScalar::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(StreamedScalar::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(StreamedScalar::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(StreamedScalar::default())
    }
}

/// [`Images`] read in one pass.
#[derive(Default)]
struct StreamedImages(Vec<String>);

impl From<StreamedImages> for Vec<String> {
    fn from(images: StreamedImages) -> Vec<String> {
        images.0
    }
}

impl<'de> Deserialize<'de> for StreamedImages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StreamedImagesVisitor)
    }
}

/// Reads `item_imgs` for [`StreamedImages`]: the same shapes as [`Images`].
struct StreamedImagesVisitor;

impl<'de> Visitor<'de> for StreamedImagesVisitor {
    type Value = StreamedImages;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut urls = Vec::new();
        while let Some(StreamedImageUrl(url)) = seq.next_element()? {
            urls.push(url);
        }
        Ok(StreamedImages(kept_urls(urls)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut urls = Vec::new();
        while let Some((IgnoredAny, StreamedImageUrl(url))) = map.next_entry()? {
            urls.push(url);
        }
        Ok(StreamedImages(kept_urls(urls)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(StreamedImages(kept_urls([Some(text.to_owned())])))
    }

    passes_over_scalars!(StreamedImages::default());
}

/// The URL of one `item_imgs` entry read in one pass, as [`image_url`] reads it.
struct StreamedImageUrl(Option<String>);

impl<'de> Deserialize<'de> for StreamedImageUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StreamedImageUrlVisitor)
    }
}

/// Reads one `item_imgs` entry for [`StreamedImageUrl`].
struct StreamedImageUrlVisitor;

impl<'de> Visitor<'de> for StreamedImageUrlVisitor {
    type Value = StreamedImageUrl;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(StreamedImageUrl(Some(text.to_owned())))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let wire = ImageWire::<OnePass>::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(StreamedImageUrl(wire.url.0.text()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(StreamedImageUrl(None))
    }

    passes_over_scalars!(StreamedImageUrl(None));
}

/// The values of a JSON object, in the order written, unparsed.
struct ValuesInOrder<'a>(Vec<&'a RawValue>);

impl<'de> Deserialize<'de> for ValuesInOrder<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ValuesVisitor)
    }
}

/// Collects an object's values for [`ValuesInOrder`].
struct ValuesVisitor;

impl<'de> Visitor<'de> for ValuesVisitor {
    type Value = ValuesInOrder<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some((IgnoredAny, value)) = map.next_entry::<IgnoredAny, &RawValue>()? {
            values.push(value);
        }
        Ok(ValuesInOrder(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OK: &[u8] = include_bytes!("../tests/fixtures/item_get_video.ok.json");
    const NOT_FOUND: &[u8] = include_bytes!("../tests/fixtures/item_get_video.not_found.json");

    /// Decodes `body`, failing the test with the error if it does not decode.
    fn decoded(body: &str) -> Answer {
        decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    /// The item of `{"item": <item_json>}`.
    fn item_of(item_json: &str) -> Item {
        let body = format!(r#"{{"item": {item_json}}}"#);
        decoded(&body)
            .item
            .unwrap_or_else(|| panic!("{body}: no item"))
    }

    #[test]
    fn ok_fixture_decodes_every_field() {
        let answer = decode(OK).unwrap();
        assert_eq!(answer.error_code.as_deref(), Some("0000"));
        assert_eq!(answer.error, None);
        assert_eq!(answer.reason, None);
        assert_eq!(
            answer.api_info.as_deref(),
            Some("today:39 max:10000 all[104=39+33+32];expires:2030-12-31")
        );
        assert_eq!(answer.request_id.as_deref(), Some("gw-1.63353a5926054"));
        assert_eq!(
            answer.server_time.as_deref(),
            Some("Beijing/2022-09-29 14:25:29")
        );
        assert_eq!(answer.execution_time, Some(0.191));
        let item = answer.item.unwrap();
        let expected = Item {
            num_iid: Some("7118694749548072205".into()),
            title: Some("#好看的小姐姐 #这谁顶得住啊 #身材很哇塞 #美女 #大长腿".into()),
            item_type: Some("video".into()),
            nick: Some("喵喵喵喵咪".into()),
            signature: Some(
                "❤️感谢官方提供的网络平台\n❤️素材来源于网络\n❤️感谢每一位粉丝的支持你我共同努力"
                    .into(),
            ),
            detail_url: Some("https://www.iesdouyin.com/share/video/7118694749548072205/?region=&mid=7118694851976284941&u_code=0&did=MS4wLjABAAAANwkJuWIRFOzg5uCpDRpMj4OX-QryoDgn-yYlXQnRwQQ&iid=MS4wLjABAAAANwkJuWIRFOzg5uCpDRpMj4OX-QryoDgn-yYlXQnRwQQ&with_sec_did=1&titleType=title".into()),
            uid: Some("2362203779104899".into()),
            short_id: Some("65143561044".into()),
            video_url: Some("https://aweme.snssdk.com/aweme/v1/playwm/?video_id=v0200fg10000cb5atp3c77ubg4uvvnhg&ratio=720p&line=0".into()),
            video_url_raw: Some("https://aweme.snssdk.com/aweme/v1/play/?video_id=v0200fg10000cb5atp3c77ubg4uvvnhg&ratio=720p&line=0".into()),
            cover_url: Some("https://p26-sign.douyinpic.com/tos-cn-p-0015/fd7cd149586445ffa92a54d0b0c505e9~c5_300x400.jpeg?x-expires=1665640800&x-signature=jK%2BWPYf9Mm0A1qaUdLTMxYEYEiQ%3D&from=3213915784_large&s=PackSourceEnum_DOUYIN_REFLOW&se=false&sc=cover&l=202209291425290102091581361D06B75C".into()),
            music_title: Some("@喵喵喵喵咪创作的原声一喵喵喵喵咪(原声中的歌曲:Anzap - Jessie Diamond Dj Remix-Zunda Project)".into()),
            music_nick: Some("喵喵喵喵咪".into()),
            music_url: Some("https://sf3-cdn-tos.douyinstatic.com/obj/ies-music/7118694844603681549.mp3".into()),
            music_cover_url: Some("https://p3.douyinpic.com/aweme/1080x1080/aweme-avatar/tos-cn-avt-0015_bd0af63490a2eac04fb4c2cd54c03d1e.jpeg?from=116350172".into()),
            item_imgs: Vec::new(),
        };
        assert_eq!(item, expected);
    }

    #[test]
    fn ok_fixture_keeps_the_raw_item_as_received() {
        let answer = decode(OK).unwrap();
        let raw = answer.raw_item.unwrap();
        let raw = raw.text().unwrap();
        let fixture = std::str::from_utf8(OK).unwrap();
        assert!(raw.starts_with("{\n\"num_iid\""), "{raw}");
        assert!(raw.ends_with("\"item_imgs\": []\n}"), "{raw}");
        assert!(fixture.contains(raw));
    }

    /// One pass keeps the answer and finds the item in it when asked; the captured reading keeps
    /// the item itself. Either way the raw item is the text the answer had.
    #[test]
    fn the_raw_item_is_the_same_whichever_reading_decided() {
        let fixture = std::str::from_utf8(OK).unwrap();
        // A `uid` of `1.50` is a number one pass cannot keep exactly: the captured reading decides.
        let inexact = fixture.replacen("\"uid\": \"2362203779104899\"", "\"uid\": 1.50", 1);
        assert_ne!(inexact, fixture);
        for (body, one_pass) in [(fixture, true), (inexact.as_str(), false)] {
            let answer = decode(body.as_bytes()).unwrap();
            let raw = answer.raw_item.expect("a raw item");
            assert_eq!(
                matches!(raw.0, RawItemSource::Answer(_)),
                one_pass,
                "{body}"
            );
            let text = raw.text().expect("the item's text");
            let captured = serde_json::from_str::<RawItemOf<'_>>(body)
                .unwrap()
                .item
                .unwrap();
            assert_eq!(text, captured.get());
            assert!(text.starts_with('{') && body.contains(text));
            assert_eq!(
                answer.item.unwrap().num_iid.as_deref(),
                Some("7118694749548072205")
            );
        }
    }

    #[test]
    fn not_found_fixture_decodes_the_envelope() {
        let answer = decode(NOT_FOUND).unwrap();
        assert_eq!(answer.error_code.as_deref(), Some("2000"));
        assert_eq!(answer.error.as_deref(), Some("item-not-found"));
        assert_eq!(answer.reason.as_deref(), Some("没找到"));
        assert_eq!(answer.api_info.as_deref(), Some("today:0 max:10000"));
        assert_eq!(answer.request_id.as_deref(), Some("1ee0ffc041242"));
        assert_eq!(
            answer.server_time.as_deref(),
            Some("Beijing/2020-06-10 23:44:00")
        );
        assert_eq!(answer.execution_time, Some(0.081));
        assert!(answer.item.is_none());
        assert!(answer.raw_item.is_none());
    }

    #[test]
    fn error_code_in_every_shape() {
        let cases = [
            (r#"{"error_code": "0000"}"#, Some("0000")),
            (r#"{"error_code": " 4005 "}"#, Some("4005")),
            (r#"{"error_code": 0}"#, Some("0000")),
            (r#"{"error_code": 2000}"#, Some("2000")),
            (r#"{"error_code": 5}"#, Some("0005")),
            (r#"{"error_code": -1}"#, Some("-1")),
            (r#"{"error_code": 4.5}"#, Some("4.5")),
            (r#"{"error_code": ""}"#, None),
            (r#"{"error_code": null}"#, None),
            (r#"{"error_code": true}"#, None),
            (r#"{"error_code": {"a": 1}}"#, None),
            (r#"{"error": "x"}"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(decoded(body).error_code.as_deref(), expected, "{body}");
        }
    }

    #[test]
    fn execution_time_in_every_shape() {
        let cases = [
            (r#"{"execution_time": "0.191"}"#, Some(0.191)),
            (r#"{"execution_time": " 1.5 "}"#, Some(1.5)),
            (r#"{"execution_time": 0.081}"#, Some(0.081)),
            (r#"{"execution_time": 2}"#, Some(2.0)),
            (r#"{"execution_time": "fast"}"#, None),
            (r#"{"execution_time": "NaN"}"#, None),
            (r#"{"execution_time": "inf"}"#, None),
            (r#"{"execution_time": null}"#, None),
            (r#"{}"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(decoded(body).execution_time, expected, "{body}");
        }
    }

    #[test]
    fn envelope_text_fields_are_trimmed_and_blank_is_none() {
        let answer = decoded(
            r#"{"error": "  ", "reason": " 没找到 ", "api_info": 7, "request_id": 1e3, "server_time": false}"#,
        );
        assert_eq!(answer.error, None);
        assert_eq!(answer.reason.as_deref(), Some("没找到"));
        assert_eq!(answer.api_info.as_deref(), Some("7"));
        assert_eq!(answer.request_id.as_deref(), Some("1e3"));
        assert_eq!(answer.server_time, None);
    }

    #[test]
    fn item_text_fields_accept_numbers_and_ignore_other_types() {
        let cases = [
            (
                r#"{"num_iid": 7118694749548072205}"#,
                Some("7118694749548072205"),
            ),
            (
                r#"{"num_iid": 123456789012345678901234567890}"#,
                Some("123456789012345678901234567890"),
            ),
            (r#"{"num_iid": 1.50}"#, Some("1.50")),
            (r#"{"num_iid": -7}"#, Some("-7")),
            (r#"{"num_iid": "a\"b\u4e2d"}"#, Some("a\"b中")),
            (r#"{"num_iid": ""}"#, Some("")),
            (r#"{"num_iid": "\ud800"}"#, Some("\u{fffd}")),
            (r#"{"num_iid": null}"#, None),
            (r#"{"num_iid": true}"#, None),
            (r#"{"num_iid": {"id": 1}}"#, None),
            (r#"{"num_iid": [1]}"#, None),
            (r#"{"title": "x"}"#, None),
        ];
        for (item, expected) in cases {
            assert_eq!(item_of(item).num_iid.as_deref(), expected, "{item}");
        }
    }

    #[test]
    fn uid_and_type_as_numbers() {
        let item = item_of(r#"{"uid": 123, "type": 4, "short_id": 0}"#);
        assert_eq!(item.uid.as_deref(), Some("123"));
        assert_eq!(item.item_type.as_deref(), Some("4"));
        assert_eq!(item.short_id.as_deref(), Some("0"));
    }

    #[test]
    fn video_and_music_that_are_not_objects_give_no_fields() {
        for shape in [
            "[]",
            "\"\"",
            "null",
            "0",
            "false",
            "[{\"url\": \"x\"}]",
            "\"x\"",
        ] {
            let item = item_of(&format!(
                r#"{{"title": "t", "video": {shape}, "music": {shape}}}"#
            ));
            let expected = Item {
                title: Some("t".into()),
                ..Item::default()
            };
            assert_eq!(item, expected, "video and music = {shape}");
        }
    }

    #[test]
    fn item_imgs_in_every_shape() {
        let cases: [(&str, &[&str]); 15] = [
            ("missing", &[]),
            ("[]", &[]),
            ("\"\"", &[]),
            ("null", &[]),
            ("{}", &[]),
            ("0", &[]),
            ("true", &[]),
            (r#"["a", "b"]"#, &["a", "b"]),
            (r#"[{"url": "a"}, {"url": "b", "w": 1}]"#, &["a", "b"]),
            (
                r#"[1, null, {"x": 1}, {"url": null}, [], "a", {"url": 5}]"#,
                &["a", "5"],
            ),
            (r#"[" ", "", {"url": ""}]"#, &[]),
            (r#""single""#, &["single"]),
            (r#"{"0": {"url": "a"}, "2": {"url": "b"}}"#, &["a", "b"]),
            (r#"{"10": "z", "2": "y"}"#, &["z", "y"]),
            (r#"{"url": "a", "width": 100}"#, &["a"]),
        ];
        for (shape, expected) in cases {
            let item = if shape == "missing" {
                item_of(r#"{"title": "t"}"#)
            } else {
                item_of(&format!(r#"{{"item_imgs": {shape}}}"#))
            };
            assert_eq!(item.item_imgs, expected, "item_imgs = {shape}");
        }
    }

    #[test]
    fn empty_item_values_mean_no_item() {
        for shape in ["null", "[]", "[ ]", "\"\"", "false", "{}", "{ \n }"] {
            let body = format!(r#"{{"item": {shape}, "error_code": "2000"}}"#);
            let answer = decoded(&body);
            assert!(answer.item.is_none(), "{body}");
            assert!(answer.raw_item.is_none(), "{body}");
            assert_eq!(answer.error_code.as_deref(), Some("2000"), "{body}");
        }
    }

    #[test]
    fn other_non_object_items_are_errors() {
        let cases = [
            ("5", "a number"),
            ("-0.5", "a number"),
            ("[1]", "a non-empty array"),
            ("[{}]", "a non-empty array"),
            ("\"x\"", "a non-empty string"),
            ("true", "true"),
        ];
        for (shape, expected) in cases {
            let body = format!(r#"{{"item": {shape}}}"#);
            match decode(body.as_bytes()) {
                Err(DecodeError::ItemNotAnObject { found, excerpt }) => {
                    assert_eq!(found, expected, "{body}");
                    assert_eq!(excerpt, shape, "{body}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let body = r#"{"zzz": {"deep": [1, {"x": null}]}, "item": {"title": "t", "extra": [1, 2],
            "video": {"url": "v", "width": 720, "cover": {"a": 1}}, "music": {"id": 9, "url": "m"}},
            "error_code": "0000", "call_args": [], "success": 1, "cache": "0", "last_id": 5}"#;
        let answer = decoded(body);
        let expected = Item {
            title: Some("t".into()),
            video_url: Some("v".into()),
            music_url: Some("m".into()),
            ..Item::default()
        };
        assert_eq!(answer.item, Some(expected));
        assert_eq!(answer.error_code.as_deref(), Some("0000"));
    }

    #[test]
    fn gbk_body_is_decoded() {
        let text = std::str::from_utf8(NOT_FOUND).unwrap();
        let (gbk, _, had_errors) = GBK.encode(text);
        assert!(!had_errors);
        assert!(
            std::str::from_utf8(&gbk).is_err(),
            "the GBK body must not be UTF-8"
        );
        let answer = decode(&gbk).unwrap();
        assert_eq!(answer.error_code.as_deref(), Some("2000"));
        assert_eq!(answer.reason.as_deref(), Some("没找到"));
        assert_eq!(answer.execution_time, Some(0.081));
    }

    #[test]
    fn invalid_bytes_that_are_not_gbk_fall_back_to_lossy_utf8() {
        let body = b"{\"error_code\": \"4000\", \"reason\": \"bad \xff\xff end\"}";
        let answer = decode(body).unwrap();
        assert_eq!(answer.error_code.as_deref(), Some("4000"));
        assert_eq!(answer.reason.as_deref(), Some("bad \u{fffd}\u{fffd} end"));
    }

    #[test]
    fn utf8_byte_order_mark_is_skipped() {
        let mut body = "\u{feff}".as_bytes().to_vec();
        body.extend_from_slice(NOT_FOUND);
        assert_eq!(decode(&body).unwrap().error_code.as_deref(), Some("2000"));
    }

    #[test]
    fn html_body_is_not_json() {
        let body = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";
        let error = decode(body).unwrap_err();
        assert!(matches!(error, DecodeError::NotJson { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "answer is not JSON: \"<html> <head><title>502 Bad Gateway</title></head> <body> <center><h1>502 Bad Gateway</h1></center> </body> </html>\""
        );
    }

    #[test]
    fn long_html_body_excerpt_is_short() {
        let body = format!("<html>{}</html>", "x".repeat(100_000));
        match decode(body.as_bytes()) {
            Err(DecodeError::NotJson { excerpt }) => {
                assert_eq!(excerpt.chars().count(), EXCERPT_CHARS);
                assert!(excerpt.ends_with('…'), "{excerpt}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_bodies() {
        for body in ["", "   ", "\r\n\t"] {
            let error = decode(body.as_bytes()).unwrap_err();
            assert!(matches!(error, DecodeError::Empty), "{body:?}: {error:?}");
        }
    }

    #[test]
    fn truncated_json() {
        let half = &OK[..OK.len() / 2];
        match decode(half) {
            Err(DecodeError::Truncated { len, excerpt }) => {
                assert_eq!(len, half.len());
                assert!(excerpt.starts_with("{ \"item\": {"), "{excerpt}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_inside_an_object_are_not_json() {
        for body in [r#"{"item": }"#, "{oops}", r#"{"a": 1} trailing"#] {
            let error = decode(body.as_bytes()).unwrap_err();
            assert!(
                matches!(error, DecodeError::NotJson { .. }),
                "{body}: {error:?}"
            );
        }
    }

    #[test]
    fn json_that_is_not_an_object() {
        let cases = [
            ("[]", "an array"),
            ("[1, 2]", "an array"),
            ("\"text\"", "a string"),
            ("42", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ];
        for (body, expected) in cases {
            match decode(body.as_bytes()) {
                Err(DecodeError::NotAnObject { found, .. }) => {
                    assert_eq!(found, expected, "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn repeated_keys_are_malformed() {
        for body in [
            r#"{"error_code": "0000", "error_code": "2000"}"#,
            r#"{"item": {"title": "a", "title": "b"}}"#,
        ] {
            let error = decode(body.as_bytes()).unwrap_err();
            assert!(
                matches!(error, DecodeError::Malformed { .. }),
                "{body}: {error:?}"
            );
            assert!(
                error.to_string().contains("duplicate field"),
                "{body}: {error}"
            );
        }
    }

    #[test]
    fn deeply_nested_json_does_not_overflow_the_stack() {
        let deep = "[".repeat(100_000);
        let balanced = format!("{deep}{}", "]".repeat(100_000));
        let bodies = [
            deep.clone(),
            balanced.clone(),
            format!(r#"{{"item": {deep}"#),
            format!(r#"{{"item": {{"title": {deep}"#),
            format!(r#"{{"error": {deep}"#),
        ];
        for body in &bodies {
            assert!(decode(body.as_bytes()).is_err(), "{}…", &body[..20]);
        }
        let ignored = decoded(&format!(r#"{{"extra": {balanced}, "error_code": 0}}"#));
        assert_eq!(ignored.error_code.as_deref(), Some("0000"));
        let item = item_of(&format!(r#"{{"extra": {balanced}, "title": "t"}}"#));
        assert_eq!(item.title.as_deref(), Some("t"));
    }

    #[test]
    fn enormous_strings_are_fine() {
        let title = "长".repeat(1_000_000);
        let item = item_of(&format!(r#"{{"title": "{title}"}}"#));
        assert_eq!(item.title, Some(title));
    }

    /// `text` as a JSON string the way PHP's `json_encode` writes it (onebound's answers): every
    /// character outside ASCII as `\uXXXX` (UTF-16 units), `/` as `\/`.
    fn php_json_string(text: &str) -> String {
        let mut json = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => json.push_str("\\\""),
                '\\' => json.push_str("\\\\"),
                '/' => json.push_str("\\/"),
                '\n' => json.push_str("\\n"),
                c if c.is_ascii() && !c.is_ascii_control() => json.push(c),
                c => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        json.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        json.push('"');
        json
    }

    #[test]
    fn unescaping_reads_chinese_text_urls_and_every_escape() {
        let cases = [
            (r#""\u4f60\u597d""#, Some("你好")),
            (
                r#""https:\/\/p3.douyinpic.com\/a.jpeg""#,
                Some("https://p3.douyinpic.com/a.jpeg"),
            ),
            (r#""\"\\\/\b\f\n\r\t""#, Some("\"\\/\u{8}\u{c}\n\r\t")),
            (r#""\ud83d\ude00 \u00e9\u0000""#, Some("\u{1f600} \u{e9}\0")),
            (r#""\ud83d""#, None),
            (r#""\ude00""#, None),
            (r#""\ud83d\u0041""#, None),
            (r#""\ud83dx""#, None),
        ];
        for (json, text) in cases {
            let inner = &json[1..json.len() - 1];
            assert_eq!(unescape(inner, None).as_deref(), text, "{json}");
            assert_eq!(
                serde_json::from_str::<String>(json).ok().as_deref(),
                text,
                "serde_json agrees on {json}"
            );
        }
    }

    proptest! {
        /// Whatever serde_json reads from a string, `unescape` (strict) reads the same, and it refuses
        /// (so that serde_json is asked) exactly what serde_json refuses.
        #[test]
        fn unescape_reads_what_serde_json_reads(
            text in any::<String>(),
            soup in r#"([a-z/é长]|\\["\\/bfnrt]|\\u(d[89ab]|d[c-f]|00|4f|e9)[0-9a-f]{2}){0,12}"#,
        ) {
            for json in [php_json_string(&text), serde_json::to_string(&text).expect("json"), format!("\"{soup}\"")] {
                let inner = &json[1..json.len() - 1];
                prop_assert_eq!(unescape(inner, None), serde_json::from_str::<String>(&json).ok(), "{}", json);
            }
        }
    }

    /// An item as onebound writes it (Chinese as `\uXXXX`, `/` as `\/`), in every field and shape.
    fn php_item() -> String {
        let url =
            |path: &str| php_json_string(&format!("https://p3.douyinpic.com/{path}?a=1&b=中"));
        format!(
            r#"{{"num_iid": 7118694749548072205, "title": {title}, "type": "video", "uid": -7,
                "video": {{"url": {video}, "pic_url": {cover}}}, "music": {{"title": {title}}},
                "item_imgs": [{first}, {{"url": {second}}}, ""], "cache": 1.5}}"#,
            title = php_json_string("#好看 \"长\" 😀\n"),
            video = url("v"),
            cover = url("c.jpeg"),
            first = url("1.jpeg"),
            second = url("2.jpeg"),
        )
    }

    /// Reads `json` both ways; Err when that way fails.
    fn both_readings(json: &str) -> (Result<Item, String>, Result<Item, String>) {
        let one_pass = serde_json::from_str::<ItemWire<OnePass>>(json)
            .map(ItemWire::into_item)
            .map_err(|e| e.to_string());
        let captured = serde_json::from_str::<ItemWire<Captured>>(json)
            .map(ItemWire::into_item)
            .map_err(|e| e.to_string());
        (one_pass, captured)
    }

    /// What answers look like is read in one pass; the captured way is only the fallback.
    #[test]
    fn answers_as_onebound_writes_them_are_read_in_one_pass() {
        let fixture = decoded(std::str::from_utf8(OK).expect("utf-8")).raw_item;
        let fixture = fixture.expect("item").text().expect("text").to_owned();
        for json in [fixture, php_item()] {
            let (one_pass, captured) = both_readings(&json);
            let item = one_pass.unwrap_or_else(|e| panic!("one pass failed ({e}): {json}"));
            assert_eq!(Ok(&item), captured.as_ref(), "{json}");
            assert!(item.title.is_some() && item.cover_url.is_some(), "{item:?}");
        }
        let item = item_of(&php_item());
        assert_eq!(item.title.as_deref(), Some("#好看 \"长\" 😀\n"));
        assert_eq!(item.uid.as_deref(), Some("-7"));
        assert_eq!(
            item.item_imgs,
            [
                "https://p3.douyinpic.com/1.jpeg?a=1&b=中",
                "https://p3.douyinpic.com/2.jpeg?a=1&b=中"
            ]
        );
    }

    #[test]
    fn a_lone_surrogate_is_read_as_a_replacement_character_not_as_no_text() {
        let cases = [
            (
                r#"{"title": "lone \ud800 surrogate"}"#,
                "lone \u{fffd} surrogate",
            ),
            (r#"{"title": "cut \ud83d"}"#, "cut \u{fffd}"),
            (
                r#"{"title": "\ude00\ud83d\ude00\ud83dx"}"#,
                "\u{fffd}\u{1f600}\u{fffd}x",
            ),
            (r#"{"title": "\ud83d\u0041"}"#, "\u{fffd}A"),
        ];
        for (item, title) in cases {
            assert_eq!(item_of(item).title.as_deref(), Some(title), "{item}");
        }
    }

    /// What one pass cannot read exactly, it leaves to the captured way.
    #[test]
    fn one_pass_gives_way_on_inexact_numbers_and_lone_surrogates() {
        for json in [
            r#"{"uid": 1.50}"#,
            r#"{"uid": -0}"#,
            r#"{"uid": 123456789012345678901234567890}"#,
            r#"{"title": "\ud800"}"#,
            r#"{"video": {"url": 1e3}}"#,
            r#"{"item_imgs": [{"url": "\udc00"}]}"#,
        ] {
            let (one_pass, captured) = both_readings(json);
            assert!(one_pass.is_err(), "{json}: {one_pass:?}");
            assert!(captured.is_ok(), "{json}: {captured:?}");
        }
    }

    /// A JSON value of the shapes items hold: strings with escapes, numbers, literals, and
    /// objects and arrays of them. With `exact`, only what one pass reads exactly: no lone
    /// surrogates, only plain integers, no repeated keys.
    fn item_value(exact: bool) -> impl Strategy<Value = String> {
        let string = if exact {
            r#"([a-z/ é长]|\\["\\/nt]|\\u(00|4f|e9)[0-9a-f]{2}|\\ud83d\\ude00){0,6}"#
        } else {
            r#"([a-z/ é长]|\\["\\/nt]|\\u(d[89ab]|d[c-f]|00|4f|e9)[0-9a-f]{2}){0,6}"#
        };
        let number = if exact {
            r"0|-?[1-9][0-9]{0,17}"
        } else {
            r"-?(0|[1-9][0-9]{0,21})(\.[0-9]{1,2})?([eE][+-]?[0-9])?"
        };
        let scalar = prop_oneof![
            3 => string.prop_map(|soup| format!("\"{soup}\"")),
            1 => number,
            1 => prop::sample::select(vec!["true", "false", "null", "{}", "[]", "\"\""])
                .prop_map(str::to_owned),
        ];
        scalar.prop_recursive(2, 12, 4, move |inner| {
            let key = prop::sample::select(vec!["url", "url_raw", "pic_url", "title", "nick", "x"]);
            prop_oneof![
                object_of(key, inner.clone(), exact),
                prop::collection::vec(inner, 0..4)
                    .prop_map(|values| format!("[{}]", values.join(", "))),
            ]
        })
    }

    /// A JSON object of up to four `keys` with `values`, each key once when `distinct`.
    fn object_of(
        keys: impl Strategy<Value = &'static str>,
        values: impl Strategy<Value = String>,
        distinct: bool,
    ) -> impl Strategy<Value = String> {
        prop::collection::vec((keys, values), 0..5).prop_map(move |mut pairs| {
            if distinct {
                let mut seen = std::collections::HashSet::new();
                pairs.retain(|(key, _)| seen.insert(*key));
            }
            let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", fields.join(", "))
        })
    }

    /// An `item` object with [`item_value`]s.
    fn item_json(exact: bool) -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "num_iid",
            "title",
            "type",
            "uid",
            "short_id",
            "video",
            "music",
            "item_imgs",
            "x",
        ]);
        object_of(key, item_value(exact), exact)
    }

    proptest! {
        /// Wherever one pass reads an item, it reads what the captured way reads; where the
        /// captured way fails, so does one pass.
        #[test]
        fn one_pass_reads_what_the_captured_way_reads(json in item_json(false)) {
            let (one_pass, captured) = both_readings(&json);
            if one_pass.is_ok() || captured.is_err() {
                prop_assert_eq!(one_pass.ok(), captured.ok(), "{}", json);
            }
        }

        /// Items without inexact numbers, lone surrogates or repeated keys are read in one pass.
        #[test]
        fn one_pass_reads_every_item_it_can_read_exactly(json in item_json(true)) {
            let (one_pass, captured) = both_readings(&json);
            prop_assert!(one_pass.is_ok(), "{}: {:?}", json, one_pass);
            prop_assert_eq!(one_pass, captured, "{}", json);
        }
    }

    /// An answer's fields as the tests compare them: the raw item as text.
    fn comparable(answer: Answer) -> impl PartialEq + fmt::Debug {
        let raw = answer.raw_item.map(|raw| raw.text().map(str::to_owned));
        let fields = [
            answer.error_code,
            answer.error,
            answer.reason,
            answer.api_info,
            answer.request_id,
            answer.server_time,
        ];
        (answer.item, raw, fields, answer.execution_time)
    }

    proptest! {
        /// Wherever one pass reads an answer, it reads what the captured way reads, raw item
        /// included, whatever its `item` holds; where the captured way fails, so does one pass.
        #[test]
        fn one_pass_answers_are_the_captured_answers(
            item in item_value(false),
            code in prop::sample::select(vec!["\"0000\"", "0", "2000", "null"]),
            seconds in prop::sample::select(vec!["\"0.191\"", "0.081", "\"\""]),
        ) {
            let json = answer_with(&item, code, seconds);
            if let Some(answer) = one_pass_answer(&json) {
                let captured = captured_answer(&json, json.as_bytes());
                prop_assert_eq!(Some(comparable(answer)), captured.ok().map(comparable), "{}", json);
            }
        }

        /// Answers whose item one pass reads exactly are read in one pass, but for an item
        /// without a field read, which may be `{}` ("no item") and is left to the captured way.
        #[test]
        fn one_pass_reads_every_answer_it_can_read_exactly(item in item_json(true)) {
            let json = answer_with(&item, "\"0000\"", "\"0.191\"");
            let captured = captured_answer(&json, json.as_bytes()).expect("an answer");
            let has_fields = captured.item.as_ref().is_some_and(|item| *item != Item::default());
            prop_assert_eq!(one_pass_answer(&json).is_some(), has_fields, "{}", json);
        }
    }

    /// The item serde_json finds in `json`, as [`RawItem::text`] would have it without the scan.
    fn item_by_serde(json: &str) -> Option<&str> {
        serde_json::from_str::<RawItemOf<'_>>(json)
            .ok()?
            .item
            .map(RawValue::get)
    }

    #[test]
    fn the_scan_finds_the_item_of_every_answer_the_collector_meets() {
        let fixture = std::str::from_utf8(OK).unwrap();
        // The simulator's answers are compact, with escapes, and the item comes first.
        let simulated = concat!(
            r#"{"item":{"num_iid":"7200000000000000001","title":"\u8fd9\u53ea\"\\ #\u732b","#,
            r#""video":{"url":"https:\/\/aweme.snssdk.com\/play\/?a=1&b=[2]"},"item_imgs":[]},"#,
            r#""error":"","error_code":"0000","call_args":[],"request_id":"gw-1.6b11d86f9acfc"}"#,
        );
        for json in [fixture, simulated] {
            let found = top_level_item(json);
            assert!(found.is_some(), "{json}");
            assert_eq!(found, item_by_serde(json));
        }
    }

    #[test]
    fn the_scan_leaves_to_serde_json_what_it_cannot_tell() {
        let cases = [
            r#"{"item": {"a": 1}, "item": {"a": 2}}"#,
            r#"{"\u0069tem": {"a": 1}}"#,
            r#"{"item": null}"#,
            r#"{}"#,
            r#"[{"item": {}}]"#,
            r#"{"item": {"a": "unterminated}"#,
            r#"{"item" {"a": 1}}"#,
            r#"{"item": {"a": 1} "x": 2}"#,
            r#"{"item": {"a": [1}}"#,
            r#"{"item": {"a": 1}]}"#,
        ];
        for json in cases {
            assert_eq!(top_level_item(json), None, "{json}");
        }
        // Where serde_json reads the answer, the fallback finds what it finds.
        let escaped_key = r#"{"\u0069tem": {"a": 1}}"#;
        let raw = RawItem(RawItemSource::Answer(escaped_key.into()));
        assert_eq!(raw.text(), Some(r#"{"a": 1}"#));
    }

    proptest! {
        /// Wherever the scan finds an item, serde_json finds the same text: whatever comes before
        /// and after it, with any whitespace, and `item` as a key or text inside other values.
        #[test]
        fn the_scan_finds_what_serde_json_finds(
            before in prop::collection::vec((prop::sample::select(vec!["x", "items", "item\\u0073", "error"]), item_value(false)), 0..3),
            item in item_value(false),
            after in prop::collection::vec((prop::sample::select(vec!["y", "tem", "request_id"]), item_value(false)), 0..3),
            space in prop::sample::select(vec!["", " ", "\n\t ", "\r\n"]),
        ) {
            let pair = |(key, value): &(&str, String)| format!("{space}\"{key}\"{space}:{space}{value}{space}");
            let mut pairs: Vec<String> = before.iter().map(pair).collect();
            pairs.push(pair(&("item", item.clone())));
            pairs.extend(after.iter().map(pair));
            let json = format!("{space}{{{}}}{space}", pairs.join(","));
            let by_serde = item_by_serde(&json);
            match top_level_item(&json) {
                Some(found) => prop_assert_eq!(Some(found), by_serde, "{}", json),
                // Left to serde_json only for a key with an escape, or an item that is null.
                None => {
                    let escaped_key = before.iter().any(|(key, _)| key.contains('\\'));
                    prop_assert!(escaped_key || item == "null", "{}: serde found {:?}", json, by_serde);
                }
            }
        }
    }

    /// An answer with `item`, an error code and an execution time as JSON values.
    fn answer_with(item: &str, code: &str, seconds: &str) -> String {
        format!(
            "{{\"item\": {item}, \"error\": \"\", \"error_code\": {code}, \
             \"api_info\": \"today:1 max:9\", \"execution_time\": {seconds}}}"
        )
    }

    #[test]
    fn every_error_displays_on_one_line() {
        let bodies: [&[u8]; 7] = [
            b"",
            b"<html>\n<body>\nerror\n</body>",
            b"{\"item\": {\n\"title\"",
            b"[\n1\n]",
            b"{\"item\": [\n1\n]}",
            b"{\"error\": 1,\n\"error\": 2}",
            b"\x01\x02\x03\x7f",
        ];
        for body in bodies {
            let message = decode(body).unwrap_err().to_string();
            assert!(
                !message.chars().any(char::is_control),
                "{body:?}: {message:?}"
            );
        }
    }

    #[test]
    fn excerpt_cases() {
        let cases: [(&[u8], usize, &str); 11] = [
            (b"", 10, ""),
            (b"short", 10, "short"),
            (b"  a \n\t b  ", 10, "a b"),
            (b"a\x00b\x1bc", 10, "a\u{fffd}b\u{fffd}c"),
            (b"abcdefghijkl", 5, "abcd…"),
            (b"abc def ghi", 5, "abc…"),
            (b"abcdef", 0, ""),
            (b"abcdef", 1, "…"),
            (b"abcde", 5, "abcde"),
            (b"\xc3\x28 bad utf8 \xff", 40, "\u{fffd}( bad utf8 \u{fffd}"),
            ("没找到".as_bytes(), 2, "没…"),
        ];
        for (body, max_chars, expected) in cases {
            assert_eq!(excerpt(body, max_chars), expected, "{body:?} / {max_chars}");
        }
    }

    #[test]
    fn excerpt_reads_gbk() {
        let (gbk, _, _) = GBK.encode("错误: 没找到");
        assert_eq!(excerpt(&gbk, 20), "错误: 没找到");
    }

    #[test]
    fn excerpt_of_a_long_body_cut_inside_a_character() {
        for text in ["长".repeat(10_000), format!("a{}", "长".repeat(10_000))] {
            let out = excerpt(text.as_bytes(), 50);
            assert_eq!(out.chars().count(), 50, "{out}");
            assert!(!out.contains('\u{fffd}'), "{out}");
            assert!(out.ends_with('…'), "{out}");
            let (gbk, _, _) = GBK.encode(&text);
            let out = excerpt(&gbk, 50);
            assert!(out.starts_with("长长") || out.starts_with("a长"), "{out}");
            assert!(!out.contains('\u{fffd}'), "{out}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&body);
        }

        #[test]
        fn decode_never_panics_on_json_like_text(
            body in r#"[\[\]{}":, 0-9a-z\\.\-eE]{0,80}"#,
            prefix in prop::sample::select(vec![
                "",
                r#"{"item":"#,
                r#"{"item":{"item_imgs":"#,
                r#"{"item":{"video":"#,
                r#"{"error_code":"#,
            ]),
        ) {
            let _ = decode(format!("{prefix}{body}").as_bytes());
        }

        #[test]
        fn decode_never_panics_on_mutated_fixture(position in 0..OK.len(), byte in any::<u8>()) {
            let mut body = OK.to_vec();
            body[position] = byte;
            let _ = decode(&body);
        }

        #[test]
        fn excerpt_stays_within_bounds(
            body in prop::collection::vec(any::<u8>(), 0..2048),
            max_chars in 0usize..64,
        ) {
            let out = excerpt(&body, max_chars);
            prop_assert!(out.chars().count() <= max_chars);
            prop_assert!(!out.chars().any(char::is_control));
            prop_assert!(!out.contains("  "));
        }
    }
}
