// E-mailed task links (issue 10): single-use, short-lived, valid only while their task is open
// and assigned to their doctor, and opening a session that reaches only that task.
//
// A link is `<MEDLOOP_PUBLIC_URL>/tasks/<id>?doctor=…&exp=…&nonce=…&sig=…` (services/mail.ts
// signs it). Issuing records the SHA-256 of its nonce in `task_links` and voids the task's older
// unused links, so the latest e-mail about a task holds its only live link; exchanging locks that
// row, checks the link and its task, marks the row used and opens the scoped session, all in one
// transaction, so two exchanges of one link cannot both succeed.
import { createHash, createHmac, randomBytes } from "node:crypto";
import { withTransaction, type Pool } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { issueToken } from "./auth.js";
import { AppError } from "./errors.js";
import { readTaskLink, signTaskLink, type TaskLinkClaims } from "./mail.js";
import type { User } from "./users.js";

/** Lifetime of the session a link opens: a working day on one task. */
export const TASK_LINK_SESSION_SECONDS = 8 * 3600;

export const hashNonce = (nonce: string): string => createHash("sha256").update(nonce).digest("hex");

export interface TaskLinkRecord {
  taskId: number;
  doctorId: number;
  nonceHash: string;
  issuedAt: Date;
  expiresAt: Date;
}

/** Where issued links are recorded: PostgreSQL (pgTaskLinkStore); a stand-in in workflow tests. */
export interface TaskLinkStore {
  /**
   * Records a link once per nonce and voids the task's older unused links. A nonce recorded
   * before (a retried activity) changes nothing and gives back the first record's expiry, so the
   * link is rebuilt exactly as it was first mailed.
   */
  record(link: TaskLinkRecord): Promise<{ expiresAt: Date }>;
}

export function pgTaskLinkStore(pool: Pool): TaskLinkStore {
  return {
    record: (link) =>
      withTransaction(pool, async (tx) => {
        const inserted = await tx.query<{ id: number; expires_at: Date }>(
          `INSERT INTO task_links (task_id, doctor_id, nonce_hash, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (nonce_hash) DO NOTHING RETURNING id, expires_at`,
          [link.taskId, link.doctorId, link.nonceHash, link.issuedAt, link.expiresAt],
        );
        const row = inserted.rows[0];
        if (!row) {
          const { rows } = await tx.query<{ expires_at: Date }>("SELECT expires_at FROM task_links WHERE nonce_hash = $1", [link.nonceHash]);
          return { expiresAt: rows[0]!.expires_at };
        }
        // Only links issued before this one: a late, timed-out attempt of an earlier activity
        // must not void the link a later e-mail carries.
        await tx.query(
          `UPDATE task_links SET revoked_at = now(), revoked_reason = 'superseded'
            WHERE task_id = $1 AND id < $2 AND used_at IS NULL AND revoked_at IS NULL`,
          [link.taskId, row.id],
        );
        return { expiresAt: row.expires_at };
      }),
  };
}

export interface IssueTaskLinkOptions {
  secret: string;
  /** MEDLOOP_PUBLIC_URL (config.publicUrl). */
  baseUrl: string;
  ttlSeconds: number;
}

/**
 * Issues the link of one e-mail. `issueKey` names the sending (the activity's workflow id and
 * activity id): the nonce is derived from it with the link secret, so a retried attempt, whose
 * mail the outbox writes once, rebuilds the very link of that mail instead of voiding it with
 * a new one. Without a key the nonce is random.
 */
export async function issueTaskLink(
  store: TaskLinkStore,
  opts: IssueTaskLinkOptions,
  input: { taskId: string; doctorId: string; issueKey: string | null },
  nowMs = Date.now(),
): Promise<{ link: string; expiresAt: Date }> {
  if (!/^\d+$/.test(input.taskId) || !/^\d+$/.test(input.doctorId)) {
    throw new Error(`a task link needs numeric task and doctor ids, got task "${input.taskId}", doctor "${input.doctorId}"`);
  }
  const nonce = input.issueKey
    ? createHmac("sha256", opts.secret).update(`task-link-nonce\0${input.issueKey}\0${input.taskId}\0${input.doctorId}`).digest("base64url")
    : randomBytes(32).toString("base64url");
  const issuedAt = new Date(Math.floor(nowMs / 1000) * 1000);
  const expiresAt = new Date(issuedAt.getTime() + Math.round(opts.ttlSeconds) * 1000);
  const recorded = await store.record({
    taskId: Number(input.taskId),
    doctorId: Number(input.doctorId),
    nonceHash: hashNonce(nonce),
    issuedAt,
    expiresAt,
  });
  const claims: TaskLinkClaims = { taskId: input.taskId, doctorId: input.doctorId, exp: Math.floor(recorded.expiresAt.getTime() / 1000), nonce };
  return { link: signTaskLink(opts.baseUrl, opts.secret, claims), expiresAt: recorded.expiresAt };
}

