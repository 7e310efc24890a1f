// Users, roles and password hashing (node:crypto scrypt, salted, constant-time compare).
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { withTransaction, type Pool, type Queryable } from "../db/pool.js";
import { LOCK_KEYS } from "../db/lockKeys.js";
import { appendAudit } from "./audit.js";
import { badRequest, conflict, notFound, uniqueViolation } from "./errors.js";
import { assertPasswordAllowed } from "./passwordPolicy.js";

export const ROLES = ["lab_lead", "doctor", "auditor", "admin", "reviewer"] as const;
export type Role = (typeof ROLES)[number];

export interface User {
  id: number;
  email: string;
  name: string;
  role: Role;
  active: boolean;
  created_at: Date;
}

const USER_COLUMNS = "id, email, name, role, active, created_at";
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$N$r$p$salt$hash` (base64url parts), so parameters can change later. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return ["scrypt", SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, "base64url");
  const key = await scrypt(password, Buffer.from(salt, "base64url"), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  });
  return timingSafeEqual(key, expected);
}

export interface NewUser {
  email: string;
  name: string;
  role: Role;
  password: string;
}

/** The form e-mails are stored, looked up, throttled and audited in. */
export const normaliseEmail = (email: string) => email.trim().toLowerCase();

export async function createUser(db: Queryable, input: NewUser, actorId: number | null = null): Promise<User> {
  if (!ROLES.includes(input.role)) throw badRequest(`unknown role "${input.role}"`);
  assertPasswordAllowed(input.password);
  const hash = await hashPassword(input.password);
  try {
    const { rows } = await db.query<User>(
      `INSERT INTO users (email, name, role, password_hash) VALUES ($1, $2, $3, $4) RETURNING ${USER_COLUMNS}`,
      [normaliseEmail(input.email), input.name, input.role, hash],
    );
    const user = rows[0]!;
    await appendAudit(db, { actorId, action: "user.create", entity: "user", entityId: user.id, details: { role: user.role } });
    return user;
  } catch (err) {
    if (uniqueViolation(err)) throw conflict(`a user with e-mail ${input.email} already exists`);
    throw err;
  }
}

export async function getUser(db: Queryable, id: number): Promise<User> {
  const { rows } = await db.query<User>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
  if (!rows[0]) throw notFound("user", id);
  return rows[0];
}

export async function findUserByEmail(db: Queryable, email: string): Promise<(User & { password_hash: string }) | null> {
  const { rows } = await db.query<User & { password_hash: string }>(
    `SELECT ${USER_COLUMNS}, password_hash FROM users WHERE email = $1`,
    [normaliseEmail(email)],
  );
  return rows[0] ?? null;
}

export async function listUsers(db: Queryable, role?: Role): Promise<User[]> {
  const { rows } = role
    ? await db.query<User>(`SELECT ${USER_COLUMNS} FROM users WHERE role = $1 ORDER BY id`, [role])
    : await db.query<User>(`SELECT ${USER_COLUMNS} FROM users ORDER BY id`);
  return rows;
}

export interface UserPatch {
  name?: string;
  role?: Role;
  active?: boolean;
  password?: string;
}

/**
 * Serialises every change of a role or an active flag (transaction-scoped advisory lock), so that
 * the "one active admin remains" check and the change it allows are one step: two admins demoting
 * each other at the same moment leave one admin, not none.
 */
const ADMIN_CHANGE_LOCK = LOCK_KEYS.ADMIN_CHANGE;

/** Revokes every open session (bearer tokens, task-link sessions) and unused task link of a user; returns how many sessions. */
export async function revokeUserSessions(db: Queryable, userId: number): Promise<number> {
  const { rowCount } = await db.query("UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [userId]);
  // Their unused task links are credentials too: a re-enabled doctor gets new ones with the next mail.
  await db.query(
    `UPDATE task_links SET revoked_at = now(), revoked_reason = 'sessions_revoked'
     WHERE doctor_id = $1 AND used_at IS NULL AND revoked_at IS NULL`,
    [userId],
  );
  return rowCount ?? 0;
}

/**
 * Changes a user. A new password (an admin's reset or a change) and disabling revoke all of the
 * user's sessions, so that whoever held a token must log in again with the new password; enabling
 * the user again does not revive them. The last active admin cannot be demoted or disabled (409):
 * nobody could then manage users any more.
 */
export async function updateUser(pool: Pool, id: number, patch: UserPatch, actorId: number | null): Promise<User> {
  if (patch.password !== undefined) assertPasswordAllowed(patch.password);
  if (patch.role !== undefined && !ROLES.includes(patch.role)) throw badRequest(`unknown role "${patch.role}"`);
  // Hashed before the transaction: scrypt takes ~40 ms and needs no lock.
  const hash = patch.password !== undefined ? await hashPassword(patch.password) : null;
  return withTransaction(pool, async (tx) => {
    const changesAdmins = patch.role !== undefined || patch.active !== undefined;
    if (changesAdmins) await tx.query("SELECT pg_advisory_xact_lock($1)", [ADMIN_CHANGE_LOCK]);
    // NO KEY UPDATE (what the UPDATE below takes anyway), not UPDATE: the audit row's foreign key
    // takes KEY SHARE on the actor's row, and two admins editing each other must not deadlock.
    const { rows: current } = await tx.query<User>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR NO KEY UPDATE`, [id]);
    const before = current[0];
    if (!before) throw notFound("user", id);
    const demoted = patch.role !== undefined && patch.role !== "admin";
    const disabled = patch.active === false;
    if (before.role === "admin" && before.active && (demoted || disabled)) {
      const { rows } = await tx.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM users WHERE role = 'admin' AND active AND id <> $1",
        [id],
      );
      if (rows[0]!.n === 0) {
        throw conflict(
          `user ${id} is the last active admin and cannot be ${demoted ? "given another role" : "disabled"}; make another user an active admin first`,
        );
      }
    }
    const { rows } = await tx.query<User>(
      `UPDATE users SET name = COALESCE($2, name), role = COALESCE($3, role), active = COALESCE($4, active),
              password_hash = COALESCE($5, password_hash)
        WHERE id = $1 RETURNING ${USER_COLUMNS}`,
      [id, patch.name ?? null, patch.role ?? null, patch.active ?? null, hash],
    );
    const revoked = hash !== null || disabled ? await revokeUserSessions(tx, id) : 0;
    const changed = Object.keys(patch).filter((k) => k !== "password");
    await appendAudit(tx, {
      actorId,
      action: "user.update",
      entity: "user",
      entityId: id,
      details: { fields: patch.password !== undefined ? [...changed, "password"] : changed, sessions_revoked: revoked },
    });
    return rows[0]!;
  });
}

