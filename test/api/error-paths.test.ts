// The API's error paths for input no route may turn into a server error (issue 10, part 4):
// ids outside PostgreSQL's integer range, NUL characters in any text, corrupt or truncated image
// files, and images over the ingest contract's pixel limit. The id and query cases are generated
// from the OpenAPI document, so a route added later is covered without editing this file.
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_INPUT_DEPTH, PG_INT_MAX } from "../../api/schemas.js";
import type { CampaignWorkflows } from "../../services/campaigns.js";
import { MAX_PIXELS } from "../../services/ingest/contract.js";
import { createServingRouter, staticProvider } from "../../serving/server.js";
import type { LoadedModel } from "../../serving/model.js";
import { listFiles, startTestApi, type CallResult, type TestApi } from "../helpers/api.js";
import { concretePath, ROW_H, ROW_W, seedApiRows, type ApiRows } from "../helpers/apiRows.js";
import { rowCounts } from "../helpers/db.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";
import { listen, type Running } from "../serving/http.js";

type Json = Record<string, unknown>;
interface Operation {
  method: string;
  path: string;
  op: Json;
}

let api: TestApi;
let rows: ApiRows;
let doc: Json;
const stopCalls: string[] = [];

/** The Temporal side as far as POST /campaigns/:id/stop goes: it records that it was told. */
const workflows = {
  async stop(workflowId: string) {
    stopCalls.push(workflowId);
    return { stopped: true };
  },
} as unknown as CampaignWorkflows;

beforeAll(async () => {
  api = await startTestApi({ campaigns: workflows });
  rows = await seedApiRows(api);
  doc = (await api.call("GET", "/api/openapi.json")).json as Json;
});
afterAll(async () => {
  await api?.close();
});

function operations(): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
    for (const [method, op] of Object.entries(item)) out.push({ method: method.toUpperCase(), path, op });
  }
  return out;
}

/** A token of a role the operation allows (a doctor for doctor-only routes), so the role gate lets it by. */
function tokenFor(op: Json): string {
  const roles = op["x-roles"] as string[];
  const role = (roles.includes("lab_lead") ? "lab_lead" : roles[0]) as keyof TestApi["tokens"];
  return api.tokens[role];
}

/** Reaches the handler's validation: upload routes need a body of one of their content types. */
function call(o: Operation, url: string): Promise<CallResult> {
  const upload = (o.op.requestBody as { content?: Json } | undefined)?.content?.["image/png"] !== undefined;
  return api.call(o.method, url, { token: tokenFor(o.op), ...(upload ? { body: Buffer.from("x"), contentType: "image/png" } : {}) });
}

function expectRefused(res: CallResult, status: number, code: string, message: RegExp): void {
  expect(res.status, JSON.stringify(res.json)).toBe(status);
  expect(res.json.error.code).toBe(code);
  expect(res.json.error.message).toMatch(message);
}

const integerSchema = (s: Json): boolean => s.type === "integer" || ((s.anyOf ?? []) as Json[]).some(integerSchema);

