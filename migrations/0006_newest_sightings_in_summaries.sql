-- Performance (issue 5): a fetch that sees a video's newest version again rewrites that video's
-- summary row (a few hundred bytes) instead of the version's own row (about 4 KB with `raw`, over
-- two pages, read and written back whole because `seen_count` moved).
--
-- Only a video's newest version is ever seen again, so its `last_seen_at` and `seen_count` now
-- live in its `latest_snapshot_summaries` row, which also gains the `content_hash` a fetch
-- compares with. The table of versions is renamed `snapshot_versions`, and `snapshots` becomes a
-- view of it that takes those two columns from the summary for the newest version: every query
-- that read `snapshots` reads what it read before. When a newer version arrives, the older one's
-- figures are written back to its own row ("settled"), where they stay.

ALTER TABLE latest_snapshot_summaries ADD COLUMN content_hash TEXT;  -- the version's content_hash
UPDATE latest_snapshot_summaries
SET content_hash = (SELECT s.content_hash FROM snapshots AS s
                    WHERE s.id = latest_snapshot_summaries.id);

DROP TRIGGER latest_snapshot_summaries_on_insert;
DROP TRIGGER latest_snapshot_summaries_on_seen;
DROP TRIGGER latest_snapshot_summaries_on_edit;
DROP TRIGGER latest_snapshot_summaries_on_delete;

-- SQLite rewrites the references to it: the `latest_snapshots` view, `fetches.snapshot_id`.
ALTER TABLE snapshots RENAME TO snapshot_versions;

-- Every version of every video. For a video's newest version, `last_seen_at` and `seen_count`
-- in `snapshot_versions` are those of when it was stored; the summary has them as they are.
CREATE VIEW snapshots AS
SELECT v.id,
       v.video_id,
       v.version,
       v.content_hash,
       v.first_seen_at,
       COALESCE(l.last_seen_at, v.last_seen_at) AS last_seen_at,
       COALESCE(l.seen_count, v.seen_count)     AS seen_count,
       v.title,
       v.nick,
       v.signature,
       v.detail_url,
       v.item_type,
       v.author_uid,
       v.short_id,
       v.video_url,
       v.video_url_raw,
       v.cover_url,
       v.music_title,
       v.music_nick,
       v.music_url,
       v.music_cover_url,
       v.item_imgs,
       v.raw,
       v.changed_fields
FROM snapshot_versions AS v
LEFT JOIN latest_snapshot_summaries AS l ON l.id = v.id;

-- A new newest version: the one it replaces keeps its sightings in its own row (written only if
-- they moved since it was stored), then the summary moves to the new one.
CREATE TRIGGER latest_snapshot_summaries_on_insert AFTER INSERT ON snapshot_versions
WHEN NEW.version >= COALESCE((SELECT version FROM latest_snapshot_summaries
                              WHERE video_id = NEW.video_id), 0)
BEGIN
    UPDATE snapshot_versions
    SET (last_seen_at, seen_count) = (SELECT l.last_seen_at, l.seen_count
                                      FROM latest_snapshot_summaries AS l
                                      WHERE l.id = snapshot_versions.id)
    WHERE id = (SELECT id FROM latest_snapshot_summaries WHERE video_id = NEW.video_id)
      AND id <> NEW.id
      AND (last_seen_at, seen_count) IS NOT (SELECT l.last_seen_at, l.seen_count
                                             FROM latest_snapshot_summaries AS l
                                             WHERE l.id = snapshot_versions.id);
    INSERT OR REPLACE INTO latest_snapshot_summaries
        (id, video_id, version, first_seen_at, last_seen_at, seen_count, title, nick, item_type,
         author_uid, short_id, music_title, music_nick, changed_fields, content_hash)
    VALUES (NEW.id, NEW.video_id, NEW.version, NEW.first_seen_at, NEW.last_seen_at,
            NEW.seen_count, NEW.title, NEW.nick, NEW.item_type, NEW.author_uid, NEW.short_id,
            NEW.music_title, NEW.music_nick, NEW.changed_fields, NEW.content_hash);
END;

-- douyin-watch never changes a version's content nor deletes one; if someone does, the newest
-- versions concerned are settled and their summaries made again from the newest of each video.
CREATE TRIGGER latest_snapshot_summaries_on_edit
AFTER UPDATE OF id, video_id, version, content_hash, first_seen_at, title, nick, item_type,
    author_uid, short_id, music_title, music_nick, changed_fields ON snapshot_versions
BEGIN
    UPDATE snapshot_versions
    SET (last_seen_at, seen_count) = (SELECT l.last_seen_at, l.seen_count
                                      FROM latest_snapshot_summaries AS l
                                      WHERE l.id = snapshot_versions.id)
    WHERE id IN (SELECT id FROM latest_snapshot_summaries
                 WHERE video_id IN (OLD.video_id, NEW.video_id));
    DELETE FROM latest_snapshot_summaries WHERE video_id IN (OLD.video_id, NEW.video_id);
    INSERT INTO latest_snapshot_summaries
        (id, video_id, version, first_seen_at, last_seen_at, seen_count, title, nick, item_type,
         author_uid, short_id, music_title, music_nick, changed_fields, content_hash)
    SELECT id, video_id, version, first_seen_at, last_seen_at, seen_count, title, nick,
           item_type, author_uid, short_id, music_title, music_nick, changed_fields, content_hash
    FROM snapshot_versions AS s
    WHERE s.video_id IN (OLD.video_id, NEW.video_id)
      AND s.version = (SELECT MAX(version) FROM snapshot_versions AS n
                       WHERE n.video_id = s.video_id);
END;

CREATE TRIGGER latest_snapshot_summaries_on_delete AFTER DELETE ON snapshot_versions
BEGIN
    UPDATE snapshot_versions
    SET (last_seen_at, seen_count) = (SELECT l.last_seen_at, l.seen_count
                                      FROM latest_snapshot_summaries AS l
                                      WHERE l.id = snapshot_versions.id)
    WHERE id = (SELECT id FROM latest_snapshot_summaries WHERE video_id = OLD.video_id);
    DELETE FROM latest_snapshot_summaries WHERE video_id = OLD.video_id;
    INSERT INTO latest_snapshot_summaries
        (id, video_id, version, first_seen_at, last_seen_at, seen_count, title, nick, item_type,
         author_uid, short_id, music_title, music_nick, changed_fields, content_hash)
    SELECT id, video_id, version, first_seen_at, last_seen_at, seen_count, title, nick,
           item_type, author_uid, short_id, music_title, music_nick, changed_fields, content_hash
    FROM snapshot_versions AS s
    WHERE s.video_id = OLD.video_id
      AND s.version = (SELECT MAX(version) FROM snapshot_versions AS n
                       WHERE n.video_id = s.video_id);
END;
