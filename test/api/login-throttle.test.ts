// Issue 10 (login): brute force against POST /api/auth/login is throttled per account and per
// client address with a growing backoff, kept in PostgreSQL; every failed login is audited; a
// refusal never tells whether the account exists.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../api/app.js";
import { createPool } from "../../db/pool.js";
import { DEMO_PASSWORD } from "../../services/users.js";
import { startTestApi, type TestApi } from "../helpers/api.js";

const LIMIT = 3; // failures per account
const ADDRESS_LIMIT = 8; // failures per client address
const BLOCK_S = 60; // the first block; then 120, 240, … up to 600

interface Attempt {
  status: number;
  retryAfter: string | null;
  json: { token?: string; error?: { code: string; message: string; details?: unknown } };
}

/** One login from `address` (X-Forwarded-For, honoured since the app trusts loopback proxies). */
async function attempt(baseUrl: string, email: string, password: string, address?: string): Promise<Attempt> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (address) headers["x-forwarded-for"] = address;
  const res = await fetch(`${baseUrl}/api/auth/login`, { method: "POST", headers, body: JSON.stringify({ email, password }) });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), json: (await res.json()) as Attempt["json"] };
}

describe("login throttling", () => {
  let api: TestApi;
  const login = (email: string, password: string, address: string) => attempt(api.baseUrl, email, password, address);
  /** Ends every block now, as if its time had passed (the store counts in epoch ms). */
  const endBlocks = () =>
    api.db.pool.query("UPDATE login_throttle SET expire = (extract(epoch from clock_timestamp()) * 1000)::bigint - 1 WHERE key LIKE 'login_blocked_%'");

  beforeAll(async () => {
    api = await startTestApi({}, {
      MEDLOOP_LOGIN_MAX_FAILURES: String(LIMIT),
      MEDLOOP_LOGIN_MAX_FAILURES_PER_ADDRESS: String(ADDRESS_LIMIT),
      MEDLOOP_LOGIN_BLOCK_SECONDS: String(BLOCK_S),
      MEDLOOP_LOGIN_MAX_BLOCK_SECONDS: "600",
      MEDLOOP_TRUST_PROXY: "loopback",
    });
  });
  afterAll(async () => {
    await api?.close();
  });

  it("blocks an account after repeated wrong passwords, the right password too, from any address", async () => {
    const results: Attempt[] = [];
    for (let i = 0; i < 25; i++) results.push(await login("doctor1@medloop.local", `guess-${i}`, "10.1.0.1"));
    expect(results.slice(0, LIMIT).map((r) => r.status)).toEqual(Array(LIMIT).fill(401));
    for (const r of results.slice(LIMIT)) {
      expect(r.status).toBe(429);
      expect(r.json.error!.code).toBe("too_many_requests");
      const retry = Number(r.retryAfter);
      expect(Number.isInteger(retry) && retry >= 1 && retry <= BLOCK_S, `Retry-After ${r.retryAfter}`).toBe(true);
    }
    // The right password during the block is refused alike, also from another address.
    const right = await login("doctor1@medloop.local", DEMO_PASSWORD, "10.1.0.1");
    expect(right.status).toBe(429);
    expect(right.json.token).toBeUndefined();
    const elsewhere = await login("doctor1@medloop.local", DEMO_PASSWORD, "10.1.0.99");
    expect(elsewhere.status).toBe(429);
    // Another account from the first address is not affected (its failures stayed under the address limit).
    expect((await login("doctor2@medloop.local", DEMO_PASSWORD, "10.1.0.1")).status).toBe(200);
  });

  it("answers an unknown e-mail exactly like a known account, before and during the block", async () => {
    const known: Attempt[] = [];
    const unknown: Attempt[] = [];
    for (let i = 0; i <= LIMIT; i++) {
      known.push(await login("auditor@medloop.local", `guess-${i}`, "10.2.0.1"));
      unknown.push(await login("nobody-here@medloop.local", `guess-${i}`, "10.2.0.2"));
    }
    expect(known.map((r) => r.status)).toEqual([...Array(LIMIT).fill(401), 429]);
    expect(unknown.map((r) => r.status)).toEqual(known.map((r) => r.status));
    expect(unknown.map((r) => r.json)).toEqual(known.map((r) => r.json));
    expect(unknown[LIMIT]!.retryAfter).toBe(known[LIMIT]!.retryAfter);
  });

  it("lets the right password in once the block has passed, and blocks longer each time", async () => {
    const email = "lead@medloop.local";
    const retries: number[] = [];
    for (let round = 0; round < 3; round++) {
      // A new address each round: only the account's backoff is under test here.
      const address = `10.3.0.${round + 1}`;
      for (let i = 0; i < LIMIT; i++) expect((await login(email, `guess-${round}-${i}`, address)).status).toBe(401);
      const blocked = await login(email, DEMO_PASSWORD, address);
      expect(blocked.status).toBe(429);
      retries.push(Number(blocked.retryAfter));
      await endBlocks();
      const ok = await login(email, DEMO_PASSWORD, address);
      expect(ok.status, JSON.stringify(ok.json)).toBe(200);
      expect((await api.call("GET", "/api/auth/me", { token: ok.json.token! })).json.email).toBe(email);
    }
    // 60 s, then 120 s, then 240 s (Retry-After rounds up the time left, read a moment after the block began).
    expect(retries[0]).toBeGreaterThan(0);
    expect(retries[0]).toBeLessThanOrEqual(BLOCK_S);
    expect(retries[1]).toBeGreaterThan(BLOCK_S);
    expect(retries[1]).toBeLessThanOrEqual(2 * BLOCK_S);
    expect(retries[2]).toBeGreaterThan(2 * BLOCK_S);
    expect(retries[2]).toBeLessThanOrEqual(4 * BLOCK_S);
  });

  it("blocks a client address that fails on many accounts, whatever account it tries next", async () => {
    const address = "10.4.0.1";
    for (let i = 0; i < ADDRESS_LIMIT; i++) {
      // One failure per account, far under the account limit: only the address adds up.
      expect((await login(`spray-${i}@medloop.local`, "password-guess", address)).status).toBe(401);
    }
    const next = await login("admin@medloop.local", DEMO_PASSWORD, address);
    expect(next.status).toBe(429);
    expect(Number(next.retryAfter)).toBeGreaterThan(0);
    const unknown = await login("someone-new@medloop.local", "anything-at-all", address);
    expect(unknown.status).toBe(429);
    // The account itself is fine from another address.
    expect((await login("admin@medloop.local", DEMO_PASSWORD, "10.4.0.2")).status).toBe(200);
  });

  it("does not count successful logins against the address", async () => {
    const address = "10.5.0.1";
    for (let i = 0; i < ADDRESS_LIMIT + 4; i++) expect((await login("doctor2@medloop.local", DEMO_PASSWORD, address)).status).toBe(200);
    expect((await login("doctor2@medloop.local", "not-the-password", address)).status).toBe(401);
  });

  it("refuses a parallel burst beyond the limit without verifying every guess", async () => {
    const burst = await Promise.all(
      Array.from({ length: 12 }, (_, i) => login("burst-target@medloop.local", `parallel-${i}`, `10.6.0.${i + 1}`)),
    );
    const statuses = burst.map((r) => r.status);
    // Whatever the interleaving, no more than LIMIT guesses get a 401 (a verified wrong password).
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(LIMIT);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(12 - LIMIT);
    for (const r of burst.filter((b) => b.status === 429)) expect(Number(r.retryAfter)).toBeGreaterThan(0);
  });

  it("audits every failed login with the normalised e-mail and the client address, never the password", async () => {
    const address = "10.7.0.1";
    const secret = "Very-Secret-Guess-7";
    await login("  Doctor2@MEDLOOP.local ", secret, address); // wrong password for a known account
    await login("ghost@medloop.local", secret, address); // unknown account
    const { rows } = await api.db.pool.query<{ entity_id: string | null; actor_id: number | null; details: Record<string, unknown> }>(
      "SELECT entity_id, actor_id, details FROM audit_log WHERE action = 'auth.login_failed' AND details->>'address' = $1 ORDER BY id",
      [address],
    );
    expect(rows.map((r) => r.details)).toEqual([
      { email: "doctor2@medloop.local", address, reason: "wrong_password" },
      { email: "ghost@medloop.local", address, reason: "unknown_account" },
    ]);
    expect(rows[0]!.entity_id).toBe(String(api.users.doctor2!.id));
    expect(rows.every((r) => r.actor_id === null)).toBe(true);
    // Throttled attempts are failed logins too (the first test's 22 on doctor1, 2 with the right password).
    const throttled = await api.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_log WHERE action = 'auth.login_failed' AND details->>'email' = 'doctor1@medloop.local' AND details->>'reason' = 'throttled'",
    );
    expect(throttled.rows[0]!.n).toBe(25 - LIMIT + 2);
    const all = await api.db.pool.query<{ details: unknown }>("SELECT details FROM audit_log");
    const text = JSON.stringify(all.rows);
    for (const pw of [secret, DEMO_PASSWORD, "guess-0", "password-guess", "parallel-0"]) expect(text).not.toContain(pw);
  });

  it("refuses an e-mail with control characters with a 400, not a server error", async () => {
    const res = await login("a\u0000b@medloop.local", "whatever-it-is", "10.8.0.1");
    expect(res.status).toBe(400);
    expect(res.json.error!.message).toMatch(/body\.email/);
  });

  it("keeps the blocks in PostgreSQL: another API process on the same database refuses too", async () => {
    // A second app with its own pool stands for a restarted or a second API process.
    const pool = createPool(api.db.url, 2);
    const server: Server = await new Promise((resolve) => {
      const s = createApp({ ...api.deps, pool }).listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const other = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (let i = 0; i < LIMIT; i++) expect((await attempt(other, "blocked-elsewhere@medloop.local", "nope-nope", "10.9.0.1")).status).toBe(401);
      // Blocked through the second process, refused by the first one.
      const res = await login("blocked-elsewhere@medloop.local", "nope-nope", "10.9.0.2");
      expect(res.status).toBe(429);
      // And the other way round.
      for (let i = 0; i < LIMIT; i++) expect((await login("blocked-here@medloop.local", "nope-nope", "10.9.0.3")).status).toBe(401);
      expect((await attempt(other, "blocked-here@medloop.local", "nope-nope", "10.9.0.4")).status).toBe(429);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.end();
    }
  });

  it("ignores X-Forwarded-For unless MEDLOOP_TRUST_PROXY trusts the proxy", async () => {
    await endBlocks();
    const server: Server = await new Promise((resolve) => {
      const s = createApp({ ...api.deps, config: { ...api.deps.config, trustProxy: false } }).listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const direct = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      // Each attempt claims another address; the socket's address (127.0.0.1) is what counts.
      for (let i = 0; i < ADDRESS_LIMIT; i++) {
        expect((await attempt(direct, `spoof-${i}@medloop.local`, "password-guess", `10.10.0.${i + 1}`)).status).toBe(401);
      }
      const res = await attempt(direct, "admin@medloop.local", DEMO_PASSWORD, "10.10.1.1");
      expect(res.status).toBe(429);
      const { rows } = await api.db.pool.query<{ address: string }>(
        "SELECT DISTINCT details->>'address' AS address FROM audit_log WHERE action = 'auth.login_failed' AND details->>'email' LIKE 'spoof-%'",
      );
      expect(rows.map((r) => r.address)).toEqual(["127.0.0.1"]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
