import { z } from "zod";
import { getVersion, probabilitySamples } from "../../services/annotations.js";
import { AppError } from "../../services/errors.js";
import { getImage } from "../../services/images.js";
import { getTaskDetail, getTaskFor, listTasks, restartFromNewerPrediction, submitTask, type TaskDetail, type TaskState } from "../../services/tasks.js";
import { ALL_ROLES, presentVersion, sendBytes } from "../present.js";
import { defineRoute } from "../route.js";
import { idInput, idParam, idQuery, submissionBodySchema, submissionResultSchema, taskDetailSchema, taskSchema, taskStateSchema } from "../schemas.js";

type SubmissionBody = z.infer<typeof submissionBodySchema>;

function presentDetail(d: TaskDetail) {
  return {
    task: d.task,
    image: d.image,
    image_url: `/api/tasks/${d.task.id}/image`,
    start_mask_url: d.start_version ? `/api/tasks/${d.task.id}/start-mask` : null,
    probability_url: d.start_version?.prob_uri ? `/api/tasks/${d.task.id}/probability` : null,
    start_version: d.start_version ? presentVersion(d.start_version) : null,
    result_version: d.result_version ? presentVersion(d.result_version) : null,
    newer_prediction: d.newer_prediction,
    review: d.review,
  };
}

function decodeBase64Png(b64: string): Buffer {
  const clean = b64.replace(/^data:image\/png;base64,/, "");
  if (!/^[A-Za-z0-9+/=\s]+$/.test(clean)) throw new AppError("validation_failed", "body.mask_png_base64: not base64");
  return Buffer.from(clean, "base64");
}

