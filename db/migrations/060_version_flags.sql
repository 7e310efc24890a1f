-- Flags on annotation versions: a doctor's finished mask is stored even when the timing it came
-- with is odd for reasons that are not the doctor's (a slow or wrongly set clock on their
-- machine). The server clamps the timing and names what it changed here, e.g.
-- 'active_ms_clamped' (active time longer than the time between started_at and ended_at),
-- 'ended_before_started', 'started_at_in_future', 'ended_at_in_future'. The values as sent are
-- kept in the submission's audit entry. Reports count and mark flagged versions.
ALTER TABLE annotation_versions ADD COLUMN flags text[] NOT NULL DEFAULT '{}';
