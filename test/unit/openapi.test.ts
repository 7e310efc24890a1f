// The OpenAPI generator (api/openapi.ts): every operation lists the error statuses it answers by
// construction with the shared Error schema, success answers list all their content types, ids
// without the database's bound keep the document (and so the server) from being built, and
// patterns are written in the regex subset other tools read.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { buildOpenApi, impliedStatuses, portablePattern } from "../../api/openapi.js";
import { defineRoute, type RouteDef } from "../../api/route.js";
import { allRoutes } from "../../api/routes/index.js";
import { idParam, idQuery, PG_INT_MAX } from "../../api/schemas.js";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const doc = buildOpenApi(allRoutes) as Json;
const opOf = (route: RouteDef): Json => doc.paths[`/api${route.path.replace(/:(\w+)/g, "{$1}")}`][route.method];

describe("the OpenAPI document's answers", () => {
  it("lists every status a route answers by construction, each error with the Error schema as JSON", () => {
    for (const route of allRoutes) {
      const op = opOf(route);
      const statuses = Object.keys(op.responses).map(Number);
      for (const s of impliedStatuses(route)) expect(statuses, `${route.operationId} ${s}`).toContain(s);
      expect(statuses, route.operationId).toContain(500);
      // Public routes may still answer 401 (a wrong password), never 403.
      if (route.access !== "public") expect(statuses, route.operationId).toEqual(expect.arrayContaining([401, 403]));
      else expect(statuses, route.operationId).not.toContain(403);
      for (const s of statuses.filter((x) => x >= 400)) {
        expect(op.responses[s].content, `${route.operationId} ${s}`).toEqual({ "application/json": { schema: { $ref: "#/components/schemas/Error" } } });
      }
      expect(statuses.some((s) => s < 300), route.operationId).toBe(true);
    }
  });

  it("adds 413/415 to bodies, 404 to paths with ids, 422 to uploads, Retry-After to 429", () => {
    const byId = Object.fromEntries(allRoutes.map((r) => [r.operationId, opOf(r)]));
    expect(Object.keys(byId.uploadImage!.responses)).toEqual(expect.arrayContaining(["404", "413", "415", "422"]));
    expect(Object.keys(byId.submitTask!.responses)).toEqual(expect.arrayContaining(["404", "409", "413", "415", "422", "503"]));
    expect(Object.keys(byId.listProjects!.responses)).not.toContain("404");
    expect(byId.login!.responses["429"].headers["Retry-After"]).toBeDefined();
    expect(byId.getVersionOverlay!.responses["200"].headers["x-overlay-counts"]).toBeDefined();
  });

  it("lists every content type of a success answer", () => {
    const byId = Object.fromEntries(allRoutes.map((r) => [r.operationId, opOf(r)]));
    expect(Object.keys(byId.getDeploymentCard!.responses["200"].content).sort()).toEqual(["application/json", "text/markdown"]);
    expect(Object.keys(byId.getImageOriginal!.responses["200"].content)).toEqual(expect.arrayContaining(["image/png", "image/jpeg", "image/tiff"]));
    expect(Object.keys(byId.savingsCsv!.responses["200"].content)).toEqual(["text/csv"]);
  });

  it("makes a JSON body optional exactly where no body (read as {}) is valid", () => {
    const byId = Object.fromEntries(allRoutes.map((r) => [r.operationId, opOf(r)]));
    expect(byId.stopCampaign!.requestBody.required).toBe(false);
    expect(byId.approveModel!.requestBody.required).toBe(false);
    expect(byId.submitTask!.requestBody.required).toBe(true);
    expect(byId.login!.requestBody.required).toBe(true);
  });
});

describe("ids bounded by the database's integer range", () => {
  const route = (over: Partial<RouteDef>) =>
    defineRoute({
      method: "post",
      path: "/things/:id",
      operationId: "thing",
      summary: "a thing",
      tag: "t",
      access: "public",
      responses: { 200: { description: "ok" } },
      async handler() {
        return {};
      },
      ...over,
    } as RouteDef);

  it("refuses to build a document with an unbounded integer in a path, a query or a body id", () => {
    const cases: Array<[Partial<RouteDef>, RegExp]> = [
      [{ params: z.object({ id: z.coerce.number().int().positive() }) }, /path\.id is an integer without a maximum/],
      [{ query: z.object({ against: z.union([z.literal("x"), z.coerce.number().int()]) }) }, /query\.against is an integer/],
      [{ body: { kind: "json", schema: z.object({ nested: z.object({ project_id: z.int() }) }).meta({ id: "Nested" }) } }, /body\.nested\.project_id/],
    ];
    for (const [over, message] of cases) expect(() => buildOpenApi([route(over)])).toThrow(message);
  });

  it("builds it with the shared id schemas, and leaves other body integers alone", () => {
    const ok = route({
      params: idParam,
      query: z.object({ other: idQuery.optional() }),
      body: { kind: "json", schema: z.object({ active_ms: z.int().min(0) }) },
    });
    const built = buildOpenApi([ok]) as Json;
    expect(built.paths["/api/things/{id}"].post.parameters[0].schema.maximum).toBe(PG_INT_MAX);
  });
});

describe("portablePattern", () => {
  it("writes \\p{Cc} as the control character ranges, inside or outside a class", () => {
    expect(portablePattern("^[^\\p{Cc}]*$")).toBe("^[^\\x00-\\x1f\\x7f-\\x9f]*$");
    expect(portablePattern("a\\p{Cc}b")).toBe("a[\\x00-\\x1f\\x7f-\\x9f]b");
    // An escaped backslash before "p{Cc}" is a literal backslash, not the escape.
    expect(portablePattern("\\\\p{Cc}")).toBe("\\\\p{Cc}");
    expect(portablePattern("^[a-z]+$")).toBe("^[a-z]+$");
    const re = new RegExp(portablePattern("^[^\\p{Cc}]*$"));
    expect(re.test("a\u0000b")).toBe(false);
    expect(re.test("a\u0085b")).toBe(false);
    expect(re.test("dr. müller")).toBe(true);
  });
});
