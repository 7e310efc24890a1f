// Verifies the audit log's hash chain (db/migrations/085_audit_chain.sql) outside the database:
// the rows are read as plain texts (the fields JSON-encoded by PostgreSQL's to_jsonb, as the
// seal encodes them) and each hash is recomputed here with node:crypto, so a database whose
// triggers or functions were tampered with cannot vouch for itself. The head (the
// last row's position and hash) can be exported and kept elsewhere; verifying against a kept
// head also catches a rewrite of the whole chain after it.
import { createHash } from "node:crypto";
import type { Queryable } from "../db/pool.js";

export const GENESIS = "genesis";

/** The last sealed row of the chain: keep it somewhere else to check the log against later. */
export interface ChainHead {
  chain_seq: number;
  id: number;
  hash: string;
}

export interface ChainBreak {
  /** The audit row (its id) where the chain stops holding, and its place in the chain. */
  id: number;
  chain_seq: number | null;
  reason: string;
}

export interface ChainReport {
  ok: boolean;
  rows: number;
  head: ChainHead | null;
  /** The first row where the chain breaks (null when it holds). */
  broken: ChainBreak | null;
}

interface ChainRow {
  id: string;
  chain_seq: string | null;
  prev_hash: string | null;
  hash: string | null;
  at_text: string;
  /** actor_id, action, entity, entity_id and details as JSON text, as the database gives them. */
  actor: string;
  action: string;
  entity: string;
  entity_id: string;
  details: string;
}

/** The hashed text of a row, exactly as the migration's audit_log_digest() builds it. */
export function rowDigest(prev: string, seq: number, r: Omit<ChainRow, "chain_seq" | "prev_hash" | "hash">): string {
  const text = [prev, String(seq), r.id, r.at_text, r.actor, r.action, r.entity, r.entity_id, r.details].join("\u001f");
  return createHash("sha256").update(text, "utf8").digest("hex");
}

const BATCH = 5000;

// Numbers come back as text (bigint), the content fields as the JSON text the seal hashes.
const COLUMNS = `id::text, chain_seq::text, prev_hash, hash,
  to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at_text,
  coalesce(to_jsonb(actor_id)::text, 'null') AS actor, to_jsonb(action)::text AS action,
  to_jsonb(entity)::text AS entity, coalesce(to_jsonb(entity_id)::text, 'null') AS entity_id, details::text AS details`;

/**
 * Walks the whole chain in chain order. Stops at the first row that does not hold: a hash that
 * does not match the row's content, a previous-hash link that does not match the row before, a
 * gap in the sequence (a deleted row), an unsealed row, or (with `expectHead`) a kept head that
 * is not in the chain as it was.
 */
export async function verifyAuditChain(db: Queryable, expectHead?: { chain_seq: number; hash: string }): Promise<ChainReport> {
  let prev = GENESIS;
  let expectedSeq = 1;
  let rows = 0;
  let head: ChainHead | null = null;
  let headSeen = expectHead === undefined;
  for (let after = 0; ; ) {
    // Sealed rows in chain order, by the unique index; rows never sealed are looked at after.
    const { rows: batch } = await db.query<ChainRow>(
      `SELECT ${COLUMNS} FROM audit_log WHERE audit_log.chain_seq > $1 ORDER BY audit_log.chain_seq LIMIT ${BATCH}`,
      [after],
    );
    for (const r of batch) {
      const id = Number(r.id);
      const seq = r.chain_seq === null ? null : Number(r.chain_seq);
      const fail = (reason: string): ChainReport => ({ ok: false, rows, head, broken: { id, chain_seq: seq, reason } });
      if (seq === null || r.hash === null) return fail("the row is not sealed into the chain"); // chain_seq set, hash not
      if (seq !== expectedSeq) return fail(`chain position ${seq} follows ${expectedSeq - 1}: ${seq - expectedSeq} row(s) before it are missing`);
      if (r.prev_hash !== prev) return fail("its link to the row before does not match that row's hash");
      if (rowDigest(prev, seq, r) !== r.hash) return fail("its content does not match its hash (the row was changed)");
      if (expectHead && seq === expectHead.chain_seq) {
        if (r.hash !== expectHead.hash) return fail("the kept head's hash differs from this row's: the chain was rewritten up to here");
        headSeen = true;
      }
      prev = r.hash;
      expectedSeq++;
      rows++;
      head = { chain_seq: seq, id, hash: r.hash };
    }
    if (batch.length < BATCH) break;
    after = head?.chain_seq ?? 0;
  }
  const unsealed = await db.query<{ id: string }>("SELECT id::text FROM audit_log WHERE chain_seq IS NULL OR hash IS NULL ORDER BY id LIMIT 1");
  if (unsealed.rows[0]) {
    return { ok: false, rows, head, broken: { id: Number(unsealed.rows[0].id), chain_seq: null, reason: "the row is not sealed into the chain" } };
  }
  if (!headSeen) {
    return { ok: false, rows, head, broken: { id: head?.id ?? 0, chain_seq: head?.chain_seq ?? null, reason: `the kept head (position ${expectHead!.chain_seq}) is beyond the chain's end: rows were removed` } };
  }
  return { ok: true, rows, head, broken: null };
}

/** The chain's head as it is now (null for an empty log). */
export async function auditChainHead(db: Queryable): Promise<ChainHead | null> {
  const { rows } = await db.query<{ chain_seq: string; id: string; hash: string }>(
    "SELECT chain_seq::text, id::text, hash FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY audit_log.chain_seq DESC LIMIT 1",
  );
  const r = rows[0];
  return r ? { chain_seq: Number(r.chain_seq), id: Number(r.id), hash: r.hash } : null;
}
