-- A tamper-evident audit log: every row carries the hash of the row before it and its own
-- (a hash chain), so a row changed, inserted or deleted behind the application's back (for
-- example by a database owner who switched the append-only triggers off) breaks the chain at
-- that row. `medloop audit verify` and GET /api/audit/verify recompute the chain outside the
-- database (services/auditChain.ts); the chain's head can be exported and kept elsewhere, which
-- also catches a rewrite of the whole chain after it.
--
-- A row is sealed when its transaction commits (a deferred constraint trigger), under a
-- transaction-scoped advisory lock: rows take their place in the chain (`chain_seq`) in commit
-- order, one at a time, so concurrent writers never fork it. The seal is the only UPDATE the
-- append-only trigger lets through: it fills the three chain columns of a row that has none and
-- changes nothing else.
--
-- The hashed text (also written out in services/auditChain.ts): the fields below joined by the
-- unit separator U+001F, SHA-256, lower-case hex:
--   prev_hash ('genesis' for the first row), chain_seq, id, at as UTC 'YYYY-MM-DDTHH:MI:SS.USZ',
--   then actor_id, action, entity, entity_id and details each as JSON text (to_jsonb()::text,
--   'null' when missing), so a missing value differs from an empty one ("") and no text can
--   imitate the separator.
-- The advisory lock key is LOCK_KEYS.AUDIT_CHAIN of db/lockKeys.ts.

ALTER TABLE audit_log ADD COLUMN chain_seq bigint UNIQUE;
ALTER TABLE audit_log ADD COLUMN prev_hash text;
ALTER TABLE audit_log ADD COLUMN hash text;

CREATE FUNCTION audit_log_digest(prev text, seq bigint, r audit_log) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT encode(sha256(convert_to(
    prev || chr(31) || seq::text || chr(31) || r.id::text || chr(31) ||
    to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || chr(31) ||
    coalesce(to_jsonb(r.actor_id)::text, 'null') || chr(31) || to_jsonb(r.action)::text || chr(31) ||
    to_jsonb(r.entity)::text || chr(31) || coalesce(to_jsonb(r.entity_id)::text, 'null') || chr(31) ||
    r.details::text, 'UTF8')), 'hex')
$$;

-- The append-only rule, with the seal as its one exception.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
     AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id
     AND NEW.action = OLD.action AND NEW.entity = OLD.entity
     AND NEW.entity_id IS NOT DISTINCT FROM OLD.entity_id AND NEW.details = OLD.details THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE FUNCTION audit_log_seal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_seq bigint;
  last_hash text;
  sealed audit_log;
BEGIN
  PERFORM pg_advisory_xact_lock(740218116); -- LOCK_KEYS.AUDIT_CHAIN (db/lockKeys.ts)
  SELECT chain_seq, hash INTO last_seq, last_hash FROM audit_log
   WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1;
  SELECT * INTO sealed FROM audit_log WHERE id = NEW.id;
  UPDATE audit_log
     SET chain_seq = coalesce(last_seq, 0) + 1,
         prev_hash = coalesce(last_hash, 'genesis'),
         hash = audit_log_digest(coalesce(last_hash, 'genesis'), coalesce(last_seq, 0) + 1, sealed)
   WHERE id = NEW.id;
  RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER audit_log_seal AFTER INSERT ON audit_log
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_log_seal();

-- The rows written before the chain existed are sealed now, in id order.
DO $$
DECLARE
  r audit_log;
  seq bigint := 0;
  prev text := 'genesis';
  h text;
BEGIN
  FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
    seq := seq + 1;
    h := audit_log_digest(prev, seq, r);
    UPDATE audit_log SET chain_seq = seq, prev_hash = prev, hash = h WHERE id = r.id;
    prev := h;
  END LOOP;
END $$;