/** Why an exchange was refused; answered as `error.details.reason` beside a message naming it. */
export type TaskLinkRefusal =
  | "invalid"
  | "expired"
  | "unknown"
  | "task_missing"
  | "used"
  | "superseded"
  | "revoked"
  | "task_closed"
  | "reassigned"
  | "doctor_inactive";

const LOG_IN = "log in with your e-mail and password to reach your tasks";

function refused(reason: TaskLinkRefusal, message: string): AppError {
  return new AppError("unauthenticated", `${message}; ${LOG_IN}`, { reason });
}

export interface TaskLinkSession {
  token: string;
  expires_at: Date;
  user: User;
  task_id: number;
}

interface LinkRow {
  id: number;
  task_id: number;
  doctor_id: number;
  used_at: Date | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
  expired: boolean;
  state: string;
  assignee_id: number | null;
}

/**
 * Exchanges a link for a session scoped to its task, or refuses it with a 401 naming why. Every
 * refusal of a correctly signed link is audited (a replayed or stolen link shows up there);
 * unsigned noise is not, so it cannot flood the log.
 */
export async function exchangeTaskLink(
  pool: Pool,
  secret: string,
  link: string,
  sessionTtlSeconds = TASK_LINK_SESSION_SECONDS,
): Promise<TaskLinkSession> {
  const read = readTaskLink(link, secret);
  if (!read.ok) {
    if (read.problem === "expired" && read.claims) {
      await auditRefusal(pool, read.claims, "expired");
      throw refused("expired", `the task link expired on ${new Date(read.claims.exp * 1000).toISOString()}`);
    }
    throw refused("invalid", "the task link is not one this server signed, or it was altered (open it exactly as e-mailed)");
  }
  const claims = read.claims;
  const taskId = Number(claims.taskId);
  try {
    return await withTransaction(pool, async (tx) => {
      const { rows } = await tx.query<LinkRow>(
        `SELECT l.id, l.task_id, l.doctor_id, l.used_at, l.revoked_at, l.revoked_reason, l.expires_at <= now() AS expired,
                t.state, t.assignee_id
           FROM task_links l JOIN tasks t ON t.id = l.task_id
          WHERE l.nonce_hash = $1
          FOR UPDATE OF l`,
        [hashNonce(claims.nonce)],
      );
      const row = rows[0];
      if (!row) {
        const task = await tx.query("SELECT 1 FROM tasks WHERE id = $1", [taskId]);
        if (!task.rows[0]) throw refused("task_missing", `task ${taskId} does not exist`);
        throw refused("unknown", "this task link was never issued by this server");
      }
      if (row.task_id !== taskId || row.doctor_id !== Number(claims.doctorId)) {
        throw refused("invalid", "the task link does not match the link that was issued");
      }
      if (row.used_at) {
        throw refused("used", `the task link was already used at ${row.used_at.toISOString()} (a link opens one session only)`);
      }
      if (row.revoked_at) {
        if (row.revoked_reason === "superseded") throw refused("superseded", `a newer link for task ${taskId} was sent (open the most recent e-mail)`);
        throw refused("revoked", `the task link was revoked (${row.revoked_reason ?? "no reason recorded"})`);
      }
      if (row.expired) throw refused("expired", "the task link expired");
      if (row.state === "cancelled") throw refused("task_closed", `task ${taskId} was cancelled`);
      if (row.state !== "open") throw refused("task_closed", `task ${taskId} is ${row.state}, not open`);
      if (row.assignee_id !== row.doctor_id) throw refused("reassigned", `task ${taskId} was reassigned to another doctor`);
      const users = await tx.query<User>("SELECT id, email, name, role, active, created_at FROM users WHERE id = $1", [row.doctor_id]);
      const user = users.rows[0];
      if (!user || !user.active || user.role !== "doctor") throw refused("doctor_inactive", "the link's doctor account is not an active doctor");
      await tx.query("UPDATE task_links SET used_at = now() WHERE id = $1", [row.id]);
      const issued = await issueToken(tx, user.id, sessionTtlSeconds, { taskId });
      await appendAudit(tx, { actorId: user.id, action: "auth.task_link", entity: "task", entityId: taskId, details: { link_id: row.id, scope: "task" } });
      return { ...issued, user, task_id: taskId };
    });
  } catch (err) {
    const reason = err instanceof AppError ? (err.details as { reason?: TaskLinkRefusal } | undefined)?.reason : undefined;
    if (reason) await auditRefusal(pool, claims, reason);
    throw err;
  }
}

async function auditRefusal(pool: Pool, claims: TaskLinkClaims, reason: TaskLinkRefusal): Promise<void> {
  // The actor is the doctor the signed link names (the account someone tried to act as); the
  // row is written after the exchange's transaction rolled back, so it is kept.
  const doctor = await pool.query<{ id: number }>("SELECT id FROM users WHERE id = $1", [Number(claims.doctorId)]);
  await appendAudit(pool, {
    actorId: doctor.rows[0]?.id ?? null,
    action: "auth.task_link_refused",
    entity: "task",
    entityId: claims.taskId,
    details: { reason, doctor_id: Number(claims.doctorId) },
  });
}
