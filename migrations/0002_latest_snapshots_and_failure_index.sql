-- Performance (issue 5). Same tables, same view names and columns; faster plans, smaller writes.

-- The newest version of every video that has one. 0001 grouped all of `snapshots` by video to
-- find each newest version, reading every version of every video; this finds it with one seek in
-- the UNIQUE (video_id, version) index per video. Every snapshot's video is in `videos` (foreign
-- key), so no video with a snapshot is left out.
DROP VIEW latest_snapshots;
CREATE VIEW latest_snapshots AS
SELECT s.*
FROM videos AS v
JOIN snapshots AS s
  ON s.id = (SELECT newest.id FROM snapshots AS newest
             WHERE newest.video_id = v.video_id
             ORDER BY newest.version DESC LIMIT 1);

-- 0001 indexed the code of every attempt, so each successful fetch ("0000") added an entry that
-- no query wants. Failures are what is looked up by time and code (the `failures` and
-- `failures_by_code` views, `douyin-watch failures`): index only them.
DROP INDEX fetches_by_error_code;
CREATE INDEX failures_by_time ON fetches (started_at, error_code)
WHERE outcome NOT IN ('ok', 'skipped');
