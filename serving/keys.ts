// API keys: `mlk_<prefix>_<secret>`. Only a salted SHA-256 of the whole key is stored; the prefix
// (not secret) finds the row without scanning. Keys carry 192 random bits, so a fast hash is
// enough (a slow KDF protects guessable passwords, not random tokens) and keeps every request cheap.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export interface StoredKey {
  prefix: string;
  salt: string;
  hash: string;
}

const KEY_RE = /^mlk_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$/;

export function hashKey(key: string, salt: string): string {
  return createHash("sha256").update(salt).update(key).digest("hex");
}

/** A new key and what to store for it; the plain key is shown once and never stored. */
export function newApiKey(): { key: string; stored: StoredKey } {
  const prefix = randomBytes(6).toString("hex");
  const key = `mlk_${prefix}_${randomBytes(24).toString("base64url")}`;
  const salt = randomBytes(16).toString("hex");
  return { key, stored: { prefix, salt, hash: hashKey(key, salt) } };
}

/** The prefix of a well-formed key, or null. */
export function keyPrefix(key: string): string | null {
  return KEY_RE.exec(key)?.[1] ?? null;
}

export function keyMatches(key: string, stored: StoredKey): boolean {
  const a = Buffer.from(hashKey(key, stored.salt), "hex");
  const b = Buffer.from(stored.hash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}
