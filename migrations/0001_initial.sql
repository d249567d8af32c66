-- The first schema of douyin-watch. This file has shipped: never edit it, add a new migration.
-- Every timestamp is RFC 3339 UTC text with milliseconds ("2026-11-29T09:55:40.123Z"), so text order is time order.
-- "Quota day" means the Beijing (Asia/Shanghai) calendar date, the day onebound's counters reset on.

-- The watch list: one row per video id ever added.
CREATE TABLE videos (
    video_id             TEXT PRIMARY KEY NOT NULL,        -- Douyin's numeric id (onebound's num_iid), as text
    label                TEXT,                             -- free text given with `watch add --label`
    active               INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),  -- 0 once removed; history is kept
    added_at             TEXT NOT NULL,                    -- first added
    removed_at           TEXT,                             -- last removed (NULL while active)
    status               TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'ok', 'not_found', 'failing')),
    status_changed_at    TEXT,                             -- when status last took its current value
    last_fetched_at      TEXT,                             -- last time a call for it was answered or failed
    last_ok_at           TEXT,                             -- last successful fetch
    last_error_code      TEXT,                             -- error code (or failure key) of the last fetch; NULL after a success
    last_error           TEXT,                             -- one-line description of that failure
    consecutive_failures INTEGER NOT NULL DEFAULT 0        -- failed fetches since the last success
);
-- Passes take the oldest-fetched active videos first.
CREATE INDEX videos_by_last_fetch ON videos (active, last_fetched_at);

-- One row per collection pass (cron tick, `fetch`, or start-up run).
CREATE TABLE passes (
    id            INTEGER PRIMARY KEY,
    trigger       TEXT NOT NULL,                           -- 'schedule', 'start' or 'fetch'
    started_at    TEXT NOT NULL,
    finished_at   TEXT,                                    -- NULL while running (or if the process died)
    videos        INTEGER NOT NULL DEFAULT 0,              -- videos the pass set out to fetch
    fetched_ok    INTEGER NOT NULL DEFAULT 0,              -- videos that ended with a snapshot
    not_found     INTEGER NOT NULL DEFAULT 0,              -- videos answered 2000
    failed        INTEGER NOT NULL DEFAULT 0,              -- videos whose last attempt failed
    skipped       INTEGER NOT NULL DEFAULT 0,              -- videos not called (pass stopped, quota reserve, pause)
    new_versions  INTEGER NOT NULL DEFAULT 0,
    calls         INTEGER NOT NULL DEFAULT 0,              -- HTTP requests made
    charged_calls INTEGER NOT NULL DEFAULT 0,              -- answers onebound bills (0000, 2000)
    stopped_by    TEXT                                     -- why it stopped early: an account-level code ('4005'...), 'quota_reserve', 'paused', 'shutdown'
);

-- Versioned snapshots: a new row only when a video's normalized content changes.
CREATE TABLE snapshots (
    id              INTEGER PRIMARY KEY,
    video_id        TEXT NOT NULL REFERENCES videos (video_id),
    version         INTEGER NOT NULL,                      -- 1, 2, 3... per video
    content_hash    TEXT NOT NULL,                         -- blake3 of the normalized content below
    first_seen_at   TEXT NOT NULL,                         -- the fetch that produced this version
    last_seen_at    TEXT NOT NULL,                         -- the latest fetch that still saw it
    seen_count      INTEGER NOT NULL DEFAULT 1,            -- fetches that saw this version
    title           TEXT,
    nick            TEXT,                                  -- author's nickname
    signature       TEXT,                                  -- author's profile text
    detail_url      TEXT,                                  -- URLs are normalized: CDN shard, signature and tracking parameters removed
    item_type       TEXT,                                  -- onebound's `type` ("video", ...)
    author_uid      TEXT,
    short_id        TEXT,
    video_url       TEXT,
    video_url_raw   TEXT,
    cover_url       TEXT,
    music_title     TEXT,
    music_nick      TEXT,
    music_url       TEXT,
    music_cover_url TEXT,
    item_imgs       TEXT NOT NULL DEFAULT '[]',            -- JSON array of image URLs
    raw             TEXT NOT NULL,                         -- the `item` object exactly as the API sent it (JSON)
    changed_fields  TEXT NOT NULL DEFAULT '[]',            -- JSON array of the columns that differ from the previous version
    UNIQUE (video_id, version)
);

-- Every HTTP attempt, successful or not.
CREATE TABLE fetches (
    id          INTEGER PRIMARY KEY,
    pass_id     INTEGER REFERENCES passes (id),
    video_id    TEXT NOT NULL REFERENCES videos (video_id),
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    attempt     INTEGER NOT NULL,                          -- 1 for the first try in a pass, 2 for its first retry...
    outcome     TEXT NOT NULL
                CHECK (outcome IN ('ok', 'api_error', 'http_error', 'transport_error', 'decode_error', 'skipped')),
    http_status INTEGER,
    error_code  TEXT,                                      -- onebound's error_code ("0000", "2000", "4013"...), when the answer had one
    error       TEXT,                                      -- onebound's `error`, or our failure key: timeout, connect, http_502, not_json...
    reason      TEXT,                                      -- onebound's `reason` (often Chinese)
    message     TEXT,                                      -- one line saying what went wrong, with a body excerpt where useful
    charged     INTEGER NOT NULL DEFAULT 0 CHECK (charged IN (0, 1)),  -- 1 for answers onebound bills (0000 and 2000)
    request_id  TEXT,                                      -- onebound's request_id, for support tickets
    snapshot_id INTEGER REFERENCES snapshots (id)          -- the version this fetch saw (ok outcomes only)
);
CREATE INDEX fetches_by_video ON fetches (video_id, started_at);
CREATE INDEX fetches_by_time ON fetches (started_at);
CREATE INDEX fetches_by_error_code ON fetches (error_code, started_at) WHERE error_code IS NOT NULL;

