-- Performance (issue 5): one index fewer to move on every fetch.
--
-- Every fetch sets its video's `last_fetched_at`, which moved the video's entry in
-- `videos_by_last_fetch` (a delete and an insert in that index). The one query that read the
-- index, the due list of a pass (`WHERE active = 1 ORDER BY last_fetched_at IS NOT NULL,
-- last_fetched_at, video_id`), sorts every active video anyway, since the order is not the
-- index's: without it SQLite reads the table straight through and sorts the same rows. A query
-- for the videos not fetched lately reads the whole table either way at a watch list's size.
DROP INDEX videos_by_last_fetch;
