-- The ingest contract (docs/ingest.md): every image format it reads, FOV masks stored beside the
-- reference masks, and whether a reference mask came from a lossy file (thresholded at half scale).
ALTER TABLE images DROP CONSTRAINT images_format_check;
ALTER TABLE images ADD CONSTRAINT images_format_check
  CHECK (format IN ('png', 'jpeg', 'tiff', 'gif', 'bmp', 'pnm', 'webp'));
ALTER TABLE images
  ADD COLUMN mask_lossy boolean NOT NULL DEFAULT false,
  ADD COLUMN fov_uri    text,
  ADD COLUMN fov_sha256 text;