describe("ids outside PostgreSQL's integer range", () => {
  // 2^31 is the first id an `integer` column cannot hold; 2^53 − 1 the largest a JSON number keeps exactly.
  const OUTSIDE = [2 ** 31, Number.MAX_SAFE_INTEGER];

  it("are refused with 400 naming path.id on every route with an id in its path", async () => {
    const withId = operations().filter((o) => o.path.includes("{id}"));
    expect(withId.length).toBeGreaterThan(30);
    for (const o of withId) {
      for (const id of OUTSIDE) {
        const url = concretePath(rows, o.path.replace("{id}", String(id)));
        const res = await call(o, url);
        expect(res.status, `${o.method} ${url}: ${JSON.stringify(res.json)}`).toBe(400);
        expect(res.json.error.message).toMatch(/^path\.id: /);
      }
    }
  });

  it("are refused with 400 naming the parameter on every integer query parameter", async () => {
    let checked = 0;
    for (const o of operations()) {
      for (const p of (o.op.parameters ?? []) as Json[]) {
        if (p.in !== "query" || !integerSchema(p.schema as Json)) continue;
        // A bounded count (limit ≤ 1000) is refused by its own bound; ids by the database's range.
        for (const value of OUTSIDE) {
          const url = `${concretePath(rows, o.path)}?${String(p.name)}=${value}`;
          const res = await call(o, url);
          expect(res.status, `${o.method} ${url}: ${JSON.stringify(res.json)}`).toBe(400);
          expect(res.json.error.message).toMatch(new RegExp(`^query\\.${String(p.name)}: `));
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(10);
  });

  it("are documented with the range's maximum, and the largest in-range id is just not found", async () => {
    for (const o of operations()) {
      for (const p of (o.op.parameters ?? []) as Json[]) {
        const s = p.schema as Json;
        const ints = s.type === "integer" ? [s] : ((s.anyOf ?? []) as Json[]).filter((b) => b.type === "integer");
        for (const i of ints) expect(i.maximum, `${o.method} ${o.path} ${String(p.name)}`).toBeLessThanOrEqual(PG_INT_MAX);
      }
    }
    const res = await api.call("GET", `/api/projects/${PG_INT_MAX}`, { token: api.tokens.lab_lead });
    expectRefused(res, 404, "not_found", /project 2147483647 not found/);
  });

  it("are refused in JSON bodies: a project, a parent version, an edit count, a round", async () => {
    const before = await rowCounts(api.db.pool);
    const big = 2 ** 31;
    const lead = api.tokens.lab_lead;
    expectRefused(await api.call("POST", "/api/campaigns", { token: lead, json: { project_id: big, name: "c" } }), 400, "validation_failed", /^body\.project_id: /);
    expectRefused(await api.call("POST", `/api/campaigns/${rows.campaignId}/approve`, { token: lead, json: { round: big } }), 400, "validation_failed", /^body\.round: /);
    const mask = (await makeMaskPng(ROW_W, ROW_H, () => false)).toString("base64");
    const sub = { submission_id: "big", parent_version_id: rows.versionId, mask_png_base64: mask, active_ms: 1, started_at: new Date().toISOString(), ended_at: new Date().toISOString(), edits: 1 };
    const url = `/api/tasks/${rows.taskId}/submissions`;
    expectRefused(await api.call("POST", url, { token: api.tokens.doctor, json: { ...sub, parent_version_id: big } }), 400, "validation_failed", /^body\.parent_version_id: /);
    expectRefused(await api.call("POST", url, { token: api.tokens.doctor, json: { ...sub, edits: big } }), 400, "validation_failed", /^body\.edits: /);
    expect(await rowCounts(api.db.pool)).toEqual(before);
  });
});

describe("NUL characters in any text", () => {
  it("are refused on the public login, naming the field", async () => {
    const res = await api.call("POST", "/api/auth/login", { json: { email: "a\u0000b@medloop.local", password: "medloop-demo" } });
    expectRefused(res, 400, "validation_failed", /^body\.email: must not contain NUL/);
  });

  it("are refused in a query, a path and a nested JSON key, naming where", async () => {
    expectRefused(await api.call("GET", "/api/audit?entity=a%00b", { token: api.tokens.auditor }), 400, "validation_failed", /^query\.entity: /);
    expectRefused(await api.call("GET", "/api/deployments/a%00b/keys", { token: api.tokens.lab_lead }), 400, "validation_failed", /^path\.name: /);
    // A key of the campaign config would be stored in jsonb, which cannot hold NUL either.
    const res = await api.call("POST", "/api/campaigns", {
      token: api.tokens.lab_lead,
      json: { project_id: rows.projectId, name: "n", config: { train: { "ep\u0000ochs": 1 } } },
    });
    expectRefused(res, 400, "validation_failed", /^body\.config\.train\."ep\\u0000ochs": must not contain NUL/);
    expectRefused(await api.call("POST", "/api/projects", { token: api.tokens.lab_lead, json: { name: "p\u0000" } }), 400, "validation_failed", /^body\.name: /);
  });

  it("are found however deep, and nesting past the limit is refused instead of exhausting the stack", async () => {
    const lead = api.tokens.lab_lead;
    const train = { a: [{ b: ["ok", { c: "x\u0000" }] }] };
    const nested = await api.call("POST", "/api/campaigns", { token: lead, json: { project_id: rows.projectId, name: "n", config: { train } } });
    expectRefused(nested, 400, "validation_failed", /^body\.config\.train\.a\.0\.b\.1\.c: must not contain NUL/);
    // 200 000 levels: a recursive walk (or PostgreSQL's jsonb) would fail with a server error.
    const deep = `{"name":"deep","x":${"[".repeat(200_000)}${"]".repeat(200_000)}}`;
    const res = await fetch(`${api.baseUrl}/api/projects`, { method: "POST", headers: { authorization: `Bearer ${lead}`, "content-type": "application/json" }, body: deep });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(new RegExp(`^body\\.x(\\.0)+: nested deeper than ${MAX_INPUT_DEPTH} levels`));
  });

  it("in a stop reason: 400 before the workflow is told, the campaign unchanged, no audit row", async () => {
    const { rows: c } = await api.db.pool.query<{ id: number }>(
      "INSERT INTO campaigns (project_id, name, state, workflow_id) VALUES ($1, 'nul-stop', 'running', 'wf-nul-stop') RETURNING id",
      [rows.projectId],
    );
    const audit = async () => (await api.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_log")).rows[0]!.n;
    const auditBefore = await audit();
    const res = await api.call("POST", `/api/campaigns/${c[0]!.id}/stop`, { token: api.tokens.lab_lead, json: { reason: "done\u0000" } });
    expectRefused(res, 400, "validation_failed", /^body\.reason: must not contain NUL/);
    expect(stopCalls).toEqual([]);
    expect(await audit()).toBe(auditBefore);
    const state = await api.db.pool.query<{ state: string }>("SELECT state FROM campaigns WHERE id = $1", [c[0]!.id]);
    expect(state.rows[0]!.state).toBe("running");
  });

  it("in a submission: 400 naming the field, nothing stored", async () => {
    const before = await rowCounts(api.db.pool);
    const mask = (await makeMaskPng(ROW_W, ROW_H, () => false)).toString("base64");
    const now = new Date().toISOString();
    const res = await api.call("POST", `/api/tasks/${rows.taskId}/submissions`, {
      token: api.tokens.doctor,
      json: { submission_id: "s\u0000", parent_version_id: rows.versionId, mask_png_base64: mask, active_ms: 1, started_at: now, ended_at: now, edits: 0 },
    });
    expectRefused(res, 400, "validation_failed", /^body\.submission_id: /);
    expect(await rowCounts(api.db.pool)).toEqual(before);
  });

  it("in multipart text fields and file names: 400 naming the field, nothing stored", async () => {
    const before = await rowCounts(api.db.pool);
    const png = await makeImagePng(ROW_W, ROW_H);
    const url = `/api/projects/${rows.projectId}/images`;
    const named = new FormData();
    named.set("image", new Blob([new Uint8Array(png)], { type: "image/png" }), "a.png");
    named.set("name", "a\u0000b");
    expectRefused(await api.call("POST", url, { token: api.tokens.lab_lead, body: named }), 400, "validation_failed", /^multipart\.name: must not contain NUL/);
    // The image part's file name is the default image name.
    const file = new FormData();
    file.set("image", new Blob([new Uint8Array(png)], { type: "image/png" }), "a\u0000b.png");
    expectRefused(await api.call("POST", url, { token: api.tokens.lab_lead, body: file }), 400, "validation_failed", /^multipart\.image: the file name must not contain NUL/);
    expect(await rowCounts(api.db.pool)).toEqual(before);
  });
});

describe("requests Express cannot read", () => {
  /** A raw request, as a client may send it (fetch would refuse some of these headers). */
  async function raw(method: string, url: string, headers: Record<string, string>, body?: string): Promise<{ status: number; json: Json }> {
    const res = await fetch(`${api.baseUrl}${url}`, { method, headers: { authorization: `Bearer ${api.tokens.lab_lead}`, ...headers }, body });
    return { status: res.status, json: (await res.json()) as Json };
  }

  it("answer 4xx saying why, never a server error, and store nothing", async () => {
    const before = await rowCounts(api.db.pool);
    const json = { "content-type": "application/json" };
    const cases: Array<[string, Promise<{ status: number; json: Json }>, number, RegExp]> = [
      ["an unknown charset", raw("POST", "/api/projects", { "content-type": "application/json; charset=klingon" }, '{"name":"a"}'), 415, /unsupported charset/],
      ["an unknown Content-Encoding", raw("POST", "/api/projects", { ...json, "content-encoding": "zip9" }, '{"name":"b"}'), 415, /unsupported content encoding/],
      ["a gzip body that does not inflate", raw("POST", "/api/projects", { ...json, "content-encoding": "gzip" }, '{"name":"c"}'), 400, /malformed request/],
      ["an upload that does not inflate", raw("PUT", `/api/images/${rows.imageId}/mask`, { "content-type": "image/png", "content-encoding": "deflate" }, "xx"), 400, /malformed request/],
      ["malformed percent-encoding in the path", raw("GET", "/api/projects/%ZZ", {}), 400, /Failed to decode/],
    ];
    for (const [what, pending, status, message] of cases) {
      const res = await pending;
      expect(res.status, `${what}: ${JSON.stringify(res.json)}`).toBe(status);
      expect((res.json.error as { message: string }).message, what).toMatch(message);
    }
    expect(await rowCounts(api.db.pool)).toEqual(before);
  });
});

// ------------------------------------------------------------------------ image files

/** A PNG whose header claims `width`×`height` and whose pixel data is cut short. */
function headerOnlyPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // 8-bit grey
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(Buffer.alloc(100)))]);
}

