// Issue 10 (sessions, passwords, admins): a password reset or disabling a user revokes all of
// their sessions (re-enabling revives none); a minimal password policy on every password that is
// set; the last active admin cannot be demoted or disabled, also when two admins race.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_PASSWORD } from "../../services/users.js";
import { startTestApi, type TestApi } from "../helpers/api.js";

describe("users: sessions, password policy, last admin", () => {
  let api: TestApi;
  let seq = 0;
  const login = (email: string, password: string) => api.call("POST", "/api/auth/login", { json: { email, password } });
  const me = (token: string) => api.call("GET", "/api/auth/me", { token });
  const patch = (id: number, json: unknown, token = api.tokens.admin) => api.call("PATCH", `/api/users/${id}`, { token, json });
  async function newUser(role = "doctor", password = "first-password-1"): Promise<{ id: number; email: string; password: string }> {
    const email = `user-${++seq}@medloop.local`;
    const res = await api.call("POST", "/api/users", { token: api.tokens.admin, json: { email, name: `User ${seq}`, role, password } });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    return { id: res.json.id, email, password };
  }
  async function tokensOf(email: string, password: string, n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await login(email, password);
      expect(res.status).toBe(200);
      out.push(res.json.token);
    }
    return out;
  }

  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api?.close();
  });

  describe("sessions", () => {
    it("revokes every session of a user whose password is reset; others keep theirs", async () => {
      const u = await newUser();
      const tokens = await tokensOf(u.email, u.password, 2);
      const bystander = await newUser();
      const [other] = await tokensOf(bystander.email, bystander.password, 1);
      const res = await patch(u.id, { password: "second-password-2" });
      expect(res.status).toBe(200);
      for (const t of tokens) expect((await me(t)).status).toBe(401);
      expect((await me(other!)).status).toBe(200);
      expect((await login(u.email, u.password)).status).toBe(401);
      const fresh = await login(u.email, "second-password-2");
      expect(fresh.status).toBe(200);
      expect((await me(fresh.json.token)).status).toBe(200);
      const audit = await api.call("GET", `/api/audit?entity=user&action=user.update`, { token: api.tokens.admin });
      const row = audit.json.find((r: { entity_id: string }) => r.entity_id === String(u.id));
      expect(row.details).toEqual({ fields: ["password"], sessions_revoked: 2 });
      expect(JSON.stringify(audit.json)).not.toContain("second-password-2");
    });

    it("revokes the sessions of a disabled user, and enabling them again revives none", async () => {
      const u = await newUser();
      const [token] = await tokensOf(u.email, u.password, 1);
      expect((await patch(u.id, { active: false })).json.active).toBe(false);
      expect((await me(token!)).status).toBe(401);
      expect((await login(u.email, u.password)).status).toBe(401);
      expect((await patch(u.id, { active: true })).json.active).toBe(true);
      expect((await me(token!)).status).toBe(401);
      // A new login works again.
      const again = await login(u.email, u.password);
      expect(again.status).toBe(200);
      expect((await me(again.json.token)).status).toBe(200);
    });

    it("keeps sessions on a change of name or role", async () => {
      const u = await newUser();
      const [token] = await tokensOf(u.email, u.password, 1);
      expect((await patch(u.id, { name: "Renamed", role: "auditor" })).status).toBe(200);
      expect((await me(token!)).json.role).toBe("auditor");
    });
  });

  describe("password policy", () => {
    const cases: Array<[string, string, string]> = [
      ["empty", "", "blank"],
      ["eight spaces", "        ", "blank"],
      ["twelve spaces", "            ", "blank"],
      ["a tab inside", "correct\thorse-battery", "control_characters"],
      ["a NUL byte", "correct\u0000horse-battery", "control_characters"],
      ["a newline", "correct-horse\nbattery", "control_characters"],
      ["12345678", "12345678", "min_length"],
      ["too short", "short-pw", "min_length"],
      ["too long", "x".repeat(150) + "y".repeat(51), "max_length"],
      ["one character repeated", "aaaaaaaaaaaaaaa", "repeated_character"],
      ["a common password", "qwerty123456", "common_password"],
      ["a common password in other case", "PassWord1234", "common_password"],
      ["another common password", "1q2w3e4r5t6y", "common_password"],
    ];

    it.each(cases)("refuses %s on create with a 400 naming the rule", async (_what, password, rule) => {
      const res = await api.call("POST", "/api/users", {
        token: api.tokens.admin,
        json: { email: `policy-${++seq}@medloop.local`, name: "Policy", role: "doctor", password },
      });
      expect(res.status, JSON.stringify(res.json)).toBe(400);
      expect(res.json.error.code).toBe("validation_failed");
      expect(res.json.error.message).toContain("password");
      if (password.trim()) expect(res.json.error.message).not.toContain(password);
      // A NUL byte is refused by the API's guard on every string (api/app.ts) before the policy
      // sees it; the policy's rule for it is checked in test/unit/login-settings.test.ts.
      if (password.includes("\u0000")) return;
      expect(res.json.error.message).toContain(`rule ${rule}`);
      expect(res.json.error.details).toEqual({ field: "password", rule });
    });

    it.each(cases)("refuses %s on a reset, changing nothing and revoking nothing", async (_what, password, rule) => {
      const u = await newUser();
      const [token] = await tokensOf(u.email, u.password, 1);
      const res = await patch(u.id, { password });
      expect(res.status).toBe(400);
      if (!password.includes("\u0000")) expect(res.json.error.details).toEqual({ field: "password", rule });
      expect((await me(token!)).status).toBe(200);
      expect((await login(u.email, u.password)).status).toBe(200);
    });

    it("accepts the demo password and a long passphrase with spaces and accents", async () => {
      await newUser("doctor", DEMO_PASSWORD);
      const u = await newUser("doctor", "  über correct horse battery staple  ");
      expect((await login(u.email, u.password)).status).toBe(200);
    });
  });

  describe("the last active admin", () => {
    const admins = async () =>
      (await api.db.pool.query<{ id: number }>("SELECT id FROM users WHERE role = 'admin' AND active ORDER BY id")).rows.map((r) => r.id);

    it("cannot demote or disable themself while no other admin is active (409 naming why)", async () => {
      const adminId = api.users.admin!.id;
      expect(await admins()).toEqual([adminId]);
      const demote = await patch(adminId, { role: "lab_lead" });
      expect(demote.status).toBe(409);
      expect(demote.json.error.code).toBe("conflict");
      expect(demote.json.error.message).toMatch(/last active admin/);
      const disable = await patch(adminId, { active: false });
      expect(disable.status).toBe(409);
      expect(disable.json.error.message).toMatch(/last active admin/);
      // A disabled admin does not count as one.
      const sleeper = await newUser("admin");
      expect((await patch(sleeper.id, { active: false })).status).toBe(200);
      expect((await patch(adminId, { role: "doctor" })).status).toBe(409);
      expect(await admins()).toEqual([adminId]);
      // Harmless changes of the last admin still go through.
      expect((await patch(adminId, { name: "Ada Admin", role: "admin", active: true })).status).toBe(200);
    });

    it("can be demoted once another admin is active", async () => {
      const other = await newUser("admin");
      const [otherToken] = await tokensOf(other.email, other.password, 1);
      expect((await patch(other.id, { role: "lab_lead" })).status).toBe(200);
      // The former admin is refused now (same token, role read afresh).
      expect((await patch(api.users.admin!.id, { name: "x" }, otherToken)).status).toBe(403);
    });

    it("two admins demoting (or disabling) each other at once leave exactly one admin", async () => {
      const adminId = api.users.admin!.id;
      for (let round = 0; round < 6; round++) {
        const other = await newUser("admin");
        const [otherToken] = await tokensOf(other.email, other.password, 1);
        const change = round % 2 === 0 ? { role: "doctor" } : { active: false };
        const [a, b] = await Promise.all([patch(other.id, change), patch(adminId, change, otherToken!)]);
        const statuses = [a.status, b.status].sort();
        // One wins; the other is refused, by the last-admin rule or (when it came second and the
        // winner had already demoted its caller) by the role check.
        expect(statuses[0], JSON.stringify([a.json, b.json])).toBe(200);
        expect([403, 409]).toContain(statuses[1]);
        const left = await admins();
        expect(left).toHaveLength(1);
        if (left[0] !== adminId) {
          // The other admin won: make the demo admin the admin again for the next round.
          const [token] = await tokensOf(other.email, other.password, 1);
          expect((await patch(adminId, { role: "admin", active: true }, token)).status).toBe(200);
          api.tokens.admin = await api.freshToken("admin");
          expect((await patch(other.id, { role: "doctor" })).status).toBe(200);
        }
        expect(await admins()).toEqual([adminId]);
      }
    });

    it("two admins editing each other at once both succeed (no deadlock between their rows)", async () => {
      const other = await newUser("admin");
      const [otherToken] = await tokensOf(other.email, other.password, 1);
      for (let round = 0; round < 5; round++) {
        const [a, b] = await Promise.all([
          patch(other.id, { name: `Other ${round}` }),
          patch(api.users.admin!.id, { name: `Ada ${round}` }, otherToken!),
        ]);
        expect([a.status, b.status], JSON.stringify([a.json, b.json])).toEqual([200, 200]);
      }
      expect((await patch(other.id, { role: "doctor" })).status).toBe(200);
    });
  });
});
