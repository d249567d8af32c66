-- An answer to a call that started just after Beijing midnight, from a server whose clock was
-- still on the day before (its `server_time`), carries the figures of the day before: a `today`
-- at the max there made the new day look used up, and every pass of it stopped at the quota
-- reserve. `quota_day` is now the day the figures count against, the rule of `counted_day` in
-- src/quota.rs: the Beijing date of `observed_at`, or the day before when the call started
-- within 10 minutes after midnight and `server_time` ("Beijing/YYYY-MM-DD HH:MM:SS") is on that
-- day. Every other column is as 0003 made it.

DROP VIEW quota_samples;
CREATE VIEW quota_samples AS
SELECT q.fetch_id                     AS id,
       q.fetch_id                     AS fetch_id,
       f.started_at                   AS observed_at,  -- when the call that got the answer started
       CASE WHEN substr(q.server_time, 1, 8) = 'Beijing/'
                 AND substr(q.server_time, 9, 10) = date(f.started_at, '+8 hours', '-10 minutes')
            THEN substr(q.server_time, 9, 10)
            ELSE date(f.started_at, '+8 hours') END
                                      AS quota_day,    -- Beijing date the figures count against
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