interface FileRoute {
  name: string;
  /** Sends `file` as the route's image, mask or FOV and answers. */
  send(file: Buffer): Promise<CallResult>;
}

function fileRoutes(): FileRoute[] {
  const lead = api.tokens.lab_lead;
  const upload = `/api/projects/${rows.projectId}/images`;
  const form = async (parts: Record<string, Buffer>) => {
    const f = new FormData();
    for (const [field, data] of Object.entries(parts)) f.set(field, new Blob([new Uint8Array(data)]), `${field}-file.png`);
    f.set("name", `form-${Object.keys(parts).join("-")}`);
    return f;
  };
  const png = () => makeImagePng(ROW_W, ROW_H);
  return [
    { name: "raw image upload", send: (file) => api.call("POST", `${upload}?name=raw`, { token: lead, body: file, contentType: "image/png" }) },
    { name: "multipart image", send: async (file) => api.call("POST", upload, { token: lead, body: await form({ image: file }) }) },
    { name: "multipart mask", send: async (file) => api.call("POST", upload, { token: lead, body: await form({ image: await png(), mask: file }) }) },
    { name: "multipart fov", send: async (file) => api.call("POST", upload, { token: lead, body: await form({ image: await png(), fov: file }) }) },
    { name: "PUT mask", send: (file) => api.call("PUT", `/api/images/${rows.imageId}/mask`, { token: lead, body: file, contentType: "image/png" }) },
    { name: "PUT fov", send: (file) => api.call("PUT", `/api/images/${rows.imageId}/fov`, { token: lead, body: file, contentType: "image/png" }) },
    {
      name: "task submission",
      send: (file) => {
        const now = new Date().toISOString();
        return api.call("POST", `/api/tasks/${rows.taskId}/submissions`, {
          token: api.tokens.doctor,
          json: {
            submission_id: `file-${Math.random()}`,
            parent_version_id: rows.versionId,
            mask_png_base64: file.toString("base64"),
            active_ms: 1000,
            started_at: now,
            ended_at: now,
            edits: 1,
          },
        });
      },
    },
  ];
}