export const taskRoutes = [
  defineRoute({
    method: "get",
    path: "/tasks/mine",
    operationId: "myTasks",
    summary: "The caller's inbox: tasks assigned to them",
    tag: "tasks",
    access: ALL_ROLES,
    query: z.object({ state: taskStateSchema.optional() }),
    responses: { 200: { description: "tasks", schema: z.array(taskSchema) } },
    async handler({ deps, user, query }) {
      return listTasks(deps.pool, { ...user!, role: "doctor" }, { state: (query as { state?: TaskState }).state });
    },
  }),
  defineRoute({
    method: "get",
    path: "/tasks",
    operationId: "listTasks",
    summary: "Tasks (a doctor sees only their own)",
    tag: "tasks",
    access: ALL_ROLES,
    query: z.object({
      state: taskStateSchema.optional(),
      campaign_id: idQuery.optional(),
      assignee_id: idQuery.optional(),
    }),
    responses: { 200: { description: "tasks", schema: z.array(taskSchema) } },
    async handler({ deps, user, query }) {
      const q = query as { state?: TaskState; campaign_id?: number; assignee_id?: number };
      return listTasks(deps.pool, user!, { state: q.state, campaignId: q.campaign_id, assigneeId: q.assignee_id });
    },
  }),
  defineRoute({
    method: "get",
    path: "/tasks/:id",
    operationId: "getTask",
    summary: "A task with its image and the mask to start from",
    tag: "tasks",
    access: ALL_ROLES,
    params: idParam,
    responses: { 200: { description: "the task", schema: taskDetailSchema } },
    async handler({ deps, user, params }) {
      return presentDetail(await getTaskDetail(deps.pool, user!, params.id));
    },
  }),
  defineRoute({
    method: "post",
    path: "/tasks/:id/restart",
    operationId: "restartTask",
    summary: "Start an open correction task over from the newer prediction of its image (continuous campaigns)",
    tag: "tasks",
    access: ["doctor"],
    params: idParam,
    body: { kind: "json", schema: z.object({ version_id: idInput }).meta({ id: "RestartInput" }) },
    responses: {
      200: { description: "the task, now starting from that prediction", schema: taskDetailSchema },
      403: { description: "the task is another doctor's" },
      409: { description: "no newer prediction, not the newest one, or the task is no longer open (the message names which)" },
      503: { description: "Temporal unreachable: nothing changed" },
    },
    async handler({ deps, user, params, body }) {
      // Without a Temporal client the input is still checked first; only a valid restart answers 503.
      const restart =
        deps.campaigns?.restartTask ??
        (() => Promise.reject(new AppError("workflow_unavailable", "this server has no Temporal client configured")));
      const { version_id } = body as { version_id: number };
      return presentDetail(await restartFromNewerPrediction({ pool: deps.pool, restart }, user!, params.id, version_id));
    },
  }),
  defineRoute({
    method: "get",
    path: "/tasks/:id/image",
    operationId: "getTaskImage",
    summary: "The task's image as PNG",
    tag: "tasks",
    access: ALL_ROLES,
    params: idParam,
    responses: { 200: { description: "PNG", contentType: "image/png" } },
    async handler({ deps, user, params, res }) {
      const task = await getTaskFor(deps.pool, user!, params.id);
      const image = await getImage(deps.pool, task.image_id);
      sendBytes(res, await deps.blobs.get(image.png_uri), "image/png");
      return undefined;
    },
  }),
  defineRoute({
    method: "get",
    path: "/tasks/:id/start-mask",
    operationId: "getTaskStartMask",
    summary: "The mask the task starts from (the prediction); 404 when the task starts empty",
    tag: "tasks",
    access: ALL_ROLES,
    params: idParam,
    responses: { 200: { description: "binary mask PNG", contentType: "image/png" } },
    async handler({ deps, user, params, res }) {
      const task = await getTaskFor(deps.pool, user!, params.id);
      if (!task.start_version_id) throw new AppError("not_found", `task ${task.id} starts from an empty mask`);
      const version = await getVersion(deps.pool, task.start_version_id);
      sendBytes(res, await deps.blobs.get(version.uri), "image/png");
      return undefined;
    },
  }),
  defineRoute({
    method: "get",
    path: "/tasks/:id/probability",
    operationId: "getTaskProbability",
    summary:
      "The probability map of the prediction the task starts from, for the editor's assisted tools: H×W unsigned 16-bit " +
      "little-endian samples, row-major, p = value / 65535; the size is in the headers x-image-width and x-image-height. " +
      "404 when the task starts empty or its prediction kept no probability map",
    tag: "tasks",
    access: ALL_ROLES,
    params: idParam,
    responses: { 200: { description: "uint16 little-endian samples", contentType: "application/octet-stream" } },
    async handler({ deps, user, params, res }) {
      const task = await getTaskFor(deps.pool, user!, params.id);
      const version = task.start_version_id ? await getVersion(deps.pool, task.start_version_id) : null;
      if (!version?.prob_uri) throw new AppError("not_found", `task ${task.id} has no probability map (it starts ${version ? "from a prediction without one" : "empty"})`);
      const samples = await probabilitySamples(await deps.blobs.get(version.prob_uri), version);
      res.setHeader("x-image-width", String(version.width));
      res.setHeader("x-image-height", String(version.height));
      sendBytes(res, samples, "application/octet-stream");
      return undefined;
    },
  }),
  defineRoute({
    method: "post",
    path: "/tasks/:id/submissions",
    operationId: "submitTask",
    summary: "Submit the mask and its timing; stored first, then the task workflow is told. Idempotent by submission_id",
    tag: "tasks",
    access: ["doctor"],
    params: idParam,
    body: { kind: "json", schema: submissionBodySchema },
    status: 201,
    responses: {
      201: { description: "stored (or, with duplicate=true, stored before under this submission_id)", schema: submissionResultSchema },
      409: { description: "stale parent version, task not open, or submission_id reused for different content" },
      413: { description: "the body, or the mask's pixel count, is over the limit" },
      415: { description: "mask_png_base64 is not a readable image of a supported format (truncated, damaged, another kind of file)" },
      422: { description: "refused by the ingest contract: the mask is not the image's size, or holds several pages" },
      503: { description: "stored, but the task workflow could not be told: retry with the same submission_id" },
    },
    async handler({ deps, user, params, body }) {
      const b = body as SubmissionBody;
      const result = await submitTask(
        { pool: deps.pool, blobs: deps.blobs, notify: deps.notifySubmission },
        user!,
        {
          taskId: params.id,
          submissionId: b.submission_id,
          parentVersionId: b.parent_version_id,
          mask: decodeBase64Png(b.mask_png_base64),
          activeMs: b.active_ms,
          startedAt: new Date(b.started_at),
          endedAt: new Date(b.ended_at),
          edits: b.edits,
          simulated: b.simulated ?? false,
          actions: b.actions,
        },
      );
      return { ...result, version: presentVersion(result.version) };
    },
  }),
];
