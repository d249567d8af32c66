//! What the simulator says: items generated deterministically from the video id, the success and
//! error envelopes of the real API, and their encoding (`json` escapes non-ASCII like PHP does,
//! `jsonu` leaves Chinese readable).

use std::io;
use std::net::IpAddr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use chrono_tz::Asia::Shanghai;
use serde::Serialize;

/// nginx's page for a failed upstream, answered with HTTP 502.
pub(super) const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// Hashtags titles are made of.
const HASHTAGS: &[&str] = &[
    "#日常vlog",
    "#治愈系",
    "#美食探店",
    "#旅行推荐",
    "#萌宠",
    "#搞笑",
    "#音乐分享",
    "#舞蹈",
    "#穿搭",
    "#健身打卡",
    "#风景",
    "#家常菜",
    "#猫咪",
    "#狗狗的日常",
    "#学习",
    "#手工",
    "#摄影",
    "#城市夜景",
    "#露营",
    "#好看的小姐姐",
];

/// Captions that open most titles.
const CAPTIONS: &[&str] = &[
    "今天的晚霞也太美了吧",
    "一口入魂的家常红烧肉",
    "周末带你逛遍老城区",
    "这只猫又在拆家了",
    "三分钟学会这段舞",
    "原来夏天的味道是这样的",
    "打工人的午饭能有多简单",
    "雨后的山里像仙境一样",
    "第一次尝试做手工皂",
    "坚持健身的第100天",
    "这首歌单曲循环了一整天",
    "给妈妈做了一桌菜",
    "凌晨四点的城市",
    "在海边露营是什么体验",
];

/// Authors' nicknames.
const NICKS: &[&str] = &[
    "喵喵喵喵咪",
    "旅行的阿杰",
    "吃货小满",
    "山野日记",
    "橘子汽水",
    "阿七在路上",
    "小鹿乱撞",
    "深夜食堂老王",
    "一只柯基",
    "画画的北北",
    "程序员小张",
    "晚风与你",
    "大胃王阿飞",
    "摄影师老陈",
    "舞蹈小芒",
    "云南的阿朵",
];

/// Lines authors' signatures are made of.
const SIGNATURE_LINES: &[&str] = &[
    "感谢官方提供的网络平台",
    "素材来源于网络",
    "感谢每一位粉丝的支持你我共同努力",
    "合作请私信",
    "每天更新,记得关注",
    "用镜头记录生活",
    "热爱可抵岁月漫长",
    "不定期直播",
];

/// Marks in front of signature lines (one outside the Basic Multilingual Plane on purpose).
const SIGNATURE_MARKS: &[&str] = &["❤️", "✨", "📷", "🌈", ""];

/// Songs named in music titles.
const SONGS: &[&str] = &[
    "Anzap - Jessie Diamond Dj Remix-Zunda Project",
    "孤勇者-陈奕迅",
    "晴天-周杰伦",
    "Faded-Alan Walker",
    "起风了-买辣椒也用券",
];

/// CDN shards a cover can be served from; each answer picks one.
const COVER_SHARDS: &[&str] = &["p3", "p6", "p9", "p26"];

/// Characters of a play URL's video id.
const VIDEO_ID_CHARS: &[u8] = b"abcdefghijklmnopqrstuv0123456789";

/// Characters of a `sec_uid`-style device id.
const SEC_ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Characters of standard base64.
const BASE64_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Lower-case hexadecimal digits.
const HEX: &[u8] = b"0123456789abcdef";

/// Upper-case hexadecimal digits.
const UPPER_HEX: &[u8] = b"0123456789ABCDEF";

/// How long a signed cover URL stays valid, in seconds (the real CDN: 14 days, on the hour).
const COVER_VALIDITY_SECS: i64 = 14 * 24 * 3600;

/// A generated video item, in the field order of the real API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Item {
    /// The video id, as requested.
    pub num_iid: String,
    /// The share page.
    pub detail_url: String,
    /// The title, with hashtags (and an edition suffix once it changed).
    pub title: String,
    /// Always `video`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The author's nickname.
    pub nick: String,
    /// The author's signature.
    pub signature: String,
    /// The author's uid.
    pub uid: String,
    /// The author's short id.
    pub short_id: String,
    /// Play and cover URLs.
    pub video: Video,
    /// The soundtrack.
    pub music: Music,
    /// Always empty for videos.
    pub item_imgs: Vec<String>,
}

