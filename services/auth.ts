// Login and opaque bearer tokens. A token is 32 random bytes (base64url); only its SHA-256
// is stored, so a leaked database does not leak usable tokens.
import { createHash, randomBytes } from "node:crypto";
import type { Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { AppError } from "./errors.js";
import type { LoginThrottle } from "./throttle.js";
import { findUserByEmail, hashPassword, normaliseEmail, verifyPassword, type User } from "./users.js";

export interface LoginResult {
  token: string;
  expires_at: Date;
  user: User;
}

const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/** What a session may reach: everything its user's role allows, or one task (a task link's session). */
export interface SessionScope {
  taskId: number;
}

export async function issueToken(
  db: Queryable,
  userId: number,
  ttlSeconds: number,
  scope: SessionScope | null = null,
): Promise<{ token: string; expires_at: Date }> {
  const token = randomBytes(32).toString("base64url");
  const { rows } = await db.query<{ expires_at: Date }>(
    `INSERT INTO sessions (user_id, token_hash, expires_at, task_id) VALUES ($1, $2, now() + make_interval(secs => $3), $4)
     RETURNING expires_at`,
    [userId, hashToken(token), ttlSeconds, scope?.taskId ?? null],
  );
  return { token, expires_at: rows[0]!.expires_at };
}

export interface LoginOptions {
  /** The client's address (Express `req.ip`, which honours MEDLOOP_TRUST_PROXY); audited and throttled. */
  address?: string | null;
  /** Throttling of failed logins (services/throttle.ts); absent for trusted in-process callers. */
  throttle?: LoginThrottle;
}

// A hash of a random password that nobody knows, made with the current scrypt parameters: an
// unknown e-mail is verified against it so that it costs one password verification, like a known
// one. Without it an unknown e-mail was refused in ~2 ms and a known one in ~38 ms, which told an
// attacker which e-mails have accounts. Made on first use (one extra hash per process, once).
let dummyHash: Promise<string> | null = null;
const unknownAccountHash = () => (dummyHash ??= hashPassword(randomBytes(32).toString("base64url")));

/** Why a login failed, for the audit log only; the caller always gets the same answer. */
type FailureReason = "wrong_password" | "unknown_account" | "inactive_account" | "throttled";

export async function login(
  db: Queryable,
  email: string,
  password: string,
  ttlSeconds: number,
  opts: LoginOptions = {},
): Promise<LoginResult> {
  const normalised = normaliseEmail(email);
  const address = opts.address ?? null;
  const audited = async (reason: FailureReason, userId: number | null, extra: Record<string, unknown> = {}) =>
    // Never the password; the e-mail as normalised, so the rows of one account group together.
    appendAudit(db, {
      actorId: null,
      action: "auth.login_failed",
      entity: "user",
      entityId: userId,
      details: { email: normalised, address, reason, ...extra },
    });
  // The throttle comes before the account is looked up: a refusal costs the same and says the
  // same for every e-mail, so it reveals nothing about which accounts exist.
  const gate = opts.throttle ? await opts.throttle.admit(normalised, address) : null;
  if (gate && !gate.admitted) {
    await audited("throttled", null, { retry_after_s: gate.retryAfterSeconds, blocked: gate.dimension });
    throw new AppError("too_many_requests", `too many failed logins; try again in ${gate.retryAfterSeconds} s`, {
      retry_after_s: gate.retryAfterSeconds,
    });
  }
  let found: Awaited<ReturnType<typeof findUserByEmail>>;
  let verified: boolean;
  try {
    found = await findUserByEmail(db, normalised);
    // Exactly one verification whatever the account: its own hash (also when disabled), or the
    // dummy hash when there is no such account.
    verified = await verifyPassword(password, found?.password_hash ?? (await unknownAccountHash()));
  } catch (err) {
    await gate?.settle("error");
    throw err;
  }
  if (!found || !found.active || !verified) {
    await gate?.settle("failure");
    await audited(!found ? "unknown_account" : !found.active ? "inactive_account" : "wrong_password", found?.id ?? null);
    // The same message for an unknown e-mail, a disabled account and a wrong password.
    throw new AppError("unauthenticated", "wrong e-mail or password");
  }
  await gate?.settle("success");
  const { password_hash: _hash, ...user } = found;
  const issued = await issueToken(db, user.id, ttlSeconds);
  await appendAudit(db, { actorId: user.id, action: "auth.login", entity: "user", entityId: user.id, details: { address } });
  return { ...issued, user };
}

/** The user behind a bearer token, or null when it is unknown, expired, revoked or disabled. */
export async function authenticate(db: Queryable, token: string): Promise<User | null> {
  // A task-scoped session is no answer here: a caller that cannot enforce the scope must not
  // get a user out of it (the API uses authenticateSession and enforces it, api/taskScope.ts).
  const session = await authenticateSession(db, token);
  return session && session.scope === null ? session.user : null;
}

/** The user behind a bearer token and the session's scope, or null as for authenticate. */
export async function authenticateSession(db: Queryable, token: string): Promise<{ user: User; scope: SessionScope | null } | null> {
  const { rows } = await db.query<User & { scope_task_id: number | null }>(
    `SELECT u.id, u.email, u.name, u.role, u.active, u.created_at, s.task_id AS scope_task_id
       FROM sessions s JOIN users u ON u.id = s.user_id
      WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.active`,
    [hashToken(token)],
  );
  const row = rows[0];
  if (!row) return null;
  const { scope_task_id: taskId, ...user } = row;
  return { user, scope: taskId === null ? null : { taskId } };
}

export async function revokeToken(db: Queryable, token: string): Promise<void> {
  await db.query("UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL", [hashToken(token)]);
}
