-- Performance (issue 5): `latest_snapshots` reads one compact table instead of seeking each
-- video's newest version among all versions (100,000 random reads over gigabytes).
--
-- `latest_snapshot_summaries` holds the short columns of every video's newest snapshot, kept by
-- the triggers below on every write to `snapshots`, by anyone. Query the `latest_snapshots`
-- view, which has the same columns as before: the long ones (URLs, `raw`, the hash) come from
-- `snapshots` only when a query asks for them.

CREATE TABLE latest_snapshot_summaries (
    id             INTEGER PRIMARY KEY,                    -- snapshots.id of the newest version
    video_id       TEXT NOT NULL UNIQUE REFERENCES videos (video_id),
    version        INTEGER NOT NULL,
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    seen_count     INTEGER NOT NULL,
    title          TEXT,
    nick           TEXT,
    item_type      TEXT,
    author_uid     TEXT,
    short_id       TEXT,
    music_title    TEXT,
    music_nick     TEXT,
    changed_fields TEXT NOT NULL
);

INSERT INTO latest_snapshot_summaries
SELECT id, video_id, version, first_seen_at, last_seen_at, seen_count, title, nick, item_type,
       author_uid, short_id, music_title, music_nick, changed_fields
FROM latest_snapshots;

-- A new version replaces its video's row (REPLACE: the UNIQUE video_id).
CREATE TRIGGER latest_snapshot_summaries_on_insert AFTER INSERT ON snapshots
WHEN NEW.version >= COALESCE((SELECT version FROM latest_snapshot_summaries
                              WHERE video_id = NEW.video_id), 0)
BEGIN
    INSERT OR REPLACE INTO latest_snapshot_summaries
    VALUES (NEW.id, NEW.video_id, NEW.version, NEW.first_seen_at, NEW.last_seen_at,
            NEW.seen_count, NEW.title, NEW.nick, NEW.item_type, NEW.author_uid, NEW.short_id,
            NEW.music_title, NEW.music_nick, NEW.changed_fields);
END;

-- A fetch that sees the newest version again moves its last_seen_at and seen_count.
CREATE TRIGGER latest_snapshot_summaries_on_seen
AFTER UPDATE OF last_seen_at, seen_count ON snapshots
BEGIN
    UPDATE latest_snapshot_summaries
    SET last_seen_at = NEW.last_seen_at, seen_count = NEW.seen_count
    WHERE id = NEW.id;
END;

-- douyin-watch never changes a version's content nor deletes one; if someone does, the summary
-- is made again from the newest version of each video concerned.
CREATE TRIGGER latest_snapshot_summaries_on_edit
AFTER UPDATE OF id, video_id, version, first_seen_at, title, nick, item_type, author_uid,
    short_id, music_title, music_nick, changed_fields ON snapshots
BEGIN
    DELETE FROM latest_snapshot_summaries WHERE video_id IN (OLD.video_id, NEW.video_id);
    INSERT INTO latest_snapshot_summaries
    SELECT id, video_id, version, first_seen_at, last_seen_at, seen_count, title, nick,
           item_type, author_uid, short_id, music_title, music_nick, changed_fields
    FROM snapshots AS s
    WHERE s.video_id IN (OLD.video_id, NEW.video_id)
      AND s.version = (SELECT MAX(version) FROM snapshots AS n WHERE n.video_id = s.video_id);
END;

CREATE TRIGGER latest_snapshot_summaries_on_delete AFTER DELETE ON snapshots
BEGIN
    DELETE FROM latest_snapshot_summaries WHERE video_id = OLD.video_id;
    INSERT INTO latest_snapshot_summaries
    SELECT id, video_id, version, first_seen_at, last_seen_at, seen_count, title, nick,
           item_type, author_uid, short_id, music_title, music_nick, changed_fields
    FROM snapshots AS s
    WHERE s.video_id = OLD.video_id
      AND s.version = (SELECT MAX(version) FROM snapshots AS n WHERE n.video_id = s.video_id);
END;

-- The newest version of every video that has one. The long columns are subqueries rather than a
-- join: SQLite evaluates each only when a query uses it, where it keeps a LEFT JOIN for
-- aggregates (`SELECT COUNT(*) ... WHERE title LIKE ...` would read every newest row again).
DROP VIEW latest_snapshots;
CREATE VIEW latest_snapshots AS
SELECT
       l.id,
       l.video_id,
       l.version,
       (SELECT s.content_hash FROM snapshots AS s WHERE s.id = l.id) AS content_hash,
       l.first_seen_at,
       l.last_seen_at,
       l.seen_count,
       l.title,
       l.nick,
       (SELECT s.signature FROM snapshots AS s WHERE s.id = l.id) AS signature,
       (SELECT s.detail_url FROM snapshots AS s WHERE s.id = l.id) AS detail_url,
       l.item_type,
       l.author_uid,
       l.short_id,
       (SELECT s.video_url FROM snapshots AS s WHERE s.id = l.id) AS video_url,
       (SELECT s.video_url_raw FROM snapshots AS s WHERE s.id = l.id) AS video_url_raw,
       (SELECT s.cover_url FROM snapshots AS s WHERE s.id = l.id) AS cover_url,
       l.music_title,
       l.music_nick,
       (SELECT s.music_url FROM snapshots AS s WHERE s.id = l.id) AS music_url,
       (SELECT s.music_cover_url FROM snapshots AS s WHERE s.id = l.id) AS music_cover_url,
       (SELECT s.item_imgs FROM snapshots AS s WHERE s.id = l.id) AS item_imgs,
       (SELECT s.raw FROM snapshots AS s WHERE s.id = l.id) AS raw,
       l.changed_fields
FROM latest_snapshot_summaries AS l;
