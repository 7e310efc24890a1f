-- The doctor's actions in the editor, sent with each submission and stored with the version:
-- a JSON array of {tool, clicks, travel_px, path_px, width_px, ms} (services/correction/effort.ts
-- `Action`), from which the action-level effort model prices the correction. NULL for versions
-- stored before actions were recorded, for predictions, and for clients that send none.
ALTER TABLE annotation_versions ADD COLUMN actions jsonb;