/** The stored state a refused file must leave as it was: rows, blobs, and the seeded image's masks. */
async function storedState() {
  const image = await api.db.pool.query("SELECT mask_uri, fov_uri FROM images WHERE id = $1", [rows.imageId]);
  const task = await api.db.pool.query("SELECT state FROM tasks WHERE id = $1", [rows.taskId]);
  return { counts: await rowCounts(api.db.pool), blobs: await listFiles(api.deps.config.blobRoot), image: image.rows[0], task: task.rows[0] };
}

describe("a corrupt or truncated image or mask", () => {
  it("answers 415 naming the file on every route that reads one, and stores nothing", async () => {
    const png = await makeMaskPng(ROW_W, ROW_H, (x) => x < 10);
    const jpeg = await sharp(await makeImagePng(ROW_W, ROW_H)).jpeg().toBuffer();
    const broken: Record<string, Buffer> = {
      "a PNG cut in half": png.subarray(0, png.length >> 1),
      "a PNG cut after its header": png.subarray(0, 40),
      "a JPEG cut in half": jpeg.subarray(0, jpeg.length >> 1),
      "bytes that are no image": Buffer.from("this is not an image file at all"),
    };
    const before = await storedState();
    for (const route of fileRoutes()) {
      for (const [what, file] of Object.entries(broken)) {
        const res = await route.send(file);
        expect(res.status, `${route.name}, ${what}: ${JSON.stringify(res.json)}`).toBe(415);
        expect(res.json.error.code).toBe("unsupported_media_type");
        expect(res.json.error.message).toMatch(/damaged|could not be decoded|not an image file/);
      }
    }
    // The multipart answers name the part's file name.
    const named = await fileRoutes()[2]!.send(broken["a PNG cut in half"]!);
    expect(named.json.error.message).toMatch(/^mask mask-file\.png: /);
    expect(await storedState()).toEqual(before);
  });

  it("is never a server error, wherever the file is cut", async () => {
    const png = await makeMaskPng(ROW_W, ROW_H, (x) => x < 20);
    const put = fileRoutes().find((r) => r.name === "PUT mask")!;
    const statuses = new Set<number>();
    for (let cut = 1; cut < png.length; cut += Math.ceil(png.length / 25)) statuses.add((await put.send(png.subarray(0, cut))).status);
    // Cut after its last pixel row, a PNG missing only its end marker is still the whole mask.
    expect([...statuses].every((s) => s === 415 || s === 200), [...statuses].join(", ")).toBe(true);
    expect(statuses.has(415)).toBe(true);
  });
});

