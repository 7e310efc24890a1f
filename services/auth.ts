// Login and opaque bearer tokens. A token is 32 random bytes (base64url); only its SHA-256
// is stored, so a leaked database does not leak usable tokens.
import { createHash, randomBytes } from "node:crypto";
import type { Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { AppError } from "./errors.js";
import { findUserByEmail, verifyPassword, type User } from "./users.js";

export interface LoginResult {
  token: string;
  expires_at: Date;
  user: User;
}

const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

export async function issueToken(db: Queryable, userId: number, ttlSeconds: number): Promise<{ token: string; expires_at: Date }> {
  const token = randomBytes(32).toString("base64url");
  const { rows } = await db.query<{ expires_at: Date }>(
    `INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
     RETURNING expires_at`,
    [userId, hashToken(token), ttlSeconds],
  );
  return { token, expires_at: rows[0]!.expires_at };
}

export async function login(db: Queryable, email: string, password: string, ttlSeconds: number): Promise<LoginResult> {
  const found = await findUserByEmail(db, email);
  // The same message for an unknown e-mail and a wrong password: no account probing.
  const ok = found !== null && found.active && (await verifyPassword(password, found.password_hash));
  if (!ok || !found) throw new AppError("unauthenticated", "wrong e-mail or password");
  const { password_hash: _hash, ...user } = found;
  const issued = await issueToken(db, user.id, ttlSeconds);
  await appendAudit(db, { actorId: user.id, action: "auth.login", entity: "user", entityId: user.id });
  return { ...issued, user };
}

/** The user behind a bearer token, or null when it is unknown, expired, revoked or disabled. */
export async function authenticate(db: Queryable, token: string): Promise<User | null> {
  const { rows } = await db.query<User>(
    `SELECT u.id, u.email, u.name, u.role, u.active, u.created_at
       FROM sessions s JOIN users u ON u.id = s.user_id
      WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.active`,
    [hashToken(token)],
  );
  return rows[0] ?? null;
}

export async function revokeToken(db: Queryable, token: string): Promise<void> {
  await db.query("UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL", [hashToken(token)]);
}