/// The `video` object of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Video {
    /// The watermarked play URL.
    pub url: String,
    /// The play URL without watermark.
    pub url_raw: String,
    /// The signed cover URL; shard, expiry, signature and log id change on every answer.
    pub pic_url: String,
}

/// The `music` object of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Music {
    /// The soundtrack's title.
    pub title: String,
    /// Its author's nickname.
    pub nick: String,
    /// The audio file.
    pub url: String,
    /// Its author's avatar.
    pub pic_url: String,
}

/// Generates the item for `item_id`: everything is derived from the id except the cover URL's
/// volatile parts, drawn from `volatile` and `now`. `edition` 0 is the original title; edition
/// `k ≥ 1` appends ` (第{k+1}版)`.
pub(super) fn generate(
    item_id: &str,
    edition: u64,
    volatile: &mut fastrand::Rng,
    now: DateTime<Utc>,
) -> Item {
    let mut rng = fastrand::Rng::with_seed(fnv1a(item_id));
    let nick = pick(&mut rng, NICKS);

    let mut tags = HASHTAGS.to_vec();
    rng.shuffle(&mut tags);
    tags.truncate(rng.usize(2..=5));
    let mut title = tags.join(" ");
    if rng.u8(..4) != 0 {
        title = format!("{} {title}", pick(&mut rng, CAPTIONS));
    }
    if edition > 0 {
        title.push_str(&format!(" (第{}版)", edition.saturating_add(1)));
    }

    let signature = (0..rng.usize(1..=3))
        .map(|_| {
            format!(
                "{}{}",
                pick(&mut rng, SIGNATURE_MARKS),
                pick(&mut rng, SIGNATURE_LINES)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");

    let mid = format!("7{}", digits(&mut rng, 18));
    let device = format!("MS4wLjABAAAA{}", chars(&mut rng, SEC_ID_CHARS, 43));
    let detail_url = format!(
        "https://www.iesdouyin.com/share/video/{item_id}/?region=&mid={mid}&u_code=0\
         &did={device}&iid={device}&with_sec_did=1&titleType=title"
    );
    let play_id = format!("v0200fg10000{}", chars(&mut rng, VIDEO_ID_CHARS, 20));
    let cover_path = chars(&mut rng, HEX, 32);

    let music_title = if rng.bool() {
        format!("@{nick}创作的原声一{nick}")
    } else {
        format!(
            "@{nick}创作的原声一{nick}(原声中的歌曲:{})",
            pick(&mut rng, SONGS)
        )
    };
    let music = Music {
        title: music_title,
        nick: nick.to_owned(),
        url: format!(
            "https://sf3-cdn-tos.douyinstatic.com/obj/ies-music/7{}.mp3",
            digits(&mut rng, 18)
        ),
        pic_url: format!(
            "https://p3.douyinpic.com/aweme/1080x1080/aweme-avatar/tos-cn-avt-0015_{}.jpeg?from=116350172",
            chars(&mut rng, HEX, 32)
        ),
    };

    Item {
        num_iid: item_id.to_owned(),
        detail_url,
        title,
        kind: "video",
        nick: nick.to_owned(),
        signature,
        uid: digits(&mut rng, 16),
        short_id: digits(&mut rng, 11),
        video: Video {
            url: format!(
                "https://aweme.snssdk.com/aweme/v1/playwm/?video_id={play_id}&ratio=720p&line=0"
            ),
            url_raw: format!(
                "https://aweme.snssdk.com/aweme/v1/play/?video_id={play_id}&ratio=720p&line=0"
            ),
            pic_url: cover_url(&cover_path, volatile, now),
        },
        music,
        item_imgs: Vec::new(),
    }
}

/// A signed cover URL for `path` as the CDN hands them out at `now`.
fn cover_url(path: &str, volatile: &mut fastrand::Rng, now: DateTime<Utc>) -> String {
    let shard = pick(volatile, COVER_SHARDS);
    let expires = (now.timestamp() + COVER_VALIDITY_SECS) / 3600 * 3600;
    let signature = format!("{}=", chars(volatile, BASE64_CHARS, 27))
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let log_id = format!(
        "{}{}",
        beijing_time(now).format("%Y%m%d%H%M%S"),
        chars(volatile, UPPER_HEX, 20)
    );
    format!(
        "https://{shard}-sign.douyinpic.com/tos-cn-p-0015/{path}~c5_300x400.jpeg?x-expires={expires}\
         &x-signature={signature}&from=3213915784_large&s=PackSourceEnum_DOUYIN_REFLOW&se=false\
         &sc=cover&l={log_id}"
    )
}

/// The parts of an envelope that describe the call rather than its result.
#[derive(Debug, Clone)]
pub(super) struct Context {
    /// When the request was read.
    pub started: Instant,
    /// The client's address, echoed in `client_ip`.
    pub client_ip: IpAddr,
    /// `translate_language` for the requested `lang`.
    pub translate_language: &'static str,
    /// Whether to escape non-ASCII (`result_type=json`) or not (`jsonu`).
    pub ascii: bool,
}

/// The success envelope, in the field order of the real API.
#[derive(Serialize)]
struct SuccessEnvelope<'a, T: Serialize> {
    item: &'a T,
    error: &'static str,
    reason: &'static str,
    error_code: &'static str,
    cache: u8,
    api_info: &'a str,
    execution_time: String,
    server_time: String,
    client_ip: String,
    call_args: &'static [u8],
    api_type: &'static str,
    translate_language: &'static str,
    translate_engine: &'static str,
    server_memory: String,
    request_id: String,
    last_id: String,
}

/// The error envelope, in the field order of the real API.
#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: &'static str,
    reason: &'static str,
    error_code: &'a str,
    success: u8,
    cache: u8,
    api_info: &'a str,
    execution_time: f64,
    server_time: String,
    call_args: &'static [u8],
    api_type: &'static str,
    request_id: String,
}

/// The encoded `0000` answer carrying `item`; `last_id` and `memory_mb` fill the matching fields.
pub(super) fn success_body<T: Serialize>(
    item: &T,
    api_info: &str,
    context: &Context,
    last_id: u64,
    memory_mb: f64,
) -> Result<Vec<u8>, serde_json::Error> {
    let now = Utc::now();
    encode(
        &SuccessEnvelope {
            item,
            error: "",
            reason: "",
            error_code: "0000",
            cache: 0,
            api_info,
            execution_time: format!("{:.3}", execution_secs(context.started)),
            server_time: server_time(now),
            client_ip: context.client_ip.to_string(),
            call_args: &[],
            api_type: "douyin",
            translate_language: context.translate_language,
            translate_engine: "google_new",
            server_memory: format!("{memory_mb:.2}MB"),
            request_id: format!("gw-1.{}", uniqid(now)),
            last_id: last_id.to_string(),
        },
        context.ascii,
    )
}

/// The name of the field [`padded`] adds.
const PADDING_FIELD: &[u8] = b",\"padding\":\"";

/// Splits an encoded envelope (a JSON object) into the parts of the same envelope with one more
/// string field, `padding`, that brings it to `bytes` bytes: the body up to the padding, how many
/// padding bytes (of one ASCII letter) follow, and the end of the body. An envelope that is already
/// that long gets an empty `padding`.
pub(super) fn padded(mut body: Vec<u8>, bytes: usize) -> (Vec<u8>, usize, Vec<u8>) {
    if body.last() != Some(&b'}') {
        // Not an object: nothing to add a field to; sent as it is.
        return (body, 0, Vec::new());
    }
    body.pop();
    let field = if body.ends_with(b"{") {
        &PADDING_FIELD[1..]
    } else {
        PADDING_FIELD
    };
    body.extend_from_slice(field);
    let suffix = b"\"}".to_vec();
    let padding = bytes.saturating_sub(body.len() + suffix.len());
    (body, padding, suffix)
}

/// The encoded error answer for `code` (including `2000 item-not-found`).
pub(super) fn error_body(
    code: &str,
    api_info: &str,
    context: &Context,
) -> Result<Vec<u8>, serde_json::Error> {
    let now = Utc::now();
    let (error, reason) = error_text(code);
    encode(
        &ErrorEnvelope {
            error,
            reason,
            error_code: code,
            success: 0,
            cache: 0,
            api_info,
            execution_time: execution_secs(context.started),
            server_time: server_time(now),
            call_args: &[],
            api_type: "douyin",
            request_id: uniqid(now),
        },
        context.ascii,
    )
}

/// The `error` and `reason` texts of an error code (unknown codes read as `5000`'s).
pub(super) fn error_text(code: &str) -> (&'static str, &'static str) {
    match code {
        "2000" => ("item-not-found", "没找到"),
        "4000" => ("server-internal-error", "服务器内部错误"),
        "4001" => ("network-error", "网络错误"),
        "4002" => ("target-server-error", "目标服务器错误"),
        "4003" => ("param-error", "用户输入参数错误"),
        "4004" => ("account-not-found", "用户帐号不存在"),
        "4005" => ("invalid-credentials", "授权失败"),
        "4006" => ("api-stopped", "您的当前API已停用"),
        "4007" => ("account-stopped", "您的账户已停用"),
        "4008" => ("rate-limit-exceeded", "并发已达上限"),
        "4009" => ("api-maintenance", "API维护中"),
        "4010" => ("api-not-found", "API不存在"),
        "4012" => ("api-not-added", "请先添加api"),
        "4013" => ("calls-exceeded", "调用次数超限"),
        "4014" => ("missing-param", "参数缺失"),
        "4015" => ("wrong-page-token", "参数pageToken有误"),
        "4016" => ("insufficient-balance", "余额不足"),
        "4017" => ("timeout-error", "请求超时"),
        _ => ("unknown-error", "未知错误"),
    }
}

/// Whether an answer with this code is charged (only `0000` and `2000` are).
pub(super) fn is_charged(code: &str) -> bool {
    matches!(code, "0000" | "2000")
}

/// `translate_language` for a `lang` parameter.
pub(super) fn translate_language(lang: &str) -> &'static str {
    match lang {
        "en" => "en",
        "ru" => "ru",
        _ => "zh-CN",
    }
}