-- The call quota, from every answer's `api_info`.
CREATE TABLE quota_samples (
    id                INTEGER PRIMARY KEY,
    fetch_id          INTEGER NOT NULL REFERENCES fetches (id),
    observed_at       TEXT NOT NULL,                       -- when the answer arrived
    quota_day         TEXT NOT NULL,                       -- Beijing date of observed_at (YYYY-MM-DD)
    server_time       TEXT,                                -- onebound's server_time, as sent ("Beijing/2022-09-29 14:25:29")
    calls_today       INTEGER,                             -- NULL where api_info left the part empty
    calls_max         INTEGER,
    calls_total       INTEGER,
    calls_total_parts TEXT,                                -- JSON array of the numbers after '=' in all[...]
    expires_on        TEXT,                                -- the key's expiry date (YYYY-MM-DD)
    api_info          TEXT NOT NULL                        -- the text as sent (first 1024 characters), kept even when it could not be parsed
);
CREATE INDEX quota_samples_by_time ON quota_samples (observed_at);

-- Times when the collector makes no calls at all: after 4013 until the quota resets, after other
-- account-level codes for retry.account_pause (doubling while they repeat).
CREATE TABLE pauses (
    id         INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    until      TEXT NOT NULL,                              -- no call before this instant (the next Beijing midnight)
    cause      TEXT NOT NULL,                              -- 'quota_exceeded' (after 4013) or 'account_error'
    error_code TEXT,
    message    TEXT NOT NULL
);

-- The newest version of every video that has one.
CREATE VIEW latest_snapshots AS
SELECT s.*
FROM snapshots AS s
JOIN (SELECT video_id, MAX(version) AS version FROM snapshots GROUP BY video_id) AS newest
  ON newest.video_id = s.video_id AND newest.version = s.version;

-- Every failed attempt.
CREATE VIEW failures AS
SELECT id, pass_id, video_id, started_at, finished_at, attempt, outcome, http_status,
       error_code, error, reason, message, charged, request_id
FROM fetches
WHERE outcome NOT IN ('ok', 'skipped');

-- Failed attempts grouped by code: onebound's error_code, or our failure key (timeout, http_502...) when there was none.
CREATE TABLE error_codes (
    code        TEXT PRIMARY KEY NOT NULL,
    status      TEXT NOT NULL,                             -- onebound's English status text
    meaning     TEXT NOT NULL,                             -- onebound's Chinese description
    charged     INTEGER NOT NULL CHECK (charged IN (0, 1)),
    policy      TEXT NOT NULL                              -- what douyin-watch does: success, not_found, transient, rate_limited, per_video, account
);
INSERT INTO error_codes (code, status, meaning, charged, policy) VALUES
    ('0000', 'success', '接口调用成功并返回相关数据', 1, 'success'),
    ('2000', 'Search success but no result', '接口访问成功,但是搜索没有结果', 1, 'not_found'),
    ('4000', 'Server internal error', '服务器内部错误', 0, 'transient'),
    ('4001', 'Network error', '网络错误', 0, 'transient'),
    ('4002', 'Target server error', '目标服务器错误', 0, 'transient'),
    ('4003', 'Param error', '用户输入参数错误', 0, 'per_video'),
    ('4004', 'Account not found', '用户帐号不存在', 0, 'account'),
    ('4005', 'Invalid authentication credentials', '授权失败', 0, 'account'),
    ('4006', 'API stopped', '您的当前API已停用', 0, 'account'),
    ('4007', 'Account stopped', '您的账户已停用', 0, 'account'),
    ('4008', 'API rate limit exceeded', '并发已达上限', 0, 'rate_limited'),
    ('4009', 'API maintenance', 'API维护中', 0, 'account'),
    ('4010', 'API not found with these values', 'API不存在', 0, 'account'),
    ('4012', 'Please add api first', '请先添加api', 0, 'account'),
    ('4013', 'Number of calls exceeded', '调用次数超限', 0, 'account'),
    ('4014', 'Missing url param', '参数缺失', 0, 'per_video'),
    ('4015', 'Wrong pageToken', '参数pageToken有误', 0, 'per_video'),
    ('4016', 'Insufficient balance', '余额不足', 0, 'account'),
    ('4017', 'timeout error', '请求超时', 0, 'transient'),
    ('5000', 'unknown error', '未知错误', 0, 'transient');

CREATE VIEW failures_by_code AS
SELECT COALESCE(f.error_code, f.error, f.outcome) AS code,
       COUNT(*)                                   AS count,
       MIN(f.started_at)                          AS first_at,
       MAX(f.started_at)                          AS last_at,
       MAX(f.charged)                             AS charged,
       COALESCE(c.status || ' (' || c.meaning || ')', f.outcome) AS meaning
FROM failures AS f
LEFT JOIN error_codes AS c ON c.code = f.error_code
GROUP BY 1;
