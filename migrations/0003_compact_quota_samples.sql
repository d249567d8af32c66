-- Performance (issue 5): a quota sample in about 60 bytes instead of 220.
--
-- `quota_samples` becomes a view with the same columns, over `quota_readings`, which keeps only
-- what the fetch row does not already hold:
--   * `observed_at` is the fetch's `started_at` (0001 stored its `finished_at`, a fraction of a
--     second later): onebound counts a call when it arrives, and `fetches_by_time` then serves
--     every time range on samples; `quota_day` is its Beijing date;
--   * `id` is the fetch's id (one sample per answered fetch);
--   * `api_info` is NULL when the text reads exactly as the view writes the parsed figures back
--     ("today:39 max:10000 all[104=39+33+32];expires:2030-12-31"), which is what onebound sends;
--     any other text is kept as sent.

CREATE TABLE quota_readings (
    fetch_id          INTEGER PRIMARY KEY REFERENCES fetches (id),  -- the answer it came from
    server_time       TEXT,                                -- onebound's server_time, as sent
    calls_today       INTEGER,                             -- NULL where api_info left the part empty
    calls_max         INTEGER,
    calls_total       INTEGER,
    calls_total_parts TEXT,                                -- JSON array of the numbers after '=' in all[...]
    expires_on        TEXT,                                -- the key's expiry date (YYYY-MM-DD)
    api_info          TEXT                                 -- the text as sent (first 1024 characters); NULL when the view rebuilds it exactly
);

-- Every sample, with `api_info` kept for now; the copy's NULLs come after the view exists.
CREATE TEMP TABLE sent_api_info AS SELECT fetch_id, api_info FROM quota_samples;
INSERT INTO quota_readings (fetch_id, server_time, calls_today, calls_max, calls_total,
                            calls_total_parts, expires_on, api_info)
SELECT fetch_id, server_time, calls_today, calls_max, calls_total, calls_total_parts, expires_on,
       NULL
FROM quota_samples;

DROP INDEX quota_samples_by_time;
DROP TABLE quota_samples;

-- The call quota, from every answer's `api_info`: one row per answered fetch.
CREATE VIEW quota_samples AS
SELECT q.fetch_id                     AS id,
       q.fetch_id                     AS fetch_id,
       f.started_at                   AS observed_at,  -- when the call that got the answer started
       date(f.started_at, '+8 hours') AS quota_day,    -- Beijing date of observed_at (YYYY-MM-DD)
       q.server_time,
       q.calls_today,
       q.calls_max,
       q.calls_total,
       q.calls_total_parts,
       q.expires_on,
       COALESCE(q.api_info,
                'today:' || COALESCE(q.calls_today, '') || ' max:' || COALESCE(q.calls_max, '')
                || CASE WHEN q.calls_total IS NULL OR q.calls_total_parts IS NULL THEN ''
                        ELSE ' all[' || q.calls_total || '='
                             || replace(trim(q.calls_total_parts, '[]'), ',', '+') || ']' END
                || CASE WHEN q.expires_on IS NULL THEN '' ELSE ';expires:' || q.expires_on END)
                                      AS api_info
FROM quota_readings AS q
JOIN fetches AS f ON f.id = q.fetch_id;

-- Keep the text of every sample the view would not rebuild exactly.
UPDATE quota_readings
SET api_info = (SELECT s.api_info FROM temp.sent_api_info AS s
                WHERE s.fetch_id = quota_readings.fetch_id)
WHERE fetch_id IN (SELECT v.id FROM quota_samples AS v
                   JOIN temp.sent_api_info AS s ON s.fetch_id = v.id
                   WHERE v.api_info IS NOT s.api_info);
DROP TABLE temp.sent_api_info;