/** Demo accounts printed by `medloop start`; the password is shared and public by design. */
export const DEMO_PASSWORD = "medloop-demo";
export const DEMO_USERS: ReadonlyArray<Omit<NewUser, "password">> = [
  { email: "admin@medloop.local", name: "Ada Admin", role: "admin" },
  { email: "lead@medloop.local", name: "Lena Lead", role: "lab_lead" },
  { email: "doctor1@medloop.local", name: "Dr. Dana One", role: "doctor" },
  { email: "doctor2@medloop.local", name: "Dr. Deniz Two", role: "doctor" },
  { email: "auditor@medloop.local", name: "Aude Auditor", role: "auditor" },
  { email: "reviewer@medloop.local", name: "Rhea Reviewer", role: "reviewer" },
];

/** Creates the demo users that do not exist yet (idempotent); returns all of them. */
export async function seedDemoUsers(db: Queryable): Promise<Array<User & { password: string }>> {
  const out: Array<User & { password: string }> = [];
  for (const demo of DEMO_USERS) {
    const existing = await findUserByEmail(db, demo.email);
    const user = existing ?? (await createUser(db, { ...demo, password: DEMO_PASSWORD }));
    out.push({
      id: user.id,
      email: user.email,
      name: user.name,
      role: user.role,
      active: user.active,
      created_at: user.created_at,
      password: DEMO_PASSWORD,
    });
  }
  return out;
}
