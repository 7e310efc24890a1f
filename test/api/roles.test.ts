// Every operation of the OpenAPI document × every role and no token, generated from the
// document's `x-roles` (issue 10): no token → 401; a role outside x-roles → 403; a role inside
// gets past the gate (neither 401 nor 403, nor a server error). Paths name existing rows, so an
// allowed call reaches the handler, and a second doctor checks the routes where ownership matters.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROLES, type Role } from "../../services/users.js";
import { startTestApi, type CallResult, type TestApi } from "../helpers/api.js";
import { concretePath, ROW_H, ROW_W, seedApiRows, type ApiRows } from "../helpers/apiRows.js";
import { rowCounts } from "../helpers/db.js";
import { makeMaskPng } from "../helpers/images.js";

type Json = Record<string, unknown>;
interface Operation {
  method: string;
  path: string;
  operationId: string;
  roles: string[];
  isPublic: boolean;
}

/** A caller: a demo user by role (doctor2: the second doctor, who owns none of the seeded rows), or nobody. */
type Identity = Role | "doctor2" | "none";
const IDENTITIES: Identity[] = [...ROLES, "doctor2", "none"];
const roleOf = (who: Identity): Role | null => (who === "none" ? null : who === "doctor2" ? "doctor" : who);

let api: TestApi;
let rows: ApiRows;
let ops: Operation[];

beforeAll(async () => {
  api = await startTestApi();
  rows = await seedApiRows(api);
  const doc = (await api.call("GET", "/api/openapi.json")).json as { paths: Record<string, Record<string, Json>> };
  ops = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => {
      // An operation without security requirements (`security: []`) is public; x-roles lists the others' roles.
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      return { method: method.toUpperCase(), path, operationId: String(op.operationId), roles: op["x-roles"] as string[], isPublic };
    }),
  );
});
afterAll(async () => {
  await api?.close();
});

async function tokenOf(who: Identity, op: Operation): Promise<string | null> {
  if (who === "none") return null;
  const email = who === "doctor2" ? api.users.doctor2!.email : null;
  // Logging out revokes the token it is sent with: give it one of its own.
  if (op.operationId === "logout") {
    const user = email ?? Object.values(api.users).find((u) => u.role === who)!.email;
    const res = await api.call("POST", "/api/auth/login", { json: { email: user, password: "medloop-demo" } });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    return res.json.token as string;
  }
  return who === "doctor2" ? api.doctor2Token : api.tokens[who];
}

function describeCall(op: Operation, who: Identity, res: CallResult): string {
  return `${op.method} ${op.path} as ${who}: ${res.status} ${JSON.stringify(res.json)}`;
}

describe("role × route, from the OpenAPI document's x-roles", () => {
  it("lists roles for every operation, and only known roles", () => {
    expect(ops.length).toBeGreaterThan(50);
    for (const op of ops) {
      expect(Array.isArray(op.roles), op.operationId).toBe(true);
      for (const r of op.roles) expect(ROLES as readonly string[]).toContain(r);
      // Public operations are exactly those without roles.
      expect(op.isPublic, op.operationId).toBe(op.roles.length === 0);
    }
    expect(ops.filter((o) => o.isPublic).map((o) => o.operationId).sort()).toEqual(["health", "login", "loginWithTaskLink"]);
  });

  it("answers 401 without a token, 403 to a role outside x-roles, and lets the others past the gate", async () => {
    let calls = 0;
    for (const op of ops) {
      const url = concretePath(rows, op.path);
      for (const who of IDENTITIES) {
        const res = await api.call(op.method, url, { token: await tokenOf(who, op) });
        calls++;
        const role = roleOf(who);
        const msg = describeCall(op, who, res);
        if (!op.isPublic && role === null) {
          expect(res.status, msg).toBe(401);
          expect(res.json.error.code, msg).toBe("unauthenticated");
        } else if (!op.isPublic && !op.roles.includes(role!)) {
          expect(res.status, msg).toBe(403);
          expect(res.json.error.code, msg).toBe("forbidden");
          expect(res.json.error.message, msg).toContain(op.roles.join(" or "));
        } else {
          expect([401, 403], msg).not.toContain(res.status);
          expect(res.status, msg).toBeLessThan(500);
        }
      }
    }
    expect(calls).toBe(ops.length * IDENTITIES.length);
  });

  it("keeps one doctor's task, its masks and mail from another doctor (404, as if missing)", async () => {
    const owned = [
      `/api/tasks/${rows.taskId}`,
      `/api/tasks/${rows.taskId}/image`,
      `/api/tasks/${rows.taskId}/start-mask`,
      `/api/versions/${rows.versionId}/mask`,
      `/api/outbox/${rows.messageId}`,
    ];
    for (const url of owned) {
      const mine = await api.call("GET", url, { token: api.tokens.doctor });
      expect(mine.status, `doctor1 ${url}`).toBe(200);
      const theirs = await api.call("GET", url, { token: api.doctor2Token });
      expect(theirs.status, `doctor2 ${url}: ${JSON.stringify(theirs.json)}`).toBe(404);
      expect(theirs.json.error.code).toBe("not_found");
    }
    const list = await api.call("GET", "/api/tasks", { token: api.doctor2Token });
    expect(list.status).toBe(200);
    expect(list.json.map((t: { id: number }) => t.id)).not.toContain(rows.taskId);
  });

  it("refuses another doctor's well-formed submission with nothing stored", async () => {
    const before = await rowCounts(api.db.pool);
    const now = new Date().toISOString();
    const res = await api.call("POST", `/api/tasks/${rows.taskId}/submissions`, {
      token: api.doctor2Token,
      json: {
        submission_id: "not-yours",
        parent_version_id: rows.versionId,
        mask_png_base64: (await makeMaskPng(ROW_W, ROW_H, (x) => x < 5)).toString("base64"),
        active_ms: 1000,
        started_at: now,
        ended_at: now,
        edits: 1,
      },
    });
    expect(res.status, JSON.stringify(res.json)).toBe(404);
    expect(await rowCounts(api.db.pool)).toEqual(before);
    const task = await api.call("GET", `/api/tasks/${rows.taskId}`, { token: api.tokens.doctor });
    expect(task.json.task.state).toBe("open");
  });
});
