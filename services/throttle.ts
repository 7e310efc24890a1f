// Throttling of failed logins with a growing backoff, per account and per client address, on
// rate-limiter-flexible's PostgreSQL store (table `login_throttle`,
// db/migrations/075_login_throttle.sql): the state survives restarts and holds across every API
// process that shares the database.
//
// Per key (an account's normalised e-mail, or a client address) three counters live in the table:
//   failures  failed attempts (plus attempts in flight) within the last hour;
//   blocked   present while the key is blocked, expiring when the block ends;
//   level     how many times the key was blocked within the last day: block n lasts
//             blockSeconds · 2^(n−1), at most maxBlockSeconds.
// An attempt first reserves its place in `failures` (one atomic upsert), then the password is
// verified. Reserving before verifying bounds the guesses of a parallel brute force: with a limit
// of 5, a sixth request sent while five are still being verified is refused at once instead of
// being verified too. A success gives the address's place back and clears the account's count
// (a person who knows the password needs no protection from their own typos any more); a failure
// keeps it, and the failure that reaches the limit blocks the key.
//
// Keys are hashed (SHA-256) before they reach the table: it holds no e-mail address or client
// address in clear, and every key fits the store's varchar(255) whatever was typed.
import { createHash } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { RateLimiterPostgres } from "rate-limiter-flexible";
import type { Pool } from "../db/pool.js";
import type { LoginThrottleSettings } from "./config.js";

export const THROTTLE_TABLE = "login_throttle";
const FAILURE_WINDOW_SECONDS = 3600;
const BACKOFF_MEMORY_SECONDS = 24 * 3600;

export type ThrottleDimension = "account" | "address";

export type Admission =
  | { admitted: true; settle(outcome: "success" | "failure" | "error"): Promise<void> }
  | { admitted: false; retryAfterSeconds: number; dimension: ThrottleDimension };

const hashKey = (kind: string, value: string) => createHash("sha256").update(`${kind}\0${value}`).digest("hex");

/**
 * The key of a client address: an IPv4-mapped IPv6 address as its IPv4 form, and an IPv6 address
 * as its /64 network (one host usually holds a whole /64, so per-address limits on full IPv6
 * addresses would be evaded by changing the interface identifier).
 */
