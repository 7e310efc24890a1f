// Annotation and correction tasks: creation and assignment (called by the task workflow's
// activities), the doctor's inbox, and submissions. A submission is stored as an annotation
// version FIRST and only then handed to the task workflow, so a doctor's work is never lost;
// a retried submission (same submission id) returns the version stored the first time. A
// well-formed mask is never refused for its timing: clock oddities are corrected and flagged
// (normaliseTiming).
import { randomUUID } from "node:crypto";
import { LOCK_KEYS } from "../db/lockKeys.js";
import { withTransaction, type Pool, type Queryable } from "../db/pool.js";
import { getVersion, loadVersionMask, VERSION_COLUMNS, type AnnotationVersion, type VersionFlag } from "./annotations.js";
import { appendAudit } from "./audit.js";
import type { BlobStore } from "./blobs.js";
import type { Action } from "./correction/effort.js";
import { AppError, badRequest, conflict, notFound, uniqueViolation } from "./errors.js";
import { getImage, sha256, type Image } from "./images.js";
import { maskPng, readMask } from "./ingest/decode.js";
import { agreement } from "./liveEvaluation.js";
import { pixelsChanged } from "./masks.js";
import { getUser, type User } from "./users.js";

export type TaskKind = "annotate" | "correct";
export type TaskState = "pending" | "open" | "submitted" | "in_review" | "done" | "cancelled";

