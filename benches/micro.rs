//! Micro benchmarks (criterion) of the pure work done per fetch: decoding the answer, parsing
//! `api_info`, normalizing the item and hashing its content, and the whole judge step.
//!
//! `cargo bench --bench micro` (criterion's own flags after `--`, e.g. `-- decode`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use douyin_watch::api_info::ApiInfo;
use douyin_watch::attempt::{Exchange, judge};
use douyin_watch::content::Content;
use douyin_watch::response::decode;
use douyin_watch::video_id::VideoId;

const OK: &[u8] = include_bytes!("../tests/fixtures/item_get_video.ok.json");
const API_INFO: &str = "today:39 max:10000 all[104=39+33+32];expires:2030-12-31";
const FIXTURE_ID: &str = "7118694749548072205";

fn benches(c: &mut Criterion) {
    c.bench_function("decode fixture answer", |b| {
        b.iter(|| decode(black_box(OK)).expect("the fixture decodes"))
    });
    c.bench_function("parse api_info", |b| {
        b.iter(|| ApiInfo::parse(black_box(API_INFO)).expect("api_info parses"))
    });
    let item = decode(OK)
        .expect("the fixture decodes")
        .item
        .expect("it has an item");
    c.bench_function("normalize item", |b| {
        b.iter(|| Content::from_item(black_box(&item)))
    });
    let content = Content::from_item(&item);
    c.bench_function("content hash", |b| b.iter(|| black_box(&content).hash()));
    c.bench_function("normalize + content hash", |b| {
        b.iter(|| Content::from_item(black_box(&item)).hash())
    });
    let id = VideoId::parse(FIXTURE_ID).expect("a valid id");
    c.bench_function("judge fixture answer (decode + policy)", |b| {
        b.iter(|| {
            judge(
                black_box(&id),
                Exchange::Answered {
                    status: 200,
                    body: black_box(OK),
                },
            )
        })
    });
}

criterion_group!(micro, benches);
criterion_main!(micro);
