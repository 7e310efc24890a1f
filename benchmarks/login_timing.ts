// Login timing: how long POST /api/auth/login takes to refuse a wrong password for a known
// account, an unknown e-mail and a disabled account (issue 10: the answer time must not tell
// whether an account exists). Runs the real app over a throw-away database on the machine's
// PostgreSQL (MEDLOOP_TEST_DATABASE_URL, as the API tests) with the login throttle set high
// enough never to block, so only the login itself is measured.
//   npx tsx benchmarks/login_timing.ts [--rounds 40]  →  benchmarks/results/login_timing.json
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startTestApi } from "../test/helpers/api.js";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "40" } } });
const rounds = Number(values.rounds);

const api = await startTestApi({}, {
  MEDLOOP_LOGIN_MAX_FAILURES: "1000000",
  MEDLOOP_LOGIN_MAX_FAILURES_PER_ADDRESS: "1000000",
});
try {
  const admin = api.tokens.admin;
  const disabled = await api.call("POST", "/api/users", {
    token: admin,
    json: { email: "gone@medloop.local", name: "Gone", role: "doctor", password: "benchmark-pass-1" },
  });
  await api.call("PATCH", `/api/users/${disabled.json.id}`, { token: admin, json: { active: false } });
  const cases = {
    known_wrong_password: () => "doctor1@medloop.local",
    unknown_account: (i: number) => `nobody-${i}@medloop.local`,
    disabled_account: () => "gone@medloop.local",
  } as const;
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  const statuses: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  // Warm-up (JIT, pool connections), then the cases interleaved so drift hits all of them alike.
  for (let i = 0; i < 5; i++) await api.call("POST", "/api/auth/login", { json: { email: "warm@medloop.local", password: "x" } });
  for (let i = 0; i < rounds; i++) {
    for (const [name, email] of Object.entries(cases)) {
      const t0 = performance.now();
      const res = await api.call("POST", "/api/auth/login", { json: { email: email(i), password: "not-the-password" } });
      samples[name]!.push(performance.now() - t0);
      statuses[name]!.push(res.status);
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const result = {
    rounds,
    machine: { cpus: os.cpus().length, load1: os.loadavg()[0], node: process.version },
    median_ms: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Number(median(v).toFixed(1))])),
    min_ms: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Number(Math.min(...v).toFixed(1))])),
    statuses: Object.fromEntries(Object.entries(statuses).map(([k, v]) => [k, [...new Set(v)]])),
  };
  console.log(JSON.stringify(result, null, 2));
  const out = path.resolve(path.dirname(new URL(import.meta.url).pathname), "results", "login_timing.json");
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await api.close();
}
