-- A `0000` answer that could not be used (the item of another video, no item at all) is a
-- failure stored with `error_code = '0000'` and our key in `error` (`item_mismatch`,
-- `missing_item`, ...). It was grouped under `0000` with the meaning "success", which hid the
-- key that says what went wrong. The failure key is now `error_code` unless that is `0000`,
-- then `error`: the same rule as `douyin-watch failures` and `videos.last_error_code`.

DROP VIEW failures_by_code;
CREATE VIEW failures_by_code AS
SELECT COALESCE(NULLIF(f.error_code, '0000'), f.error, f.outcome) AS code,
       COUNT(*)                                   AS count,
       MIN(f.started_at)                          AS first_at,
       MAX(f.started_at)                          AS last_at,
       MAX(f.charged)                             AS charged,
       COALESCE(c.status || ' (' || c.meaning || ')', f.outcome) AS meaning
FROM failures AS f
LEFT JOIN error_codes AS c ON c.code = NULLIF(f.error_code, '0000')
GROUP BY 1;

-- Videos whose last failure was such an answer get its key.
UPDATE videos
SET last_error_code = COALESCE(
        (SELECT f.error FROM fetches AS f
         WHERE f.video_id = videos.video_id AND f.error_code = '0000' AND f.error IS NOT NULL
         ORDER BY f.id DESC LIMIT 1),
        last_error_code)
WHERE last_error_code = '0000';
