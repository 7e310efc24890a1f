-- Quality control (issue 14): several annotators per image with a consensus version, a reviewer
-- who accepts or returns a submitted mask, and honeypot tasks scored against a reference mask.

-- A consensus version is made from several doctors' masks by STAPLE or majority vote (the gpu
-- activity `consensus_masks`); like a prediction it has no author.
ALTER TABLE annotation_versions DROP CONSTRAINT annotation_versions_kind_check;
ALTER TABLE annotation_versions ADD CONSTRAINT annotation_versions_kind_check
  CHECK (kind IN ('manual', 'prediction', 'correction', 'consensus'));
ALTER TABLE annotation_versions DROP CONSTRAINT annotation_versions_check;
ALTER TABLE annotation_versions ADD CONSTRAINT annotation_versions_author_check
  CHECK ((kind IN ('prediction', 'consensus')) = (author_id IS NULL));
ALTER TABLE annotation_versions ADD COLUMN consensus_method text CHECK (consensus_method IN ('staple', 'majority'));
ALTER TABLE annotation_versions ADD CONSTRAINT annotation_versions_consensus_kind_check
  CHECK ((kind = 'consensus') = (consensus_method IS NOT NULL));
-- One consensus per image, campaign and round: a retried activity records it once.
CREATE UNIQUE INDEX annotation_versions_consensus_uq ON annotation_versions(image_id, campaign_id, round)
  WHERE kind = 'consensus';

-- The annotators' versions a consensus was made from, with each annotator's sensitivity and
-- specificity as STAPLE estimated them (majority vote: measured against the consensus); null where
-- undefined (STAPLE on masks that are all empty gives no estimate).
CREATE TABLE consensus_sources (
  consensus_id  integer NOT NULL REFERENCES annotation_versions(id),
  version_id    integer NOT NULL REFERENCES annotation_versions(id),
  annotator_id  integer NOT NULL REFERENCES users(id),
  sensitivity   double precision CHECK (sensitivity BETWEEN 0 AND 1),
  specificity   double precision CHECK (specificity BETWEEN 0 AND 1),
  PRIMARY KEY (consensus_id, version_id)
);

-- Reviewers accept or return submitted masks; a task waits for the review in `in_review`.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('lab_lead', 'doctor', 'auditor', 'admin', 'reviewer'));
ALTER TABLE tasks DROP CONSTRAINT tasks_state_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_state_check
  CHECK (state IN ('pending', 'open', 'submitted', 'in_review', 'done', 'cancelled'));
-- Honeypot tasks carry a reference mask the doctor is scored against; never shown as such.
ALTER TABLE tasks ADD COLUMN honeypot boolean NOT NULL DEFAULT false;

CREATE TABLE reviews (
  id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task_id      integer NOT NULL REFERENCES tasks(id),
  -- The submitted version under review: one review per submission.
  version_id   integer NOT NULL UNIQUE REFERENCES annotation_versions(id),
  doctor_id    integer NOT NULL REFERENCES users(id),
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'returned', 'cancelled')),
  reviewer_id  integer REFERENCES users(id),
  comment      text,
  -- The marked region, image pixels: {"x", "y", "width", "height"}.
  region       jsonb,
  active_ms    bigint CHECK (active_ms >= 0),
  -- The reviewer's idempotency key: a retried decision is recognised.
  decision_id  text UNIQUE,
  reminders_sent integer NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now(),
  decided_at   timestamptz,
  CHECK ((state IN ('accepted', 'returned')) = (reviewer_id IS NOT NULL AND decided_at IS NOT NULL)),
  CHECK (state <> 'returned' OR length(coalesce(comment, '')) > 0)
);
CREATE INDEX reviews_task_idx ON reviews(task_id);
CREATE INDEX reviews_state_idx ON reviews(state);

-- A honeypot task's submission scored against the image's reference mask.
CREATE TABLE honeypot_scores (
  task_id      integer PRIMARY KEY REFERENCES tasks(id),
  version_id   integer NOT NULL REFERENCES annotation_versions(id),
  doctor_id    integer NOT NULL REFERENCES users(id),
  campaign_id  integer REFERENCES campaigns(id),
  round        integer,
  dice         double precision NOT NULL,
  cldice       double precision,
  scored_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX honeypot_scores_doctor_idx ON honeypot_scores(doctor_id, scored_at);
