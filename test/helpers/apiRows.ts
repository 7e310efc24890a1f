// One existing row behind every path parameter of the API, for the tests that walk the whole
// OpenAPI document (test/api/roles.test.ts, test/api/fuzz.test.ts): with real ids a request gets
// past "not found" to the role gate, the ownership checks and the handlers.
import { recordPrediction } from "../../services/annotations.js";
import { Mailer } from "../../services/mail.js";
import { importImage } from "../../services/images.js";
import { approveModel, recordModel } from "../../services/models.js";
import { createProject } from "../../services/projects.js";
import { requestReview } from "../../services/reviews.js";
import { assignTask, createTask } from "../../services/tasks.js";
import type { TestApi } from "./api.js";
import { makeImagePng, makeMaskPng } from "./images.js";

export const ROW_W = 64;
export const ROW_H = 48;

export interface ApiRows {
  projectId: number;
  /** An image with a reference mask and a FOV mask. */
  imageId: number;
  /** A model's prediction of that image. */
  versionId: number;
  /** An open correction task of doctor1, starting from `versionId`. */
  taskId: number;
  /** A campaign row without a workflow. */
  campaignId: number;
  modelId: number;
  deployment: string;
  keyId: number;
  /** An outbox message addressed to doctor1. */
  messageId: string;
  /** A pending review of doctor1's submitted mask (a task without a workflow). */
  reviewId: number;
  /** doctor2's user id (a user that PATCH /users/:id may change without locking anyone out). */
  userId: number;
  /** Path values by parameter name, for walking the document's `{name}` placeholders. */
  pathValues: Record<string, string>;
}

export async function seedApiRows(api: TestApi): Promise<ApiRows> {
  const pool = api.db.pool;
  const lead = api.users.lead!;
  const doctor1 = api.users.doctor1!;
  const project = await createProject(pool, { name: "rows" }, lead.id);
  const image = await importImage(api.deps, {
    projectId: project.id,
    name: "img0",
    data: await makeImagePng(ROW_W, ROW_H),
    mask: await makeMaskPng(ROW_W, ROW_H, (x) => x < ROW_W / 3),
    fov: await makeMaskPng(ROW_W, ROW_H, () => true),
    role: "pool",
    actorId: lead.id,
  });
  const campaign = await pool.query<{ id: number }>(
    "INSERT INTO campaigns (project_id, name, config, state, created_by) VALUES ($1, 'rows', '{}', 'created', $2) RETURNING id",
    [project.id, lead.id],
  );
  const campaignId = campaign.rows[0]!.id;
  const model = await recordModel(pool, { campaignId, round: 0, uri: "blob://runs/rows/r0/model/", metrics: { val_f1: 0.5 } });
  const maskUri = await api.deps.blobs.put("runs/rows/r0/pred/img0.png", await makeMaskPng(ROW_W, ROW_H, (x) => x < ROW_W / 2));
  const prediction = await recordPrediction(api.deps, { campaignId, round: 0, modelId: model.id, imageId: image.id, maskUri });
  const task = await createTask(pool, { projectId: project.id, imageId: image.id, kind: "correct", parentVersionId: prediction.id });
  await assignTask(pool, { taskId: task.id, assigneeId: doctor1.id });
  // A deployment as serving/registry.ts records it (of an approved model); the routes under
  // /deployments read only rows.
  await approveModel(pool, model.id, lead.id);
  const dep = await pool.query<{ id: number }>("INSERT INTO deployments (name) VALUES ('rows-model') RETURNING id");
  await pool.query(
    `INSERT INTO deployment_versions (deployment_id, version, model_id, artifact_uri, onnx_sha256, model_meta, card, card_markdown, deployed_by)
     VALUES ($1, 1, $2, 'blob://deployments/rows-model/v1/', 'none', '{}', '{"name": "rows-model"}', '# rows-model', $3)`,
    [dep.rows[0]!.id, model.id, lead.id],
  );
  const key = await pool.query<{ id: number }>(
    "INSERT INTO deployment_keys (deployment_id, label, prefix, salt, key_hash, created_by) VALUES ($1, 'rows', 'rowsprefix', 's', 'h', $2) RETURNING id",
    [dep.rows[0]!.id, lead.id],
  );
  // A submitted mask waiting for review: doctor1's version of a second task on the image.
  const reviewed = await createTask(pool, { projectId: project.id, imageId: image.id, kind: "annotate", assigneeId: doctor1.id });
  const submitted = await pool.query<{ id: number }>(
    `INSERT INTO annotation_versions (image_id, task_id, kind, author_id, uri, width, height, foreground_pixels, pixels_changed, mask_sha256)
     VALUES ($1, $2, 'manual', $3, $4, $5, $6, 0, 0, 'none') RETURNING id`,
    [image.id, reviewed.id, doctor1.id, maskUri, ROW_W, ROW_H],
  );
  const review = await requestReview(pool, { taskId: reviewed.id, versionId: submitted.rows[0]!.id });
  const mailer = new Mailer({ smtpUrl: null, outboxDir: api.deps.config.outboxDir });
  // An idempotency key gives the message a hex id, the form GET /outbox/{messageId} takes.
  const sent = await mailer.send({ to: doctor1.email, subject: "rows", text: "a message for doctor1", idempotencyKey: "rows" });
  mailer.close();
  const messageId = /^<([0-9a-f]+)@medloop>$/.exec(sent.messageId)![1]!;
  const userId = api.users.doctor2!.id;
  return {
    projectId: project.id,
    imageId: image.id,
    versionId: prediction.id,
    taskId: task.id,
    campaignId,
    modelId: model.id,
    deployment: "rows-model",
    keyId: key.rows[0]!.id,
    messageId,
    userId,
    reviewId: review.id,
    pathValues: { name: "rows-model", messageId },
  };
}

/**
 * The id an operation's `{id}` names: the row of the resource its path starts with
 * (`/api/tasks/{id}/image` → the task; `/api/deployments/{name}/keys/{id}` → the key).
 */
export function idFor(rows: ApiRows, openApiPath: string): number {
  const resource = openApiPath.split("/")[2];
  if (openApiPath.startsWith("/api/deployments/")) return rows.keyId;
  const byResource: Record<string, number> = {
    projects: rows.projectId,
    images: rows.imageId,
    versions: rows.versionId,
    tasks: rows.taskId,
    campaigns: rows.campaignId,
    models: rows.modelId,
    users: rows.userId,
    reviews: rows.reviewId,
  };
  const id = resource ? byResource[resource] : undefined;
  if (id === undefined) throw new Error(`no seeded row for the {id} of ${openApiPath}`);
  return id;
}

/** The path with every `{param}` replaced by a seeded row's value. */
export function concretePath(rows: ApiRows, openApiPath: string): string {
  return openApiPath.replace(/\{(\w+)\}/g, (_m, name: string) => {
    if (name === "id") return String(idFor(rows, openApiPath));
    const value = rows.pathValues[name];
    if (value === undefined) throw new Error(`no seeded value for {${name}} of ${openApiPath}`);
    return encodeURIComponent(value);
  });
}
