-- E-mailed task links (issue 10): each link carries a random nonce whose SHA-256 is recorded
-- here when the mail is written, and is burnt when the link is exchanged for a session, in the
-- same transaction that opens the session. A link therefore opens one session only, and a newer
-- link for the same task (a reminder, a reassignment) voids the older unused ones. The nonce
-- itself is never stored: a leaked database holds no usable link.
CREATE TABLE task_links (
  id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task_id        integer NOT NULL REFERENCES tasks(id),
  doctor_id      integer NOT NULL REFERENCES users(id),
  nonce_hash     text NOT NULL UNIQUE CHECK (nonce_hash ~ '^[0-9a-f]{64}$'),
  issued_at      timestamptz NOT NULL,
  expires_at     timestamptz NOT NULL CHECK (expires_at > issued_at),
  -- Set when the link was exchanged (it opened a session) ...
  used_at        timestamptz,
  -- ... or when it was voided before, and why: 'superseded' (a newer link of the task was issued).
  revoked_at     timestamptz,
  revoked_reason text,
  CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX task_links_task_idx ON task_links(task_id);

-- A session's scope: NULL for a full session (password login); a task id for the session an
-- e-mailed link opened, which may read and submit that task only (api/taskScope.ts).
ALTER TABLE sessions ADD COLUMN task_id integer REFERENCES tasks(id);
