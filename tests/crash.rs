//! "A kill at any instant loses nothing": `douyin-watch fetch` is SIGKILLed again and again at
//! seeded pseudo-random instants in the middle of passes against the simulator process, then one
//! pass runs to its end, and the database must be whole: every fetch's rows were written in one
//! transaction, so a kill leaves either all of them or none.
//!
//! `DOUYIN_WATCH_SKIP_SLOW_TESTS=1` skips it.

mod support;

use std::time::Duration;

use support::{SimProcess, TestEnv, ids_starting, skip_slow_test};

/// Videos on the watch list: enough that one pass (16 in flight, ~125 ms an answer) takes
/// seconds, so every kill lands in the middle of a pass.
const VIDEOS: usize = 300;

/// How many `fetch` processes are killed.
const KILLS: usize = 12;

/// `api.concurrency` of the fetches.
const CONCURRENCY: usize = 16;

/// The simulator's credentials, which the fetches must send.
const KEY: &str = "crash-key";
const SECRET: &str = "crash-secret";

/// Seed of the kill instants (and the simulator's draws), so a failure can be replayed.
const SEED: u64 = 0x00c0_ffee_d00d;

/// A deterministic xorshift generator for the kill instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

#[test]
fn a_kill_at_any_instant_loses_nothing() {
    if skip_slow_test("a_kill_at_any_instant_loses_nothing") {
        return;
    }
    let seed = SEED.to_string();
    // Titles change every second charged fetch, so videos collect several versions while being
    // killed: the version numbering is under test, not just the first insert.
    let sim = SimProcess::start(&[
        "--key",
        KEY,
        "--secret",
        SECRET,
        "--latency",
        "100ms",
        "--latency-jitter",
        "50ms",
        "--change-every",
        "2",
        "--seed",
        &seed,
    ]);
    let mut env = TestEnv::new();
    env.set("API__BASE_URL", &sim.base_url())
        .set("API__KEY", KEY)
        .set("API__SECRET", SECRET)
        .set("API__CONCURRENCY", &CONCURRENCY.to_string())
        .set("API__RATE_PER_SEC", "1000")
        .set("LOG__LEVEL", "warn")
        // No retry tuning: every call is answered, so the defaults apply as in production.
        .unset("RETRY__BASE_DELAY")
        .unset("RETRY__MAX_DELAY");

    let watched = ids_starting(72, VIDEOS);
    let added = env.run_with_stdin(
        &["watch", "add", "--file", "-"],
        &(watched.join("\n") + "\n"),
    );
    assert_eq!(added.code, Some(0), "watch add: {added:?}");

    let mut rng = Rng(SEED);
    let mut kills = 0;
    for round in 1..=KILLS {
        let mut fetch = env.spawn(&["fetch"]);
        std::thread::sleep(Duration::from_millis(rng.between(100, 700)));
        if fetch.kill_if_running() {
            kills += 1;
        } else {
            // A pass takes seconds, so this should not happen; if it does, it must have succeeded.
            let status = fetch.try_wait().expect("ended");
            assert!(
                status.success(),
                "fetch {round} failed before the kill ({status}): {}",
                fetch.stderr()
            );
        }
    }
    assert!(
        kills >= 10,
        "only {kills} of {KILLS} fetches were still running when killed"
    );

    let last = env.run(&["fetch"]);
    assert_eq!(last.code, Some(0), "the fetch after the kills: {last:?}");

    let db = env.db();

    // The kills really happened mid-pass: passes were left open, with fetches stored in them.
    let open_passes = db.count("SELECT COUNT(*) FROM passes WHERE finished_at IS NULL");
    let fetches_in_open_passes = db.count(
        "SELECT COUNT(*) FROM fetches WHERE pass_id IN \
         (SELECT id FROM passes WHERE finished_at IS NULL)",
    );
    eprintln!(
        "{kills} kills; {open_passes} passes left open with {fetches_in_open_passes} fetches; \
         {} fetches, {} snapshots (newest version {}) in all",
        db.count("SELECT COUNT(*) FROM fetches"),
        db.count("SELECT COUNT(*) FROM snapshots"),
        db.count("SELECT COALESCE(MAX(version), 0) FROM snapshots"),
    );
    assert!(
        open_passes >= 1 && fetches_in_open_passes >= 1,
        "no kill interrupted a pass that had stored fetches \
         ({open_passes} open passes, {fetches_in_open_passes} fetches in them)"
    );
    let last_pass: Vec<(Option<String>, i64, i64)> =
        db.rows("SELECT finished_at, videos, fetched_ok FROM passes ORDER BY id DESC LIMIT 1");
    assert!(
        matches!(last_pass.as_slice(), [(Some(_), v, ok)] if *v == VIDEOS as i64 && *ok == VIDEOS as i64),
        "the final pass did not fetch every video: {last_pass:?}"
    );

    let integrity: Vec<(String,)> = db.rows("PRAGMA integrity_check");
    assert_eq!(
        integrity,
        vec![("ok".to_owned(),)],
        "PRAGMA integrity_check"
    );
    let foreign_keys: Vec<(String, Option<i64>, String, i64)> = db.rows("PRAGMA foreign_key_check");
    assert!(
        foreign_keys.is_empty(),
        "foreign key violations: {foreign_keys:?}"
    );

    let broken_versions: Vec<(String, i64, i64, i64, i64)> = db.rows(
        "SELECT video_id, COUNT(*), COUNT(DISTINCT version), MIN(version), MAX(version) \
         FROM snapshots GROUP BY video_id \
         HAVING MIN(version) != 1 OR MAX(version) != COUNT(*) OR COUNT(DISTINCT version) != COUNT(*)",
    );
    assert!(
        broken_versions.is_empty(),
        "versions not exactly 1..n (video, count, distinct, min, max): {broken_versions:?}"
    );
    assert!(
        db.count("SELECT COUNT(*) FROM snapshots WHERE version > 1") > 0,
        "no video got a second version, so versioning was not exercised"
    );

    let ok_without_snapshot: Vec<(i64, String, Option<i64>)> = db.rows(
        "SELECT f.id, f.video_id, f.snapshot_id FROM fetches AS f \
         LEFT JOIN snapshots AS s ON s.id = f.snapshot_id \
         WHERE f.outcome = 'ok' AND (f.snapshot_id IS NULL OR s.id IS NULL OR s.video_id != f.video_id)",
    );
    assert!(
        ok_without_snapshot.is_empty(),
        "ok fetches without their snapshot (fetch, video, snapshot_id): {ok_without_snapshot:?}"
    );

    assert_eq!(
        db.count("SELECT COUNT(*) FROM fetches WHERE finished_at IS NULL OR finished_at = ''"),
        0,
        "fetches without finished_at"
    );

    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM quota_samples AS q LEFT JOIN fetches AS f ON f.id = q.fetch_id \
             WHERE f.id IS NULL"
        ),
        0,
        "quota samples pointing at no fetch"
    );
    // The simulator puts api_info in every envelope, so each answered fetch has exactly one sample.
    let fetches_without_one_sample: Vec<(i64, i64)> = db.rows(
        "SELECT f.id, (SELECT COUNT(*) FROM quota_samples AS q WHERE q.fetch_id = f.id) AS n \
         FROM fetches AS f WHERE f.outcome = 'ok' AND n != 1",
    );
    assert!(
        fetches_without_one_sample.is_empty(),
        "ok fetches without exactly one quota sample (fetch, samples): {fetches_without_one_sample:?}"
    );

    // The snapshot's counters were written in the same transaction as the fetch that saw it.
    let inconsistent_snapshots: Vec<(i64, i64, i64, String, Option<String>)> = db.rows(
        "SELECT s.id, s.seen_count, COUNT(f.id), s.last_seen_at, MAX(f.finished_at) \
         FROM snapshots AS s LEFT JOIN fetches AS f ON f.snapshot_id = s.id \
         GROUP BY s.id \
         HAVING s.seen_count != COUNT(f.id) OR MAX(f.finished_at) IS NULL \
             OR s.last_seen_at != MAX(f.finished_at) OR s.first_seen_at != MIN(f.finished_at)",
    );
    assert!(
        inconsistent_snapshots.is_empty(),
        "snapshots whose seen_count/last_seen_at disagree with their fetches \
         (id, seen_count, fetches, last_seen_at, newest fetch): {inconsistent_snapshots:?}"
    );
    // Likewise the video row: its last fetch is the newest fetch stored for it.
    let inconsistent_videos: Vec<(String, Option<String>, Option<String>)> = db.rows(
        "SELECT v.video_id, v.last_fetched_at, \
                (SELECT MAX(f.finished_at) FROM fetches AS f WHERE f.video_id = v.video_id) AS newest \
         FROM videos AS v WHERE v.last_fetched_at IS NOT newest",
    );
    assert!(
        inconsistent_videos.is_empty(),
        "videos whose last_fetched_at is not their newest fetch: {inconsistent_videos:?}"
    );

    assert_eq!(
        db.count("SELECT COUNT(*) FROM videos WHERE active = 1"),
        VIDEOS as i64,
        "watched videos"
    );
    let without_snapshot: Vec<(String,)> = db.rows(
        "SELECT video_id FROM videos AS v \
         WHERE NOT EXISTS (SELECT 1 FROM snapshots AS s WHERE s.video_id = v.video_id)",
    );
    assert!(
        without_snapshot.is_empty(),
        "watched videos without any snapshot: {without_snapshot:?}"
    );
}
