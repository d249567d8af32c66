-- A pass asks every few seconds which videos `watch remove` took off the list since it started,
-- so that it makes no further (paid) call for them. Removed videos are few: this index holds only
-- them, and the per-fetch updates of active videos never touch it.
CREATE INDEX videos_removed_by_time ON videos (removed_at) WHERE active = 0;

-- Videos of the pass's list that were removed before their call: neither fetched nor skipped
-- (a skip means the pass stopped early).
ALTER TABLE passes ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
