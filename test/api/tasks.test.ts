// Doctors' tasks through the HTTP API: who sees what, submissions stored as annotation
// versions with their timing and pixel changes, malformed submissions refused with nothing
// written, and well-formed ones with an odd timing (a doctor's clock) stored, clamped and flagged.
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordPrediction } from "../../services/annotations.js";
import { importImage, type Image } from "../../services/images.js";
import { recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { assignTask, createTask, type Task } from "../../services/tasks.js";
import { listFiles, startTestApi, type TestApi } from "../helpers/api.js";
import { rowCounts } from "../helpers/db.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";

const W = 64;
const H = 48;

describe("tasks API", () => {
  let api: TestApi;
  let images: Image[];
  let projectId: number;
  let predictionId: number;
  let predictionMask: Buffer;

  beforeAll(async () => {
    // A 1 MiB upload limit makes the oversized case cheap.
    api = await startTestApi({}, { MEDLOOP_MAX_UPLOAD_MB: "1" });
    const project = await createProject(api.db.pool, { name: "tasks" }, null);
    projectId = project.id;
    images = [];
    for (let i = 0; i < 4; i++) {
      images.push(await importImage(api.deps, { projectId, name: `img${i}`, data: await makeImagePng(W, H), role: "pool", actorId: null }));
    }
    // A model's prediction for image 1: the left half of the image.
    const model = await recordModel(api.db.pool, { campaignId: null, round: null, uri: "blob://runs/test/model/" });
    predictionMask = await makeMaskPng(W, H, (x) => x < W / 2);
    const maskUri = await api.deps.blobs.put("runs/test/pred/img1.png", predictionMask);
    const prediction = await recordPrediction(api.deps, { campaignId: null, round: null, modelId: model.id, imageId: images[1]!.id, maskUri });
    predictionId = prediction.id;
    expect(prediction.foreground_pixels).toBe((W / 2) * H);
    // The same prediction recorded again (a retried activity) is the same version.
    expect((await recordPrediction(api.deps, { campaignId: null, round: null, modelId: model.id, imageId: images[1]!.id, maskUri })).id).toBe(predictionId);
  });
  afterAll(async () => {
    await api?.close();
  });

  async function newTask(imageIdx: number, assignee: "doctor1" | "doctor2", kind: "annotate" | "correct" = "annotate", workflowId?: string): Promise<Task> {
    const task = await createTask(api.db.pool, {
      projectId,
      imageId: images[imageIdx]!.id,
      kind,
      parentVersionId: kind === "correct" ? predictionId : null,
      workflowId: workflowId ?? null,
    });
    return assignTask(api.db.pool, { taskId: task.id, assigneeId: api.users[assignee]!.id });
  }

  function submission(over: Record<string, unknown> = {}, mask?: Buffer) {
    const ended = new Date();
    const started = new Date(ended.getTime() - 120_000);
    return {
      submission_id: `sub-${Math.random().toString(36).slice(2)}`,
      parent_version_id: null,
      active_ms: 90_000,
      started_at: started.toISOString(),
      ended_at: ended.toISOString(),
      edits: 12,
      ...(mask ? { mask_png_base64: mask.toString("base64") } : {}),
      ...over,
    };
  }

  it("shows a doctor only their own tasks; staff see all", async () => {
    const mine = await newTask(0, "doctor1");
    const theirs = await newTask(2, "doctor2");
    const d1 = api.tokens.doctor;
    const inbox = await api.call("GET", "/api/tasks/mine", { token: d1 });
    expect(inbox.status).toBe(200);
    expect(inbox.json.map((t: Task) => t.id)).toContain(mine.id);
    expect(inbox.json.map((t: Task) => t.id)).not.toContain(theirs.id);
    const listed = await api.call("GET", `/api/tasks?assignee_id=${api.users.doctor2!.id}`, { token: d1 });
    expect(listed.json.every((t: Task) => t.assignee_id === api.users.doctor1!.id)).toBe(true);
    for (const suffix of ["", "/image", "/start-mask"]) {
      const res = await api.call("GET", `/api/tasks/${theirs.id}${suffix}`, { token: d1 });
      expect(res.status, suffix).toBe(404);
    }
    const all = await api.call("GET", "/api/tasks", { token: api.tokens.lab_lead });
    expect(all.json.map((t: Task) => t.id)).toEqual(expect.arrayContaining([mine.id, theirs.id]));
    const detail = await api.call("GET", `/api/tasks/${mine.id}`, { token: d1 });
    expect(detail.status).toBe(200);
    expect(detail.json.image).toMatchObject({ width: W, height: H });
    expect(detail.json.start_mask_url).toBeNull();
    const png = await api.call("GET", detail.json.image_url, { token: d1 });
    expect(png.headers.get("content-type")).toBe("image/png");
    expect(png.bytes.subarray(1, 4).toString()).toBe("PNG");
  });

  it("stores a mask drawn from scratch as a manual version with its timing", async () => {
    const task = await newTask(3, "doctor1");
    const mask = await makeMaskPng(W, H, (x, y) => x < 10 && y < 10);
    const body = submission({}, mask);
    const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json: body });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json.version).toMatchObject({
      kind: "manual",
      parent_id: null,
      author_id: api.users.doctor1!.id,
      active_ms: 90_000,
      edits: 12,
      foreground_pixels: 100,
      pixels_changed: 100,
      submission_id: body.submission_id,
      simulated: false,
    });
    // No workflow behind this task: it is done once stored.
    expect(res.json.task.state).toBe("done");
    expect(res.json.workflow_notified).toBe(false);
    const stored = await api.call("GET", res.json.version.mask_url, { token: api.tokens.doctor });
    expect(stored.status).toBe(200);
    const audit = await api.call("GET", `/api/audit?entity=task&entity_id=${task.id}&action=task.submit`, { token: api.tokens.auditor });
    expect(audit.json).toHaveLength(1);
    expect(audit.json[0].details.version_id).toBe(res.json.version.id);
  });

  it("serves the start prediction's probability map for the assisted tools and stores the editor's actions", async () => {
    const image = await importImage(api.deps, { projectId, name: "with-prob", data: await makeImagePng(W, H), role: "pool", actorId: null });
    const model = await recordModel(api.db.pool, { campaignId: null, round: null, uri: "blob://runs/test-prob/model/" });
    // A 16-bit probability PNG as the engine writes it (here 8-bit values widened: v × 257).
    const grey = Uint8Array.from({ length: W * H }, (_, i) => (i % W) * 4);
    const samples = Uint16Array.from(grey, (v) => v * 257);
    const probPng = await sharp(grey, { raw: { width: W, height: H, channels: 1 } }).toColourspace("grey16").png().toBuffer();
    expect((await sharp(probPng).metadata()).depth).toBe("ushort");
    const maskUri = await api.deps.blobs.put("runs/test-prob/pred/mask.png", await makeMaskPng(W, H, (x) => x >= W / 2));
    const probUri = await api.deps.blobs.put("runs/test-prob/pred/prob.png", probPng);
    const prediction = await recordPrediction(api.deps, { campaignId: null, round: null, modelId: model.id, imageId: image.id, maskUri, probUri });
    const created = await createTask(api.db.pool, { projectId, imageId: image.id, kind: "correct", parentVersionId: prediction.id, workflowId: null });
    const task = await assignTask(api.db.pool, { taskId: created.id, assigneeId: api.users.doctor1!.id });

    const detail = await api.call("GET", `/api/tasks/${task.id}`, { token: api.tokens.doctor });
    expect(detail.json.probability_url).toBe(`/api/tasks/${task.id}/probability`);
    const prob = await api.call("GET", detail.json.probability_url, { token: api.tokens.doctor });
    expect(prob.status).toBe(200);
    expect(prob.headers.get("content-type")).toBe("application/octet-stream");
    expect([prob.headers.get("x-image-width"), prob.headers.get("x-image-height")]).toEqual([String(W), String(H)]);
    const got = new Uint16Array(prob.bytes.buffer.slice(prob.bytes.byteOffset, prob.bytes.byteOffset + prob.bytes.length));
    expect(Array.from(got)).toEqual(Array.from(samples));
    // Nobody else's task, and no map for a task without one.
    expect((await api.call("GET", detail.json.probability_url, { token: api.doctor2Token })).status).toBe(404);
    const empty = await newTask(0, "doctor1");
    expect((await api.call("GET", `/api/tasks/${empty.id}`, { token: api.tokens.doctor })).json.probability_url).toBeNull();
    const none = await api.call("GET", `/api/tasks/${empty.id}/probability`, { token: api.tokens.doctor });
    expect(none.status).toBe(404);
    expect(none.json.error.message).toMatch(/no probability map/);

    const actions = [
      { tool: "trace", clicks: 3, travel_px: 120.5, path_px: 0, width_px: 3.5, ms: 2400 },
      { tool: "remove", clicks: 1, travel_px: 40, path_px: 0, width_px: 4, ms: 700 },
      { tool: "brush", clicks: 1, travel_px: 10, path_px: 55.2, width_px: 8, ms: 1500 },
    ];
    const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, {
      token: api.tokens.doctor,
      json: submission({ parent_version_id: prediction.id, actions }, await makeMaskPng(W, H, (x) => x >= W / 2 - 2)),
    });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json.version.actions).toEqual(actions);
    expect(res.json.version.effort_minutes).toBeGreaterThan(0);
    const stored = await api.db.pool.query("SELECT actions FROM annotation_versions WHERE id = $1", [res.json.version.id]);
    expect(stored.rows[0].actions).toEqual(actions);
    // A malformed action is refused by field, and nothing is stored.
    const other = await newTask(1, "doctor1", "correct");
    const bad = await api.call("POST", `/api/tasks/${other.id}/submissions`, {
      token: api.tokens.doctor,
      json: submission({ parent_version_id: predictionId, actions: [{ tool: "magic", clicks: 1, travel_px: 0, path_px: 0, width_px: 1 }] }, predictionMask),
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/actions\.0\.tool/);
  });

  it("measures the agreement between the doctors who annotated one image, pair by pair", async () => {
    const image = await importImage(api.deps, { projectId, name: "two-doctors", data: await makeImagePng(W, H), role: "pool", actorId: null });
    const columns = { doctor1: 20, doctor2: 24 } as const;
    for (const who of ["doctor1", "doctor2"] as const) {
      const created = await createTask(api.db.pool, { projectId, imageId: image.id, kind: "annotate", parentVersionId: null, workflowId: null });
      const task = await assignTask(api.db.pool, { taskId: created.id, assigneeId: api.users[who]!.id });
      const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, {
        token: who === "doctor1" ? api.tokens.doctor : api.doctor2Token,
        json: submission({}, await makeMaskPng(W, H, (x) => x < columns[who])),
      });
      expect(res.status, JSON.stringify(res.json)).toBe(201);
    }
    const res = await api.call("GET", `/api/images/${image.id}/agreement`, { token: api.tokens.lab_lead });
    expect(res.status).toBe(200);
    expect(res.json.versions.map((v: { author_id: number }) => v.author_id)).toEqual([api.users.doctor1!.id, api.users.doctor2!.id]);
    expect(res.json.pairs).toHaveLength(1);
    expect(res.json.pairs[0].dice).toBeCloseTo((2 * 20) / (20 + 24), 6); // columns 0-19 against 0-23
    expect(res.json.dice_mean).toBeCloseTo(res.json.pairs[0].dice, 12);
    expect((await api.call("GET", `/api/images/${image.id}/agreement`, { token: api.tokens.doctor })).status).toBe(403);
  });

  it("starts a correction from the prediction and counts the pixels changed against it", async () => {
    const task = await newTask(1, "doctor1", "correct");
    const detail = await api.call("GET", `/api/tasks/${task.id}`, { token: api.tokens.doctor });
    expect(detail.json.start_version.id).toBe(predictionId);
    const start = await api.call("GET", detail.json.start_mask_url, { token: api.tokens.doctor });
    expect(start.bytes.equals(predictionMask)).toBe(true);
    // The corrected mask: the prediction (x < 32) widened by 4 columns → 4 × 48 pixels changed.
    const corrected = await makeMaskPng(W, H, (x) => x < W / 2 + 4);
    const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, {
      token: api.tokens.doctor,
      json: submission({ parent_version_id: predictionId, active_ms: 30_000 }, corrected),
    });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json.version).toMatchObject({ kind: "correction", parent_id: predictionId, pixels_changed: 4 * H, foreground_pixels: (W / 2 + 4) * H });
    // Live evaluation: the prediction (32 columns) scored against the correction (36 columns).
    expect(res.json.version.start_f1).toBeCloseTo((2 * 32) / (32 + 36), 5);
    expect(res.json.version.start_cldice).toBeGreaterThan(0);
    // The overlay of the correction against the prediction shows the 4 added columns as red.
    const overlay = await api.call("GET", `/api/versions/${res.json.version.id}/overlay?against=${predictionId}`, { token: api.tokens.lab_lead });
    expect(overlay.status).toBe(200);
    expect(overlay.headers.get("x-overlay-counts")).toBe(`tp=${(W / 2) * H}, fp=${4 * H}, fn=0`);
    const sharp = (await import("sharp")).default;
    const { data, info } = await sharp(overlay.bytes).raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => Array.from(data.subarray((y * W + x) * info.channels, (y * W + x) * info.channels + 3));
    const [r, g] = px(W / 2 + 1, 10) as [number, number];
    expect(r).toBeGreaterThan(g); // red: only in the correction
    // No reference mask on this image; doctors may not fetch overlays.
    expect((await api.call("GET", `/api/versions/${res.json.version.id}/overlay`, { token: api.tokens.lab_lead })).status).toBe(404);
    expect((await api.call("GET", `/api/versions/${res.json.version.id}/overlay`, { token: api.tokens.doctor })).status).toBe(403);
  });

  it("answers a retried submission with the stored version and writes nothing new", async () => {
    const task = await newTask(0, "doctor1");
    const mask = await makeMaskPng(W, H, (x, y) => x === y);
    const body = submission({}, mask);
    const first = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json: body });
    expect(first.status).toBe(201);
    const before = await rowCounts(api.db.pool);
    const files = await listFiles(api.deps.config.blobRoot);
    const again = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json: body });
    expect(again.status).toBe(201);
    expect(again.json.duplicate).toBe(true);
    expect(again.json.version.id).toBe(first.json.version.id);
    // The same submission id with another mask is a conflict, not a second version.
    const other = await makeMaskPng(W, H, (x) => x === 0);
    const clash = await api.call("POST", `/api/tasks/${task.id}/submissions`, {
      token: api.tokens.doctor,
      json: { ...body, mask_png_base64: other.toString("base64") },
    });
    expect(clash.status).toBe(409);
    expect(clash.json.error.message).toContain("already used");
    // A new submission id on the finished task is refused too.
    const late = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json: submission({}, mask) });
    expect(late.status).toBe(409);
    expect(late.json.error.message).toMatch(/is done/);
    expect(await rowCounts(api.db.pool)).toEqual(before);
    expect(await listFiles(api.deps.config.blobRoot)).toEqual(files);
  });

  it("refuses bad submissions with a 4xx naming the problem and writes nothing", async () => {
    const task = await newTask(2, "doctor1");
    const correction = await newTask(1, "doctor1", "correct");
    const good = await makeMaskPng(W, H, (x) => x < 5);
    const cases: Array<{ name: string; taskId: number; body: unknown; status: number; message: RegExp; token?: string }> = [
      // The mask is read under the ingest contract (docs/ingest.md): refusals by its codes.
      { name: "wrong size", taskId: task.id, body: submission({}, await makeMaskPng(40, 40, () => true)), status: 422, message: /40x40 but the image is 64x48/ },
      { name: "not an image", taskId: task.id, body: submission({}, Buffer.from("hello, not an image")), status: 415, message: /not an image file of a supported format/ },
      { name: "stale parent", taskId: correction.id, body: submission({ parent_version_id: null }, good), status: 409, message: /starts from version \d+ but the submission builds on an empty mask/ },
      { name: "unknown parent on scratch task", taskId: task.id, body: submission({ parent_version_id: predictionId }, good), status: 409, message: /stale|starts from an empty mask/ },
      { name: "unknown task", taskId: 999999, body: submission({}, good), status: 404, message: /task 999999 not found/ },
      { name: "another doctor's task", taskId: task.id, body: submission({}, good), status: 404, message: /not found/, token: api.doctor2Token },
      { name: "missing field", taskId: task.id, body: { ...submission({}, good), active_ms: undefined }, status: 400, message: /body\.active_ms/ },
      { name: "negative edits", taskId: task.id, body: submission({ edits: -1 }, good), status: 400, message: /body\.edits/ },
      { name: "negative active time", taskId: task.id, body: submission({ active_ms: -5 }, good), status: 400, message: /body\.active_ms/ },
      { name: "active time not a number", taskId: task.id, body: submission({ active_ms: "90s" }, good), status: 400, message: /body\.active_ms/ },
      { name: "fractional active time", taskId: task.id, body: submission({ active_ms: 12.5 }, good), status: 400, message: /body\.active_ms/ },
      { name: "started_at not a time", taskId: task.id, body: submission({ started_at: "yesterday" }, good), status: 400, message: /body\.started_at/ },
      { name: "missing mask", taskId: task.id, body: submission({}), status: 400, message: /body\.mask_png_base64/ },
    ];
    const before = await rowCounts(api.db.pool);
    const auditBefore = (await api.db.pool.query("SELECT count(*)::int AS n FROM audit_log")).rows[0].n;
    const files = await listFiles(api.deps.config.blobRoot);
    for (const c of cases) {
      const res = await api.call("POST", `/api/tasks/${c.taskId}/submissions`, { token: c.token ?? api.tokens.doctor, json: c.body });
      expect(res.status, `${c.name}: ${JSON.stringify(res.json)}`).toBe(c.status);
      expect(res.json.error.message, c.name).toMatch(c.message);
    }
    // Larger than the 1 MiB limit → 413.
    const huge = submission({}, good);
    (huge as Record<string, unknown>).mask_png_base64 = Buffer.alloc(1_200_000, 7).toString("base64");
    const big = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json: huge });
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe("payload_too_large");
    const wrongType = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, body: good, contentType: "image/png" });
    expect(wrongType.status).toBe(415);

    expect(await rowCounts(api.db.pool)).toEqual(before);
    expect((await api.db.pool.query("SELECT count(*)::int AS n FROM audit_log")).rows[0].n).toBe(auditBefore);
    expect(await listFiles(api.deps.config.blobRoot)).toEqual(files);
    // The task is still open and accepts a good submission afterwards.
    const ok = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json: submission({}, good) });
    expect(ok.status).toBe(201);
  });

  it("stores a mask whose timing the doctor's clock got wrong, corrected and flagged, never refused", async () => {
    const mask = await makeMaskPng(W, H, (x, y) => x + y < 20);
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    const cases: Array<{ name: string; over: Record<string, unknown>; flags: string[]; activeMs?: number; spanMs?: number }> = [
      // The editor read the active time after the end time (a loaded machine): 10 min in a 2 min span.
      { name: "active time beyond the span", over: { active_ms: 10 * 60_000 }, flags: ["active_ms_clamped"], activeMs: 120_000, spanMs: 120_000 },
      {
        name: "ended before started",
        over: { started_at: iso(now), ended_at: iso(now - 60_000), active_ms: 30_000 },
        flags: ["ended_before_started", "active_ms_clamped"],
        activeMs: 0,
        spanMs: 0,
      },
      { name: "ended a day in the future", over: { started_at: iso(now - 60_000), ended_at: iso(now + 86_400_000), active_ms: 50_000 }, flags: ["ended_at_in_future"], activeMs: 50_000 },
      {
        name: "both in the future",
        over: { started_at: iso(now + 3_600_000), ended_at: iso(now + 7_200_000), active_ms: 50_000 },
        flags: ["ended_at_in_future", "started_at_in_future", "active_ms_clamped"],
        activeMs: 0,
        spanMs: 0,
      },
      // A clock a little ahead of the server's is ordinary: stored as sent.
      { name: "within the skew", over: { started_at: iso(now - 60_000), ended_at: iso(now + 30_000), active_ms: 90_000 }, flags: [], activeMs: 90_000, spanMs: 90_000 },
    ];
    for (const c of cases) {
      const task = await newTask(0, "doctor1");
      const body = submission(c.over, mask);
      const before = Date.now();
      const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json: body });
      const after = Date.now();
      expect(res.status, `${c.name}: ${JSON.stringify(res.json)}`).toBe(201);
      const v = res.json.version;
      expect(v.flags, c.name).toEqual(c.flags);
      if (c.activeMs !== undefined) expect(v.active_ms, c.name).toBe(c.activeMs);
      const span = Date.parse(v.submitted_at) - Date.parse(v.started_at);
      if (c.spanMs !== undefined) expect(span, c.name).toBe(c.spanMs);
      expect(v.active_ms, c.name).toBeLessThanOrEqual(span); // what is stored always holds together
      if (c.flags.includes("ended_at_in_future")) {
        // Replaced by the server's time of the request.
        expect(Date.parse(v.submitted_at)).toBeGreaterThanOrEqual(before);
        expect(Date.parse(v.submitted_at)).toBeLessThanOrEqual(after);
      }
      expect(res.json.task.state, c.name).toBe("done");
      // The auditor finds what was sent next to what was stored.
      const audit = await api.call("GET", `/api/audit?entity=task&entity_id=${task.id}&action=task.submit`, { token: api.tokens.auditor });
      const details = audit.json[0].details;
      expect(details.active_ms, c.name).toBe(v.active_ms);
      if (c.flags.length > 0) {
        expect(details.flags, c.name).toEqual(c.flags);
        expect(details.sent, c.name).toEqual({ active_ms: body.active_ms, started_at: body.started_at, ended_at: body.ended_at });
      } else {
        expect(details.flags, c.name).toBeUndefined();
      }
      // A retry of the same submission is the same version, flags and all.
      const again = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.tokens.doctor, json: body });
      expect(again.json).toMatchObject({ duplicate: true, version: { id: v.id, flags: c.flags } });
    }
  });

  it("keeps a submission whose workflow cannot be told, and says to retry", async () => {
    const task = await newTask(3, "doctor2", "annotate", "task-test-wf-1");
    const mask = await makeMaskPng(W, H, (x, y) => y < 2);
    const body = { ...submission({}, mask), simulated: true };
    const res = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.doctor2Token, json: body });
    expect(res.status).toBe(503);
    expect(res.json.error.message).toMatch(/stored as version \d+ .*retry with the same submission_id/);
    const { rows } = await api.db.pool.query("SELECT kind, simulated, task_id FROM annotation_versions WHERE submission_id = $1", [body.submission_id]);
    expect(rows).toEqual([{ kind: "manual", simulated: true, task_id: task.id }]);
    const detail = await api.call("GET", `/api/tasks/${task.id}`, { token: api.doctor2Token });
    expect(detail.json.task.state).toBe("submitted");
    // The retry finds the stored version and tries the workflow again (still unreachable here).
    const retry = await api.call("POST", `/api/tasks/${task.id}/submissions`, { token: api.doctor2Token, json: body });
    expect(retry.status).toBe(503);
    expect((await api.db.pool.query("SELECT count(*)::int AS n FROM annotation_versions WHERE submission_id = $1", [body.submission_id])).rows[0].n).toBe(1);
  });
});
