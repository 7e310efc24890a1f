// Settings of docs/architecture.md, read from the environment in one place so the API,
// the CLI, the worker and the tests agree on where state lives.
import { isIP } from "node:net";
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
  /** How long an e-mailed task link can be exchanged for a session, in seconds (MEDLOOP_TASK_LINK_DAYS). */
  taskLinkTtlSeconds: number;
  /** Where doctors open the UI (MEDLOOP_PUBLIC_URL, ending in `/`): task links are built from it. */
  publicUrl: string;
  /** False when MEDLOOP_PUBLIC_URL is unset and `publicUrl` is the single-machine default. */
  publicUrlConfigured: boolean;
  /** Throttling of failed logins (services/throttle.ts, docs/stack.md). */
  loginThrottle: LoginThrottleSettings;
  /**
   * Express's `trust proxy` (MEDLOOP_TRUST_PROXY): which hops may name the client address in
   * X-Forwarded-For. false (the default) takes the socket's address and ignores the header.
   */
  trustProxy: boolean | number | string;
}

export interface LoginThrottleSettings {
  /** Failed logins of one account (any address) within an hour before it is blocked. */
  maxFailuresPerAccount: number;
  /** Failed logins from one client address (any account) within an hour before it is blocked. */
  maxFailuresPerAddress: number;
  /** The first block; each further block of the same key within a day doubles it. */
  blockSeconds: number;
  /** The longest block. */
  maxBlockSeconds: number;
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

function positiveInteger(name: string, raw: string | undefined, fallback: number): number {
  const value = positiveNumber(name, raw, fallback);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a whole number, got "${raw}"`);
  return value;
}

// Names proxy-addr (Express) knows for address ranges.
const TRUST_NAMES = new Set(["loopback", "linklocal", "uniquelocal"]);

/**
 * MEDLOOP_TRUST_PROXY → Express's `trust proxy`: unset/"false" → false; "true" → true (every hop:
 * only when the API is reachable through the proxy alone); a number → that many hops; otherwise
 * a comma-separated list of addresses, CIDR ranges or loopback/linklocal/uniquelocal. Checked
 * here so that a typo stops the start instead of silently trusting nothing (or everything).
 */
export function parseTrustProxy(raw: string | undefined): boolean | number | string {
  const value = (raw ?? "").trim();
  if (value === "" || value === "false") return false;
  if (value === "true") return true;
  if (/^\d+$/.test(value)) return Number(value);
  for (const entry of value.split(",").map((e) => e.trim())) {
    if (TRUST_NAMES.has(entry)) continue;
    const [addr = "", prefix, ...rest] = entry.split("/");
    const family = isIP(addr);
    const prefixOk = prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= (family === 6 ? 128 : 32));
    if (family === 0 || !prefixOk || rest.length > 0) {
      throw new Error(
        `MEDLOOP_TRUST_PROXY: "${entry}" is not an address, a CIDR range or one of loopback, linklocal, uniquelocal (or use true, false or a hop count)`,
      );
    }
  }
  return value;
}

/** MEDLOOP_TASK_LINK_DAYS: default 7; more than 30 is refused (a month-long link was issue 10's finding). */
function taskLinkDays(raw: string | undefined): number {
  const days = positiveNumber("MEDLOOP_TASK_LINK_DAYS", raw, 7);
  if (days > 30) throw new Error(`MEDLOOP_TASK_LINK_DAYS must be at most 30, got "${raw}"`);
  return days;
}

/**
 * MEDLOOP_PUBLIC_URL → the base of task links. An e-mailed link must point where the doctor's
 * browser reaches the UI, which only the operator knows (a reverse proxy, a host name): it is
 * never derived from a request's Host header or the address the API listens on. Unset, links
 * point at http://localhost:<MEDLOOP_PORT or 8080>/, which works only on the machine itself (the
 * single-machine demo of `medloop start`); the worker warns about it. Checked here so that a typo
 * stops the start instead of mailing links that lead nowhere.
 */
export function parsePublicUrl(raw: string | undefined, port: string | undefined): { url: string; configured: boolean } {
  const value = (raw ?? "").trim();
  if (!value) return { url: `http://localhost:${port || "8080"}/`, configured: false };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`MEDLOOP_PUBLIC_URL must be an absolute http(s) URL such as https://medloop.example.org/, got "${value}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`MEDLOOP_PUBLIC_URL must be an http or https URL, got "${value}"`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new Error(`MEDLOOP_PUBLIC_URL must hold no user name, password, query or fragment, got "${value}"`);
  }
  return { url: url.href.endsWith("/") ? url.href : `${url.href}/`, configured: true };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = path.resolve(repoRoot, env.MEDLOOP_DATA_DIR || ".data");
  const publicUrl = parsePublicUrl(env.MEDLOOP_PUBLIC_URL, env.MEDLOOP_PORT);
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
    // Days, not a month: a link is a password-less credential sitting in a mailbox. Reminders
    // (every two days by default) send a fresh one, so an open task always has a live link.
    taskLinkTtlSeconds: Math.round(taskLinkDays(env.MEDLOOP_TASK_LINK_DAYS) * 86_400),
    publicUrl: publicUrl.url,
    publicUrlConfigured: publicUrl.configured,
    loginThrottle: {
      maxFailuresPerAccount: positiveInteger("MEDLOOP_LOGIN_MAX_FAILURES", env.MEDLOOP_LOGIN_MAX_FAILURES, 5),
      // Higher than per account: a hospital's users often share one address (NAT, proxy).
      maxFailuresPerAddress: positiveInteger("MEDLOOP_LOGIN_MAX_FAILURES_PER_ADDRESS", env.MEDLOOP_LOGIN_MAX_FAILURES_PER_ADDRESS, 30),
      blockSeconds: positiveNumber("MEDLOOP_LOGIN_BLOCK_SECONDS", env.MEDLOOP_LOGIN_BLOCK_SECONDS, 60),
      maxBlockSeconds: positiveNumber("MEDLOOP_LOGIN_MAX_BLOCK_SECONDS", env.MEDLOOP_LOGIN_MAX_BLOCK_SECONDS, 3600),
    },
    trustProxy: parseTrustProxy(env.MEDLOOP_TRUST_PROXY),
  };
}