/// `now` on the Beijing clock.
pub(super) fn beijing_time(now: DateTime<Utc>) -> DateTime<chrono_tz::Tz> {
    now.with_timezone(&Shanghai)
}

/// `server_time`, e.g. `Beijing/2022-09-29 14:25:29`.
fn server_time(now: DateTime<Utc>) -> String {
    format!("Beijing/{}", beijing_time(now).format("%Y-%m-%d %H:%M:%S"))
}

/// Seconds since `started`, rounded to milliseconds.
fn execution_secs(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// A request id like PHP's `uniqid()`: seconds and microseconds in hexadecimal.
fn uniqid(now: DateTime<Utc>) -> String {
    format!(
        "{:08x}{:05x}",
        now.timestamp(),
        now.timestamp_subsec_micros()
    )
}

/// Serializes `value`; with `ascii`, every non-ASCII character is escaped as `\uXXXX`.
pub(super) fn encode<T: Serialize>(value: &T, ascii: bool) -> Result<Vec<u8>, serde_json::Error> {
    if !ascii {
        return serde_json::to_vec(value);
    }
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// A JSON formatter that escapes non-ASCII characters as UTF-16 `\uXXXX` sequences, like PHP's
/// `json_encode` without `JSON_UNESCAPED_UNICODE`.
struct AsciiFormatter;

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut plain_from = 0;
        for (at, ch) in fragment.char_indices() {
            if ch.is_ascii() {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[plain_from..at])?;
            let mut units = [0_u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            plain_from = at + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[plain_from..])
    }
}

/// One entry of a non-empty constant list.
fn pick<'a>(rng: &mut fastrand::Rng, list: &[&'a str]) -> &'a str {
    list[rng.usize(..list.len())]
}

/// `n` characters drawn from a non-empty `alphabet`.
fn chars(rng: &mut fastrand::Rng, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| char::from(alphabet[rng.usize(..alphabet.len())]))
        .collect()
}

/// A number of `n ≥ 1` digits without a leading zero.
fn digits(rng: &mut fastrand::Rng, n: usize) -> String {
    let mut out = rng.u8(1..=9).to_string();
    out.push_str(&chars(rng, b"0123456789", n.saturating_sub(1)));
    out
}

/// FNV-1a, a hash that is stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
