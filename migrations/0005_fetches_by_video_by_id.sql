-- Performance (issue 5): a smaller index entry per fetch.
--
-- 0001 indexed each fetch's video with its `started_at` (24 characters). An index entry always
-- carries the row's id, and ids follow the order fetches were stored in (time order, to within
-- the milliseconds of one group commit), so (video_id) alone lists a video's fetches in that
-- order, in about 25 fewer bytes per fetch.
DROP INDEX fetches_by_video;
CREATE INDEX fetches_by_video ON fetches (video_id);