export function addressKey(address: string): string {
  const bare = address.replace(/%.*$/, ""); // zone index (fe80::1%eth0)
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (!isIPv6(bare)) return bare;
  const [head = "", tail] = bare.toLowerCase().split("::") as [string, string | undefined];
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  // An embedded IPv4 tail (::1.2.3.4) takes two groups; only the first four groups matter here.
  const missing = 8 - headGroups.length - tailGroups.length - (tailGroups.at(-1)?.includes(".") ? 1 : 0);
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(Math.max(missing, 0)).fill("0"), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/** One dimension (account or address): its failure count, block and backoff level. */
class Backoff {
  private readonly failures: RateLimiterPostgres;
  private readonly blocked: RateLimiterPostgres;
  private readonly level: RateLimiterPostgres;

  constructor(
    pool: Pool,
    readonly dimension: ThrottleDimension,
    private readonly limit: number,
    private readonly settings: LoginThrottleSettings,
  ) {
    const common = { storeClient: pool, storeType: "pool", tableName: THROTTLE_TABLE, tableCreated: true };
    // Only one limiter per process runs the library's sweep of expired rows (every 5 minutes).
    this.failures = new RateLimiterPostgres({
      ...common,
      keyPrefix: `login_failures_${dimension}`,
      points: limit,
      duration: FAILURE_WINDOW_SECONDS,
      clearExpiredByTimeout: dimension === "account",
    });
    this.blocked = new RateLimiterPostgres({ ...common, keyPrefix: `login_blocked_${dimension}`, points: 1, duration: 1, clearExpiredByTimeout: false });
    this.level = new RateLimiterPostgres({
      ...common,
      keyPrefix: `login_level_${dimension}`,
      points: 1,
      duration: BACKOFF_MEMORY_SECONDS,
      clearExpiredByTimeout: false,
    });
  }

  /** Milliseconds until the key's block ends; 0 when it is not blocked. */
  async blockedMs(key: string): Promise<number> {
    const res = await this.blocked.get(key);
    return res && res.msBeforeNext > 0 ? res.msBeforeNext : 0;
  }

  /** Reserves a place for one attempt: its position, or null (nothing kept) when the key is full. */
  async reserve(key: string): Promise<number | null> {
    const res = await this.failures.penalty(key, 1);
    if (res.consumedPoints <= this.limit) return res.consumedPoints;
    await this.failures.reward(key, 1);
    return null;
  }

  async refund(key: string): Promise<void> {
    await this.failures.reward(key, 1);
  }

  async reset(key: string): Promise<void> {
    await this.failures.delete(key);
  }

  /** A failed attempt at `position`: the one that reaches the limit blocks the key. */
  async failed(key: string, position: number): Promise<void> {
    if (position < this.limit) return;
    const level = ((await this.level.get(key))?.consumedPoints ?? 0) + 1;
    await this.level.set(key, level, BACKOFF_MEMORY_SECONDS);
    const seconds = Math.min(this.settings.blockSeconds * 2 ** (level - 1), this.settings.maxBlockSeconds);
    await this.blocked.block(key, seconds);
    // The count starts again once the block ends: `limit` more tries, then a longer block.
    await this.failures.delete(key);
  }

  /** Seconds to tell a caller refused because the key is full of attempts still in flight. */
  get busySeconds(): number {
    return Math.min(this.settings.blockSeconds, this.settings.maxBlockSeconds);
  }
}

export class LoginThrottle {
  private readonly account: Backoff;
  private readonly address: Backoff;

  constructor(pool: Pool, settings: LoginThrottleSettings) {
    this.account = new Backoff(pool, "account", settings.maxFailuresPerAccount, settings);
    this.address = new Backoff(pool, "address", settings.maxFailuresPerAddress, settings);
  }

  /**
   * Whether an attempt on `email` (normalised) from `address` may verify a password. Unknown and
   * known e-mails are throttled alike, so a refusal tells nothing about the account. A null
   * address (no socket address) is throttled per account only.
   */
  async admit(email: string, address: string | null): Promise<Admission> {
    const accountKey = hashKey("account", email);
    const addrKey = address === null ? null : hashKey("address", addressKey(address));
    const [accountMs, addressMs] = await Promise.all([
      this.account.blockedMs(accountKey),
      addrKey === null ? 0 : this.address.blockedMs(addrKey),
    ]);
    if (accountMs > 0 || addressMs > 0) {
      return {
        admitted: false,
        retryAfterSeconds: Math.ceil(Math.max(accountMs, addressMs) / 1000),
        dimension: addressMs >= accountMs ? "address" : "account",
      };
    }
    const addressPos = addrKey === null ? 0 : await this.address.reserve(addrKey);
    if (addressPos === null) return { admitted: false, retryAfterSeconds: this.address.busySeconds, dimension: "address" };
    const accountPos = await this.account.reserve(accountKey);
    if (accountPos === null) {
      // Refused for the account: this attempt tested no password, so it does not count for the address.
      if (addrKey !== null) await this.address.refund(addrKey);
      return { admitted: false, retryAfterSeconds: this.account.busySeconds, dimension: "account" };
    }
    return {
      admitted: true,
      settle: async (outcome) => {
        if (outcome === "success") {
          await Promise.all([this.account.reset(accountKey), addrKey !== null ? this.address.refund(addrKey) : undefined]);
        } else if (outcome === "failure") {
          await Promise.all([
            this.account.failed(accountKey, accountPos),
            addrKey !== null ? this.address.failed(addrKey, addressPos) : undefined,
          ]);
        } else {
          // The attempt broke down (e.g. the database): it proved nothing either way.
          await Promise.all([this.account.refund(accountKey), addrKey !== null ? this.address.refund(addrKey) : undefined]);
        }
      },
    };
  }
}

const throttles = new WeakMap<Pool, Map<string, LoginThrottle>>();

/** The throttle of a pool and settings, made once: the API builds it on the first login. */
export function loginThrottleFor(pool: Pool, settings: LoginThrottleSettings): LoginThrottle {
  let perPool = throttles.get(pool);
  if (!perPool) throttles.set(pool, (perPool = new Map()));
  const key = JSON.stringify(settings);
  let throttle = perPool.get(key);
  if (!throttle) perPool.set(key, (throttle = new LoginThrottle(pool, settings)));
  return throttle;
}
