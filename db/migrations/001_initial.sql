-- medloop data model: users and tokens, projects and images, tasks and annotation
-- versions, campaigns with their rounds and models, and the append-only audit log.

CREATE TABLE users (
  id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email         text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%@%'),
  name          text NOT NULL,
  role          text NOT NULL CHECK (role IN ('lab_lead', 'doctor', 'auditor', 'admin')),
  password_hash text NOT NULL,
  active        boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- Opaque bearer tokens; only their SHA-256 is stored.
CREATE TABLE sessions (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id     integer NOT NULL REFERENCES users(id),
  token_hash  text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX sessions_user_idx ON sessions(user_id);

CREATE TABLE projects (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  created_by  integer REFERENCES users(id),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE images (
  id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id     integer NOT NULL REFERENCES projects(id),
  name           text NOT NULL,
  role           text NOT NULL CHECK (role IN ('seed', 'pool', 'test')),
  format         text NOT NULL CHECK (format IN ('png', 'jpeg', 'tiff')),
  width          integer NOT NULL CHECK (width > 0),
  height         integer NOT NULL CHECK (height > 0),
  bytes          integer NOT NULL CHECK (bytes > 0),
  sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  original_uri   text NOT NULL,
  png_uri        text NOT NULL,
  thumb_uri      text NOT NULL,
  -- Reference ("truth") mask imported with the image, binary PNG 0/255 of the same size.
  mask_uri       text,
  mask_sha256    text,
  created_by     integer REFERENCES users(id),
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);
CREATE INDEX images_project_role_idx ON images(project_id, role);

CREATE TABLE campaigns (
  id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id   integer NOT NULL REFERENCES projects(id),
  name         text NOT NULL,
  config       jsonb NOT NULL DEFAULT '{}',
  state        text NOT NULL DEFAULT 'created'
               CHECK (state IN ('created', 'running', 'paused', 'stopping', 'stopped', 'completed', 'failed')),
  phase        text,
  round        integer NOT NULL DEFAULT 0,
  k            integer NOT NULL DEFAULT 2 CHECK (k > 0),
  workflow_id  text UNIQUE,
  created_by   integer REFERENCES users(id),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE models (
  id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  campaign_id  integer REFERENCES campaigns(id),
  round        integer,
  run_id       text,
  uri          text NOT NULL,
  onnx_uri     text,
  dataset_uri  text,
  metrics      jsonb NOT NULL DEFAULT '{}',
  approved     boolean NOT NULL DEFAULT false,
  approved_by  integer REFERENCES users(id),
  approved_at  timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (campaign_id, round)
);

CREATE TABLE rounds (
  id                 integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  campaign_id        integer NOT NULL REFERENCES campaigns(id),
  round              integer NOT NULL CHECK (round >= 0),
  phase              text NOT NULL DEFAULT 'started',
  model_id           integer REFERENCES models(id),
  metrics            jsonb NOT NULL DEFAULT '{}',
  selected_image_ids integer[] NOT NULL DEFAULT '{}',
  strategy           text,
  dataset_uri        text,
  started_at         timestamptz NOT NULL DEFAULT now(),
  finished_at        timestamptz,
  UNIQUE (campaign_id, round)
);

CREATE TABLE annotation_versions (
  id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  image_id        integer NOT NULL REFERENCES images(id),
  task_id         integer,  -- foreign key added below (tasks reference versions too)
  kind            text NOT NULL CHECK (kind IN ('manual', 'prediction', 'correction')),
  author_id       integer REFERENCES users(id),
  model_id        integer REFERENCES models(id),
  campaign_id     integer REFERENCES campaigns(id),
  round           integer,
  parent_id       integer REFERENCES annotation_versions(id),
  uri             text NOT NULL,
  prob_uri        text,
  uncertainty     double precision,
  width           integer NOT NULL,
  height          integer NOT NULL,
  foreground_pixels integer NOT NULL,
  -- Pixels that differ from the parent version (from an empty mask when there is none).
  pixels_changed  integer NOT NULL,
  active_ms       bigint CHECK (active_ms >= 0),
  started_at      timestamptz,
  submitted_at    timestamptz,
  edits           integer CHECK (edits >= 0),
  submission_id   text UNIQUE,
  mask_sha256     text NOT NULL,
  simulated       boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- Human work carries an author; a prediction carries its model (or at least no author).
  CHECK ((kind = 'prediction') = (author_id IS NULL))
);
CREATE INDEX annotation_versions_image_idx ON annotation_versions(image_id);
CREATE INDEX annotation_versions_task_idx ON annotation_versions(task_id);
-- One prediction per image and model: a retried activity records it once.
CREATE UNIQUE INDEX annotation_versions_prediction_uq ON annotation_versions(image_id, model_id)
  WHERE kind = 'prediction';

CREATE TABLE tasks (
  id                integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id        integer NOT NULL REFERENCES projects(id),
  image_id          integer NOT NULL REFERENCES images(id),
  campaign_id       integer REFERENCES campaigns(id),
  round             integer,
  kind              text NOT NULL CHECK (kind IN ('annotate', 'correct')),
  -- Null until the task workflow has picked a doctor (state 'pending').
  assignee_id       integer REFERENCES users(id),
  state             text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'open', 'submitted', 'done', 'cancelled')),
  due_at            timestamptz,
  workflow_id       text UNIQUE,
  -- The mask the doctor starts from (a prediction for correction tasks; none for annotate).
  start_version_id  integer REFERENCES annotation_versions(id),
  result_version_id integer REFERENCES annotation_versions(id),
  reminders_sent    integer NOT NULL DEFAULT 0,
  reassignments     integer NOT NULL DEFAULT 0,
  cancel_reason     text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CHECK (kind = 'annotate' OR start_version_id IS NOT NULL),
  CHECK (state = 'pending' OR state = 'cancelled' OR assignee_id IS NOT NULL)
);
CREATE INDEX tasks_assignee_idx ON tasks(assignee_id, state);
CREATE INDEX tasks_campaign_idx ON tasks(campaign_id, round);

ALTER TABLE annotation_versions
  ADD CONSTRAINT annotation_versions_task_fk FOREIGN KEY (task_id) REFERENCES tasks(id);

CREATE TABLE audit_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  actor_id   integer REFERENCES users(id),
  action     text NOT NULL,
  entity     text NOT NULL,
  entity_id  text,
  details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_entity_idx ON audit_log(entity, entity_id);

-- The audit log is append-only: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