describe("one maximum pixel count for images", () => {
  const LIMIT = new RegExp(`the limit is ${MAX_PIXELS} pixels`);
  let big: Buffer;
  beforeAll(async () => {
    // One pixel row more than the limit allows (5001 × 5000 > 25 000 000), a real, whole PNG.
    const width = 5001;
    const height = Math.floor(MAX_PIXELS / 5000);
    expect(width * height).toBeGreaterThan(MAX_PIXELS);
    big = await sharp(Buffer.alloc(width * height), { raw: { width, height, channels: 1 } }).png().toBuffer();
  });

  it("answers 413 naming the limit on every route that reads an image or mask, and stores nothing", async () => {
    const before = await storedState();
    const files: Record<string, Buffer> = {
      "a whole PNG over the limit": big,
      // The 16000×16000 upload: refused from the header, before anything is decoded.
      "a 16000×16000 PNG header": headerOnlyPng(16000, 16000),
      "a PGM header over the limit": Buffer.from("P5\n6000 5000\n255\n"),
    };
    for (const route of fileRoutes()) {
      for (const [what, file] of Object.entries(files)) {
        const res = await route.send(file);
        expect(res.status, `${route.name}, ${what}: ${JSON.stringify(res.json)}`).toBe(413);
        expect(res.json.error.code).toBe("payload_too_large");
        expect(res.json.error.message).toMatch(LIMIT);
      }
    }
    expect(await storedState()).toEqual(before);
  });

  it("is the same limit for served models (/v1/models/:name/segment)", async () => {
    // The pixel check comes before the model runs, so a stand-in model is enough here.
    const provider = staticProvider([{ name: "m", version: "1", model: {} as LoadedModel }], { m: ["key"] });
    const srv: Running = await listen(createServingRouter({ provider }).router);
    try {
      for (const file of [big, headerOnlyPng(16000, 16000)]) {
        const res = await fetch(`${srv.url}/v1/models/m/segment`, { method: "POST", headers: { authorization: "Bearer key" }, body: new Uint8Array(file) });
        expect(res.status).toBe(413);
        expect(((await res.json()) as { error: string }).error).toMatch(LIMIT);
      }
    } finally {
      await srv.close();
    }
  });
});
