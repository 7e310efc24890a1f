// Settings of docs/architecture.md, read from the environment in one place so the API,
// the CLI, the worker and the tests agree on where state lives.
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface Config {
  /** Repository root (the folder holding package.json). */
  repoRoot: string;
  /** One folder with all runtime state. */
  dataDir: string;
  /** Root of the local blob store (`blob://<key>` → `<blobRoot>/<key>`). */
  blobRoot: string;
  /** Folder where the embedded mail transport writes .eml/.json messages. */
  outboxDir: string;
  /** PostgreSQL URL, or null when the embedded PostgreSQL should be used. */
  databaseUrl: string | null;
  temporalAddress: string;
  temporalNamespace: string;
  smtpUrl: string | null;
  chaseDir: string;
  /** Largest accepted upload (images, masks, JSON bodies), in bytes. */
  maxUploadBytes: number;
  /** Lifetime of a bearer token, in seconds. */
  tokenTtlSeconds: number;
}

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function positiveNumber(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  }
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = path.resolve(repoRoot, env.MEDLOOP_DATA_DIR || ".data");
  return {
    repoRoot,
    dataDir,
    blobRoot: path.resolve(repoRoot, env.MEDLOOP_BLOB_ROOT || path.join(dataDir, "blobs")),
    outboxDir: path.join(dataDir, "outbox"),
    databaseUrl: env.MEDLOOP_DATABASE_URL || null,
    temporalAddress: env.MEDLOOP_TEMPORAL_ADDRESS || "127.0.0.1:7233",
    temporalNamespace: env.MEDLOOP_TEMPORAL_NAMESPACE || "default",
    smtpUrl: env.MEDLOOP_SMTP_URL || null,
    chaseDir: path.resolve(repoRoot, env.MEDLOOP_CHASE_DIR || "../shared/data/chase_db1"),
    maxUploadBytes: positiveNumber("MEDLOOP_MAX_UPLOAD_MB", env.MEDLOOP_MAX_UPLOAD_MB, 50) * 1024 * 1024,
    tokenTtlSeconds: positiveNumber("MEDLOOP_TOKEN_TTL_HOURS", env.MEDLOOP_TOKEN_TTL_HOURS, 12) * 3600,
  };
}
