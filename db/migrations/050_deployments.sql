-- Model deployments (serving/registry.ts): a named deployment has numbered versions, one per
-- approved model, each with its frozen artefacts (model.onnx, model.json) and model card; API keys
-- belong to the deployment (they survive new versions) and are stored only as salted SHA-256.

CREATE TABLE deployments (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deployment_versions (
  id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deployment_id  integer NOT NULL REFERENCES deployments(id),
  version        integer NOT NULL CHECK (version >= 1),
  -- Deploying an approved model twice gives back the same version.
  model_id       integer NOT NULL UNIQUE REFERENCES models(id),
  artifact_uri   text NOT NULL,
  onnx_sha256    text NOT NULL,
  model_meta     jsonb NOT NULL,
  card           jsonb NOT NULL,
  card_markdown  text NOT NULL,
  status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
  deployed_by    integer REFERENCES users(id),
  deployed_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (deployment_id, version)
);

CREATE TABLE deployment_keys (
  id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deployment_id  integer NOT NULL REFERENCES deployments(id),
  label          text NOT NULL DEFAULT '',
  prefix         text NOT NULL UNIQUE,
  salt           text NOT NULL,
  key_hash       text NOT NULL,
  created_by     integer REFERENCES users(id),
  created_at     timestamptz NOT NULL DEFAULT now(),
  revoked_at     timestamptz
);
CREATE INDEX deployment_keys_deployment_idx ON deployment_keys(deployment_id);
