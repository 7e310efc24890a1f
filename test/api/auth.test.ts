// The auth matrix: every declared route × (no token, each role) → 401, 403, or allowed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allRoutes } from "../../api/routes/index.js";
import type { RouteDef } from "../../api/route.js";
import { ROLES, type Role } from "../../services/users.js";
import { startTestApi, type TestApi } from "../helpers/api.js";

/** A concrete URL for a route: ids that do not exist, so allowed calls stop at 404/400. */
function urlOf(route: RouteDef): string {
  return `/api${route.path.replace(":id", "999999").replace(":messageId", "deadbeefdeadbeef").replace(":name", "no-such-deployment")}`;
}

function bodyOf(route: RouteDef): { json?: unknown; body?: Buffer; contentType?: string } {
  if (!route.body) return {};
  if (route.body.kind === "json") return { json: {} };
  return { body: Buffer.from("not an image"), contentType: route.body.types[0] };
}

describe("auth matrix", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api?.close();
  });

  const guarded = allRoutes.filter((r) => r.access !== "public");

  it("declares roles on every route but health, login and task-link login", () => {
    expect(allRoutes.filter((r) => r.access === "public").map((r) => r.path).sort()).toEqual([
      "/auth/login",
      "/auth/task-link",
      "/health",
    ]);
    expect(guarded.length).toBeGreaterThan(30);
  });

  it("answers 401 without a token and with a forged one", async () => {
    for (const route of guarded) {
      const none = await api.call(route.method.toUpperCase(), urlOf(route), bodyOf(route));
      expect(none.status, `${route.method} ${route.path}`).toBe(401);
      expect(none.json.error.code).toBe("unauthenticated");
      const forged = await api.call(route.method.toUpperCase(), urlOf(route), { ...bodyOf(route), token: "forged-token" });
      expect(forged.status, `${route.method} ${route.path}`).toBe(401);
    }
  });

  it("answers 403 to the roles a route does not allow, and lets the others through", async () => {
    const seen: Record<string, Record<Role, number>> = {};
    for (const route of guarded) {
      const key = `${route.method.toUpperCase()} ${route.path}`;
      seen[key] = {} as Record<Role, number>;
      for (const role of ROLES) {
        // Logging out revokes the token: use a fresh one there so the other checks keep theirs.
        const token = route.path === "/auth/logout" ? await api.freshToken(role) : api.tokens[role];
        const res = await api.call(route.method.toUpperCase(), urlOf(route), { ...bodyOf(route), token });
        seen[key][role] = res.status;
        const allowed = (route.access as readonly Role[]).includes(role);
        if (allowed) {
          expect([401, 403], `${key} as ${role}: ${JSON.stringify(res.json)}`).not.toContain(res.status);
          expect(res.status, `${key} as ${role}`).toBeLessThan(500);
        } else {
          expect(res.status, `${key} as ${role}`).toBe(403);
          expect(res.json.error.message).toContain("needs role");
        }
      }
    }
    // Spot checks of the policy itself.
    expect(seen["POST /users"]).toEqual({ lab_lead: 403, doctor: 403, auditor: 403, admin: 400, reviewer: 403 });
    expect(seen["GET /audit"]!.auditor).toBe(200);
    expect(seen["GET /audit"]!.lab_lead).toBe(403);
    expect(seen["POST /tasks/:id/submissions"]!.doctor).toBe(400);
    expect(seen["POST /tasks/:id/submissions"]!.admin).toBe(403);
    expect(seen["GET /reports/savings"]!.doctor).toBe(403);
    expect(seen["POST /campaigns"]!.auditor).toBe(403);
    expect(seen["POST /models/:id/approve"]).toEqual({ lab_lead: 404, doctor: 403, auditor: 403, admin: 404, reviewer: 403 });
    expect(seen["GET /deployments"]).toEqual({ lab_lead: 200, doctor: 403, auditor: 403, admin: 200, reviewer: 403 });
    expect(seen["POST /deployments/:name/keys"]).toEqual({ lab_lead: 404, doctor: 403, auditor: 403, admin: 404, reviewer: 403 });
    // The reviewer reads and decides reviews, and nothing of the lab's administration or reports.
    expect(seen["GET /reviews"]).toEqual({ lab_lead: 200, doctor: 403, auditor: 200, admin: 200, reviewer: 200 });
    expect(seen["GET /reports/savings"]!.reviewer).toBe(403);
  });

  it("logs in, answers /auth/me, and revokes the token on logout", async () => {
    const bad = await api.call("POST", "/api/auth/login", { json: { email: "lead@medloop.local", password: "wrong-password" } });
    expect(bad.status).toBe(401);
    expect(bad.json.error.message).toBe("wrong e-mail or password");
    const ok = await api.call("POST", "/api/auth/login", { json: { email: "Lead@medloop.local", password: "medloop-demo" } });
    expect(ok.status).toBe(200);
    expect(ok.json.user.role).toBe("lab_lead");
    const me = await api.call("GET", "/api/auth/me", { token: ok.json.token });
    expect(me.json.email).toBe("lead@medloop.local");
    expect((await api.call("POST", "/api/auth/logout", { token: ok.json.token })).status).toBe(204);
    expect((await api.call("GET", "/api/auth/me", { token: ok.json.token })).status).toBe(401);
  });

  it("refuses expired tokens and disabled users", async () => {
    const ok = await api.call("POST", "/api/auth/login", { json: { email: "auditor@medloop.local", password: "medloop-demo" } });
    await api.db.pool.query("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1", [ok.json.user.id]);
    expect((await api.call("GET", "/api/auth/me", { token: ok.json.token })).status).toBe(401);
    const admin = api.tokens.admin;
    const created = await api.call("POST", "/api/users", {
      token: admin,
      json: { email: "temp@medloop.local", name: "Temp", role: "doctor", password: "temporary-pw" },
    });
    expect(created.status).toBe(201);
    const login = await api.call("POST", "/api/auth/login", { json: { email: "temp@medloop.local", password: "temporary-pw" } });
    expect(login.status).toBe(200);
    expect((await api.call("PATCH", `/api/users/${created.json.id}`, { token: admin, json: { active: false } })).json.active).toBe(false);
    expect((await api.call("GET", "/api/auth/me", { token: login.json.token })).status).toBe(401);
  });

  it("serves an OpenAPI 3.1 document naming every route, its roles and its schemas", async () => {
    const res = await api.call("GET", "/api/openapi.json");
    expect(res.status).toBe(200);
    const doc = res.json;
    expect(doc.openapi).toBe("3.1.0");
    for (const route of allRoutes) {
      const p = `/api${route.path.replace(/:(\w+)/g, "{$1}")}`;
      const op = doc.paths[p]?.[route.method];
      expect(op, `${route.method} ${p}`).toBeDefined();
      expect(op.operationId).toBe(route.operationId);
      if (route.access !== "public") expect(op["x-roles"]).toEqual([...route.access]);
    }
    const ids = allRoutes.map((r) => r.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    // Shared components exist and every $ref resolves.
    const refs = JSON.stringify(doc).match(/"#\/components\/schemas\/[A-Za-z]+"/g) ?? [];
    for (const ref of refs) expect(doc.components.schemas[ref.slice(22, -1)], ref).toBeDefined();
    expect(doc.components.schemas.TaskDetail.properties.start_mask_url).toBeDefined();
    expect(doc.paths["/api/tasks/{id}/submissions"].post.requestBody.content["application/json"].schema.$ref).toBe(
      "#/components/schemas/SubmissionInput",
    );
  });

  it("answers unknown routes and malformed JSON with the error shape", async () => {
    const unknown = await api.call("GET", "/api/nope", { token: api.tokens.admin });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe("not_found");
    const res = await fetch(`${api.baseUrl}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/malformed JSON/);
  });
});
