// Issue 10 (login): an unknown e-mail must cost the same work as a known one, or the answer time
// tells which e-mails have accounts (before: ~2 ms against ~38 ms). Wall-clock is not asserted
// here (benchmarks/login_timing.ts measures it); instead every path must run exactly one password
// verification, counted by wrapping services/users.ts verifyPassword.
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { startTestApi, type TestApi } from "../helpers/api.js";

const verifyCalls = vi.hoisted(() => ({ n: 0 }));

vi.mock("../../services/users.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../services/users.js")>();
  return {
    ...real,
    verifyPassword: async (password: string, stored: string) => {
      verifyCalls.n += 1;
      return real.verifyPassword(password, stored);
    },
  };
});

describe("login work", () => {
  let api: TestApi;
  const login = (email: string, password: string) => api.call("POST", "/api/auth/login", { json: { email, password } });

  beforeAll(async () => {
    api = await startTestApi({}, { MEDLOOP_LOGIN_MAX_FAILURES: "1000", MEDLOOP_LOGIN_MAX_FAILURES_PER_ADDRESS: "1000" });
    const created = await api.call("POST", "/api/users", {
      token: api.tokens.admin,
      json: { email: "disabled@medloop.local", name: "Disabled", role: "doctor", password: "disabled-user-pw" },
    });
    expect(created.status).toBe(201);
    expect((await api.call("PATCH", `/api/users/${created.json.id}`, { token: api.tokens.admin, json: { active: false } })).status).toBe(200);
  });
  afterAll(async () => {
    await api?.close();
  });
  beforeEach(() => {
    verifyCalls.n = 0;
  });

  it.each([
    ["a known account with a wrong password", "doctor1@medloop.local", "wrong-password-1", 401],
    ["an unknown e-mail", "nobody@medloop.local", "wrong-password-1", 401],
    ["an unknown e-mail, second time (dummy hash cached)", "nobody-else@medloop.local", "wrong-password-1", 401],
    ["a disabled account with its right password", "disabled@medloop.local", "disabled-user-pw", 401],
    ["a known account with the right password", "doctor1@medloop.local", "medloop-demo", 200],
  ])("verifies exactly one password for %s", async (_what, email, password, status) => {
    const res = await login(email, password);
    expect(res.status).toBe(status);
    expect(verifyCalls.n).toBe(1);
  });

  it("answers the unknown, the disabled and the wrong password alike", async () => {
    const answers = await Promise.all([
      login("doctor1@medloop.local", "wrong-password-2"),
      login("nobody@medloop.local", "wrong-password-2"),
      login("disabled@medloop.local", "disabled-user-pw"),
    ]);
    expect(new Set(answers.map((a) => JSON.stringify([a.status, a.json])).values()).size).toBe(1);
  });
});