export interface Task {
  id: number;
  project_id: number;
  image_id: number;
  image_name: string;
  campaign_id: number | null;
  round: number | null;
  kind: TaskKind;
  assignee_id: number | null;
  state: TaskState;
  due_at: Date | null;
  workflow_id: string | null;
  start_version_id: number | null;
  result_version_id: number | null;
  reminders_sent: number;
  reassignments: number;
  cancel_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

const SELECT = `SELECT t.id, t.project_id, t.image_id, i.name AS image_name, t.campaign_id, t.round, t.kind,
  t.assignee_id, t.state, t.due_at, t.workflow_id, t.start_version_id, t.result_version_id, t.reminders_sent,
  t.reassignments, t.cancel_reason, t.created_at, t.updated_at
  FROM tasks t JOIN images i ON i.id = t.image_id`;

export interface NewTask {
  projectId: number;
  imageId: number;
  kind: TaskKind;
  campaignId?: number | null;
  round?: number | null;
  workflowId?: string | null;
  /** The version the doctor starts from: required for `correct` (the prediction). */
  parentVersionId?: number | null;
  assigneeId?: number | null;
  dueAt?: Date | string | null;
  /** A honeypot: the image's reference mask scores the submission (services/honeypots.ts); never shown to the doctor. */
  honeypot?: boolean;
}

/** Creates a task; idempotent by workflow id, so a retried activity gets the same task. */
export async function createTask(db: Queryable, input: NewTask, actorId: number | null = null): Promise<Task> {
  if (input.workflowId) {
    const existing = await findTaskByWorkflowId(db, input.workflowId);
    if (existing) return existing;
  }
  const image = await getImage(db, input.imageId);
  if (image.project_id !== input.projectId) throw badRequest(`image ${image.id} does not belong to project ${input.projectId}`);
  if (input.kind === "correct" && !input.parentVersionId) throw badRequest("a correction task needs the version it starts from");
  if (input.parentVersionId) {
    const parent = await getVersion(db, input.parentVersionId);
    if (parent.image_id !== image.id) throw badRequest(`version ${parent.id} belongs to another image`);
  }
  const assignee = input.assigneeId ?? null;
  try {
    const { rows } = await db.query<{ id: number }>(
      `INSERT INTO tasks (project_id, image_id, campaign_id, round, kind, assignee_id, state, due_at, workflow_id,
                          start_version_id, honeypot)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
      [
        input.projectId, image.id, input.campaignId ?? null, input.round ?? null, input.kind, assignee,
        assignee ? "open" : "pending", input.dueAt ?? null, input.workflowId ?? null, input.parentVersionId ?? null,
        input.honeypot ?? false,
      ],
    );
    const id = rows[0]!.id;
    await appendAudit(db, {
      actorId,
      action: "task.create",
      entity: "task",
      entityId: id,
      details: { kind: input.kind, image_id: image.id, campaign_id: input.campaignId ?? null, round: input.round ?? null },
    });
    return getTask(db, id);
  } catch (err) {
    if (uniqueViolation(err) && input.workflowId) return (await findTaskByWorkflowId(db, input.workflowId))!;
    throw err;
  }
}

export async function getTask(db: Queryable, id: number): Promise<Task> {
  const { rows } = await db.query<Task>(`${SELECT} WHERE t.id = $1`, [id]);
  if (!rows[0]) throw notFound("task", id);
  return rows[0];
}

export async function findTaskByWorkflowId(db: Queryable, workflowId: string): Promise<Task | null> {
  const { rows } = await db.query<Task>(`${SELECT} WHERE t.workflow_id = $1`, [workflowId]);
  return rows[0] ?? null;
}

/** Assigns (or reassigns) a task to a doctor; reopens it for submission. */
export async function assignTask(
  db: Queryable,
  input: { taskId: number; assigneeId: number; dueAt?: Date | string | null },
  actorId: number | null = null,
): Promise<Task> {
  const task = await getTask(db, input.taskId);
  if (task.state !== "pending" && task.state !== "open") throw conflict(`task ${task.id} is ${task.state} and cannot be assigned`);
  const { rows } = await db.query<{ role: string; active: boolean }>("SELECT role, active FROM users WHERE id = $1", [input.assigneeId]);
  if (!rows[0]) throw notFound("user", input.assigneeId);
  if (rows[0].role !== "doctor" || !rows[0].active) throw badRequest(`user ${input.assigneeId} is not an active doctor`);
  if (task.assignee_id === input.assigneeId && task.state === "open") return task; // a retried activity
  const reassigned = task.assignee_id !== null && task.assignee_id !== input.assigneeId;
  await db.query(
    `UPDATE tasks SET assignee_id = $2, state = 'open', due_at = $3, reassignments = reassignments + $4, updated_at = now()
      WHERE id = $1`,
    [task.id, input.assigneeId, input.dueAt ?? null, reassigned ? 1 : 0],
  );
  await appendAudit(db, {
    actorId,
    action: reassigned ? "task.reassign" : "task.assign",
    entity: "task",
    entityId: task.id,
    details: { from: task.assignee_id, to: input.assigneeId },
  });
  return getTask(db, task.id);
}

/**
 * An active doctor with the fewest open tasks, skipping `exclude`; ties are broken at random so
 * that equal loads share the work. On its own this is a read: two callers at the same moment
 * see the same loads and may pick the same doctor. New tasks are therefore assigned by
 * `createAssignedTask`, which picks and stores under one lock; this serves reassignment.
 */
/**
 * The least-loaded active doctor not in `exclude`. With `sameImage`, doctors who already hold a
 * task (not cancelled) on that image in that campaign are passed over too: several annotators of
 * one image are always different doctors (issue 14).
 */
export async function pickDoctor(
  db: Queryable,
  exclude: number[] = [],
  sameImage: { imageId: number; campaignId: number | null } | null = null,
): Promise<User | null> {
  const { rows } = await db.query<User>(
    `SELECT u.id, u.email, u.name, u.role, u.active, u.created_at FROM users u
      WHERE u.role = 'doctor' AND u.active AND NOT (u.id = ANY($1::int[]))
        AND ($2::int IS NULL OR NOT EXISTS (
              SELECT 1 FROM tasks o WHERE o.assignee_id = u.id AND o.image_id = $2 AND o.campaign_id IS NOT DISTINCT FROM $3
                 AND o.state <> 'cancelled'))
      ORDER BY (SELECT count(*) FROM tasks t WHERE t.assignee_id = u.id AND t.state = 'open'), random() LIMIT 1`,
    [exclude, sameImage?.imageId ?? null, sameImage?.campaignId ?? null],
  );
  return rows[0] ?? null;
}

/** Thrown by createAssignedTask while there is no active doctor; the caller retries later. */
export class NoDoctorAvailable extends Error {
  constructor() {
    super("there is no active doctor to assign the task to");
    this.name = "NoDoctorAvailable";
  }
}

/**
 * Transaction-scoped advisory lock held while a doctor is picked and the task stored: the next
 * creator's count of open tasks then includes this one, so tasks created at the same moment
 * (a campaign's seed tasks start together) are spread evenly instead of by chance.
 */
const ASSIGNMENT_LOCK = LOCK_KEYS.TASK_ASSIGNMENT;

/**
 * Creates a task assigned to the least-loaded active doctor, both in one transaction under the
 * assignment lock. Idempotent by workflow id: a retried call returns the task (and doctor) of
 * the first. Throws NoDoctorAvailable when there is no active doctor.
 */
export async function createAssignedTask(
  pool: Pool,
  input: Omit<NewTask, "assigneeId">,
  actorId: number | null = null,
): Promise<{ task: Task; assignee: User }> {
  return withTransaction(pool, async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [ASSIGNMENT_LOCK]);
    const existing = input.workflowId ? await findTaskByWorkflowId(tx, input.workflowId) : null;
    if (existing?.assignee_id) return { task: existing, assignee: await getUser(tx, existing.assignee_id) };
    const doctor = await pickDoctor(tx, [], { imageId: input.imageId, campaignId: input.campaignId ?? null });
    if (!doctor) throw new NoDoctorAvailable();
    const task = existing
      ? await assignTask(tx, { taskId: existing.id, assigneeId: doctor.id, dueAt: input.dueAt ?? null }, actorId)
      : await createTask(tx, { ...input, assigneeId: doctor.id }, actorId);
    return { task, assignee: doctor };
  });
}

/**
 * Reassigns a task under the assignment lock unless the new doctor holds another task (not
 * cancelled) on the same image in the same campaign (two annotators of one image escalating at
 * the same moment must not both land on one doctor), or the task is no longer open. Returns false
 * (nothing changed) then.
 */
export async function reassignTask(pool: Pool, input: { taskId: number; toDoctorId: number; dueAt: Date | string | null }): Promise<boolean> {
  return withTransaction(pool, async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [ASSIGNMENT_LOCK]);
    const task = await getTask(tx, input.taskId);
    // A submission stored but not yet told to the workflow (row `submitted`), or a task in review:
    // the doctor's work stands, nobody else takes the task.
    if (task.state !== "open" && task.state !== "pending") return false;
    const { rowCount } = await tx.query(
      `SELECT 1 FROM tasks WHERE assignee_id = $1 AND image_id = $2 AND campaign_id IS NOT DISTINCT FROM $3 AND id <> $4 AND state <> 'cancelled'`,
      [input.toDoctorId, task.image_id, task.campaign_id, task.id],
    );
    if (rowCount) return false;
    await assignTask(tx, { taskId: task.id, assigneeId: input.toDoctorId, dueAt: input.dueAt });
    return true;
  });
}

export async function recordReminder(db: Queryable, taskId: number): Promise<Task> {
  await getTask(db, taskId);
  await db.query("UPDATE tasks SET reminders_sent = reminders_sent + 1, updated_at = now() WHERE id = $1", [taskId]);
  await appendAudit(db, { actorId: null, action: "task.remind", entity: "task", entityId: taskId });
  return getTask(db, taskId);
}

export async function cancelTask(db: Queryable, input: { taskId: number; reason: string }): Promise<Task> {
  const task = await getTask(db, input.taskId);
  if (task.state === "done" || task.state === "cancelled") return task;
  await db.query("UPDATE tasks SET state = 'cancelled', cancel_reason = $2, updated_at = now() WHERE id = $1", [
    task.id,
    input.reason,
  ]);
  // A review the cancelled task was waiting for is cancelled with it (services/reviews.ts).
  await db.query("UPDATE reviews SET state = 'cancelled' WHERE task_id = $1 AND state = 'pending'", [task.id]);
  await appendAudit(db, { actorId: null, action: "task.cancel", entity: "task", entityId: task.id, details: { reason: input.reason } });
  return getTask(db, task.id);
}

/** Marks a task done with its accepted version (called once the workflow accepted it); idempotent. */
export async function completeTask(db: Queryable, input: { taskId: number; versionId: number }): Promise<{ task: Task; maskUri: string }> {
  const task = await getTask(db, input.taskId);
  const version = await getVersion(db, input.versionId);
  if (version.task_id !== task.id) throw badRequest(`version ${version.id} was not submitted for task ${task.id}`);
  if (task.state !== "done") {
    await db.query("UPDATE tasks SET state = 'done', result_version_id = $2, updated_at = now() WHERE id = $1", [
      task.id,
      version.id,
    ]);
    await appendAudit(db, { actorId: null, action: "task.complete", entity: "task", entityId: task.id, details: { version_id: version.id } });
  }
  return { task: await getTask(db, task.id), maskUri: version.uri };
}

export interface TaskFilter {
  state?: TaskState;
  campaignId?: number;
  assigneeId?: number;
}

/** Tasks a user may see: a doctor only their own; lab leads, auditors and admins all. */
export async function listTasks(db: Queryable, viewer: User, filter: TaskFilter = {}): Promise<Task[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    args.push(v);
    where.push(sql.replace("?", `$${args.length}`));
  };
  if (viewer.role === "doctor") add("t.assignee_id = ?", viewer.id);
  else if (filter.assigneeId !== undefined) add("t.assignee_id = ?", filter.assigneeId);
  if (filter.state) add("t.state = ?", filter.state);
  if (filter.campaignId !== undefined) add("t.campaign_id = ?", filter.campaignId);
  const { rows } = await db.query<Task>(`${SELECT} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY t.id`, args);
  return rows;
}

/** A task the viewer may see; another doctor's task is reported as not found. */
export async function getTaskFor(db: Queryable, viewer: User, taskId: number): Promise<Task> {
  const task = await getTask(db, taskId);
  if (viewer.role === "doctor" && task.assignee_id !== viewer.id) throw notFound("task", taskId);
  return task;
}

export interface TaskDetail {
  task: Task;
  /**
   * The image; its role is null for doctors, so that a honeypot (a test image with a reference
   * mask, services/honeypots.ts) looks like any other task.
   */
  image: Pick<Image, "id" | "name" | "width" | "height"> & { role: Image["role"] | null };
  start_version: AnnotationVersion | null;
  result_version: AnnotationVersion | null;
  /**
   * An open correction task whose campaign has since predicted the image with a newer model
   * (continuous campaigns predict the pool after every update): that prediction, to start from.
   */
  newer_prediction: { version_id: number; round: number } | null;
  /** The task's latest review (campaigns with review): a returned task carries the reviewer's comment and region. */
  review: TaskReview | null;
}

export interface TaskReview {
  id: number;
  state: "pending" | "accepted" | "returned" | "cancelled";
  comment: string | null;
  region: { x: number; y: number; width: number; height: number } | null;
  reviewer_name: string | null;
  decided_at: Date | null;
}

async function latestReview(db: Queryable, taskId: number): Promise<TaskReview | null> {
  const { rows } = await db.query<TaskReview>(
    `SELECT r.id, r.state, r.comment, r.region, u.name AS reviewer_name, r.decided_at
       FROM reviews r LEFT JOIN users u ON u.id = r.reviewer_id WHERE r.task_id = $1 ORDER BY r.id DESC LIMIT 1`,
    [taskId],
  );
  return rows[0] ?? null;
}

/** The newest prediction of the task's image by a later model of its campaign than its start's, if any. */
export async function newerPrediction(db: Queryable, task: Task): Promise<{ version_id: number; round: number } | null> {
  if (task.state !== "open" || task.kind !== "correct" || task.campaign_id === null || task.start_version_id === null) return null;
  const start = await getVersion(db, task.start_version_id);
  if (start.kind !== "prediction" || start.round === null) return null;
  const { rows } = await db.query<{ version_id: number; round: number }>(
    `SELECT id AS version_id, round FROM annotation_versions
      WHERE image_id = $1 AND campaign_id = $2 AND kind = 'prediction' AND round > $3
      ORDER BY round DESC, id DESC LIMIT 1`,
    [task.image_id, task.campaign_id, start.round],
  );
  return rows[0] ?? null;
}

/**
 * Restarts an open correction task from the newer prediction of its image (`newerPrediction`):
 * the task workflow is told first (its `restartFrom` Update, so a submission building on the new
 * start is accepted, and one on the old start still is), then the task row points at it.
 * Errors: 404 not the caller's task; 409 no newer prediction, or not this one (the newest is
 * named), or the workflow refused (already submitted); 503 Temporal unreachable.
 */
export async function restartFromNewerPrediction(
  deps: { pool: Pool; restart: (workflowId: string, versionId: string) => Promise<unknown> },
  viewer: User,
  taskId: number,
  versionId: number,
): Promise<TaskDetail> {
  const task = await getTaskFor(deps.pool, viewer, taskId);
  if (task.assignee_id !== viewer.id) throw new AppError("forbidden", `task ${taskId} is assigned to another doctor`);
  const newer = await newerPrediction(deps.pool, task);
  if (!newer) throw conflict(`task ${taskId} has no newer prediction to start from`);
  if (newer.version_id !== versionId) throw conflict(`the newest prediction of task ${taskId}'s image is version ${newer.version_id}, not ${versionId}`);
  if (!task.workflow_id) throw conflict(`task ${taskId} has no workflow`);
  await deps.restart(task.workflow_id, String(versionId));
  await withTransaction(deps.pool, async (tx) => {
    await tx.query("UPDATE tasks SET start_version_id = $2, updated_at = now() WHERE id = $1 AND state = 'open'", [taskId, versionId]);
    await appendAudit(tx, {
      actorId: viewer.id,
      action: "task.restart",
      entity: "task",
      entityId: taskId,
      details: { from_version_id: task.start_version_id, to_version_id: versionId, round: newer.round },
    });
  });
  return getTaskDetail(deps.pool, viewer, taskId);
}

export async function getTaskDetail(db: Queryable, viewer: User, taskId: number): Promise<TaskDetail> {
  const task = await getTaskFor(db, viewer, taskId);
  const image = await getImage(db, task.image_id);
  return {
    task,
    image: { id: image.id, name: image.name, width: image.width, height: image.height, role: viewer.role === "doctor" ? null : image.role },
    start_version: task.start_version_id ? await getVersion(db, task.start_version_id) : null,
    result_version: task.result_version_id ? await getVersion(db, task.result_version_id) : null,
    newer_prediction: await newerPrediction(db, task),
    review: await latestReview(db, task.id),
  };
}

// ------------------------------------------------------------------------------ submissions

export interface SubmissionInput {
  taskId: number;
  submissionId: string;
  /** The version the doctor started from: the task's start version, or null for a mask from scratch. */
  parentVersionId: number | null;
  mask: Buffer;
  activeMs: number;
  startedAt: Date;
  endedAt: Date;
  edits: number;
  /** Times produced by the simulated doctors (`medloop simulate`), not measured. */
  simulated?: boolean;
  /** The editor actions that made the mask (services/correction/effort.ts); absent: none recorded. */
  actions?: Action[] | undefined;
}

/** What the task workflow is told after the version is stored (ORCH's `submit` update). */
export interface SubmissionNotice {
  submissionId: string;
  versionId: string;
  parentVersionId: string | null;
  activeMs: number;
  pixelsChanged: number;
  width: number;
  height: number;
}

/** Tells the task's workflow; throws AppError (conflict when the workflow rejects it). */
export type NotifySubmission = (workflowId: string, notice: SubmissionNotice) => Promise<void>;

export interface SubmissionResult {
  version: AnnotationVersion;
  task: Task;
  /** True when the submission id had been stored before (a retried request). */
  duplicate: boolean;
  workflow_notified: boolean;
}

/** How far a client's clock may run ahead of the server's before its times count as "in the future". */
export const CLOCK_SKEW_MS = 2 * 60_000;

export interface StoredTiming {
  activeMs: number;
  startedAt: Date;
  endedAt: Date;
  /** What was changed, in the order the rules apply; empty when the timing is stored as sent. */
  flags: VersionFlag[];
}

/**
 * The timing stored with a submission. Malformed values are the client's mistake and answer 400
 * naming the field. Clock oddities are not the doctor's fault (a slow machine, a clock set wrong
 * or corrected while they worked), so they are corrected and flagged, never a reason to refuse a
 * finished mask:
 * - `ended_at_in_future` / `started_at_in_future`: later than the server's clock plus
 *   CLOCK_SKEW_MS → the server's time;
 * - `ended_before_started`: ended_at before started_at → started_at = ended_at;
 * - `active_ms_clamped`: active time longer than ended_at − started_at → that span (not for
 *   simulated times, which come from a time model and carry no wall-clock span).
 */
export function normaliseTiming(
  input: Pick<SubmissionInput, "activeMs" | "startedAt" | "endedAt" | "edits" | "simulated">,
  now: Date,
): StoredTiming {
  if (!Number.isSafeInteger(input.activeMs) || input.activeMs < 0) throw badRequest("active_ms must be a non-negative integer");
  if (!Number.isSafeInteger(input.edits) || input.edits < 0) throw badRequest("edits must be a non-negative integer");
  if (Number.isNaN(input.startedAt.getTime())) throw badRequest("started_at is not a valid time");
  if (Number.isNaN(input.endedAt.getTime())) throw badRequest("ended_at is not a valid time");
  const flags: VersionFlag[] = [];
  const latest = now.getTime() + CLOCK_SKEW_MS;
  let started = input.startedAt.getTime();
  let ended = input.endedAt.getTime();
  let activeMs = input.activeMs;
  if (ended > latest) {
    ended = now.getTime();
    flags.push("ended_at_in_future");
  }
  if (started > latest) {
    started = now.getTime();
    flags.push("started_at_in_future");
  }
  if (ended < started) {
    // Only a reversed pair as sent is its own oddity; one made by the clamping above is already flagged.
    if (input.endedAt.getTime() < input.startedAt.getTime()) flags.push("ended_before_started");
    started = ended;
  }
  if (!input.simulated && activeMs > ended - started) {
    activeMs = ended - started;
    flags.push("active_ms_clamped");
  }
  return { activeMs, startedAt: new Date(started), endedAt: new Date(ended), flags };
}

async function findSubmission(db: Queryable, submissionId: string): Promise<AnnotationVersion | null> {
  const { rows } = await db.query<AnnotationVersion>(
    `SELECT ${VERSION_COLUMNS} FROM annotation_versions WHERE submission_id = $1`,
    [submissionId],
  );
  return rows[0] ?? null;
}

function sameSubmission(version: AnnotationVersion, input: SubmissionInput, maskSha: string): boolean {
  return version.task_id === input.taskId && version.mask_sha256 === maskSha && version.parent_id === input.parentVersionId;
}

async function notifyWorkflow(task: Task, version: AnnotationVersion, notify: NotifySubmission | null): Promise<boolean> {
  if (!task.workflow_id) return false;
  if (!notify) {
    throw new AppError(
      "workflow_unavailable",
      `submission stored as version ${version.id} but this server has no Temporal client to tell task ${task.id}'s workflow; ` +
        "retry with the same submission_id",
    );
  }
  const notice: SubmissionNotice = {
    submissionId: version.submission_id!,
    versionId: String(version.id),
    parentVersionId: version.parent_id === null ? null : String(version.parent_id),
    activeMs: version.active_ms ?? 0,
    pixelsChanged: version.pixels_changed,
    width: version.width,
    height: version.height,
  };
  try {
    await notify(task.workflow_id, notice);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError(
      "workflow_unavailable",
      `submission stored as version ${version.id} but the task workflow could not be told (${(err as Error).message}); ` +
        "retry with the same submission_id",
    );
  }
  return true;
}

export async function submitTask(
  deps: { pool: Pool; blobs: BlobStore; notify: NotifySubmission | null },
  viewer: User,
  input: SubmissionInput,
): Promise<SubmissionResult> {
  const task = await getTaskFor(deps.pool, viewer, input.taskId);
  if (task.assignee_id !== viewer.id) throw new AppError("forbidden", `task ${task.id} is not assigned to you`);
  if (!input.submissionId.trim()) throw badRequest("submission_id must not be empty");
  const image = await getImage(deps.pool, task.image_id);
  const mask = await readMask(input.mask, `mask of task ${input.taskId}`, image);
  const normalised = await maskPng(mask);
  const maskSha = sha256(normalised);

  const previous = await findSubmission(deps.pool, input.submissionId);
  if (previous) return replay(deps, task, previous, input, maskSha);

  const timing = normaliseTiming(input, new Date());
  if (task.state !== "open") throw conflict(`task ${task.id} is ${task.state}; it does not accept submissions`);
  if (input.parentVersionId !== task.start_version_id) {
    throw new AppError(
      "stale_version",
      `task ${task.id} starts from ${task.start_version_id === null ? "an empty mask (parent_version_id null)" : `version ${task.start_version_id}`}` +
        ` but the submission builds on ${input.parentVersionId === null ? "an empty mask" : `version ${input.parentVersionId}`}`,
    );
  }
  const parent = task.start_version_id ? await getVersion(deps.pool, task.start_version_id) : null;
  const parentMask = parent ? await loadVersionMask(deps.blobs, parent) : null;
  const changed = pixelsChanged(mask, parentMask);
  // Live evaluation: the prediction the doctor started from, scored against the final mask.
  const live = parentMask && parent?.kind === "prediction" ? agreement(parentMask.bits, mask.bits, mask.width, mask.height) : null;

  const uri = await deps.blobs.put(`projects/${task.project_id}/annotations/${image.id}/${randomUUID()}.png`, normalised);
  let stored: { version: AnnotationVersion; first: boolean };
  try {
    stored = await withTransaction(deps.pool, async (tx) => {
      const locked = await tx.query<{ state: TaskState }>("SELECT state FROM tasks WHERE id = $1 FOR UPDATE", [task.id]);
      // A retry that raced the first request of this submission (both found nothing stored when
      // they looked above) has waited here for the first one's transaction; it now sees the
      // version stored under its submission id and is answered with it, before the task's new
      // state (no longer open) could turn it into a 409.
      const raced = await findSubmission(tx, input.submissionId);
      if (raced) return { version: raced, first: false };
      if (locked.rows[0]?.state !== "open") throw conflict(`task ${task.id} is ${locked.rows[0]?.state}; it does not accept submissions`);
      const { rows } = await tx.query<AnnotationVersion>(
        `INSERT INTO annotation_versions (image_id, task_id, kind, author_id, campaign_id, round, parent_id, uri, width,
           height, foreground_pixels, pixels_changed, active_ms, started_at, submitted_at, edits, submission_id,
           mask_sha256, simulated, flags, actions, start_f1, start_cldice)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
         RETURNING ${VERSION_COLUMNS}`,
        [
          image.id, task.id, task.kind === "annotate" ? "manual" : "correction", viewer.id, task.campaign_id, task.round,
          parent?.id ?? null, uri, mask.width, mask.height, mask.foreground, changed, timing.activeMs, timing.startedAt,
          timing.endedAt, input.edits, input.submissionId, maskSha, input.simulated ?? false, timing.flags,
          input.actions ? JSON.stringify(input.actions) : null, live?.f1 ?? null, live?.cldice ?? null,
        ],
      );
      const v = rows[0]!;
      // Without a workflow nobody else completes the task, so it is done on submission.
      await tx.query("UPDATE tasks SET state = $2, result_version_id = $3, updated_at = now() WHERE id = $1", [
        task.id,
        task.workflow_id ? "submitted" : "done",
        v.id,
      ]);
      await appendAudit(tx, {
        actorId: viewer.id,
        action: "task.submit",
        entity: "task",
        entityId: task.id,
        details: {
          version_id: v.id,
          submission_id: input.submissionId,
          active_ms: timing.activeMs,
          pixels_changed: changed,
          actions: input.actions?.length ?? null,
          // A corrected timing keeps what was sent, for the auditor.
          ...(timing.flags.length > 0
            ? {
                flags: timing.flags,
                sent: { active_ms: input.activeMs, started_at: input.startedAt.toISOString(), ended_at: input.endedAt.toISOString() },
              }
            : {}),
        },
      });
      return { version: v, first: true };
    });
  } catch (err) {
    await deps.blobs.remove(uri);
    // The same submission id stored at the same moment for another task (no lock in common, so
    // the look-up above could not see it): the unique index refused this one, and the stored one
    // decides the answer (replay: another task's submission is a 409 naming the id).
    if (uniqueViolation(err)) {
      const raced = await findSubmission(deps.pool, input.submissionId);
      if (raced) return replay(deps, task, raced, input, maskSha);
    }
    throw err;
  }
  if (!stored.first) {
    await deps.blobs.remove(uri);
    return replay(deps, task, stored.version, input, maskSha);
  }
  const { version } = stored;
  const notified = await notifyWorkflow(task, version, deps.notify);
  return { version, task: await getTask(deps.pool, task.id), duplicate: false, workflow_notified: notified };
}

/** A submission id seen before: the same submission is answered again (and the workflow re-told). */
async function replay(
  deps: { pool: Pool; notify: NotifySubmission | null },
  task: Task,
  previous: AnnotationVersion,
  input: SubmissionInput,
  maskSha: string,
): Promise<SubmissionResult> {
  if (!sameSubmission(previous, input, maskSha)) {
    throw conflict(`submission id ${input.submissionId} was already used for a different submission (version ${previous.id})`);
  }
  const current = await getTask(deps.pool, task.id);
  const notified = current.state === "submitted" ? await notifyWorkflow(current, previous, deps.notify) : false;
  return { version: previous, task: current, duplicate: true, workflow_notified: notified };
}
