// Review (issue 14): in a campaign with `review`, a submitted mask waits for a reviewer (role
// `reviewer`, or a lab lead) who accepts it or returns it to the doctor with a comment and a
// marked region. The task workflow records the review (`requestReview`, state `in_review`) and
// waits for its `review` update; the decision is stored here first and only then told to the
// workflow, so a reviewer's decision is never lost to an unreachable Temporal (the same
// decision_id retries safely; a decision the workflow never heard of is read from the row at its
// next reminder). The task row stays `in_review` until the workflow acts on the decision: a
// returned task is reopened by the workflow (`reopenReturnedTask`), never before it knows.
import { withTransaction, type Pool, type Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { getVersion } from "./annotations.js";
import { AppError, badRequest, conflict, forbidden, notFound, uniqueViolation } from "./errors.js";
import { getTask } from "./tasks.js";
import type { User } from "./users.js";

export type ReviewState = "pending" | "accepted" | "returned" | "cancelled";
export type ReviewDecision = "accept" | "return";

/** A marked region of the image, in image pixels (x, y: top-left corner). */
export interface ReviewRegion {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Review {
  id: number;
  task_id: number;
  version_id: number;
  doctor_id: number;
  state: ReviewState;
  reviewer_id: number | null;
  comment: string | null;
  region: ReviewRegion | null;
  active_ms: number | null;
  decision_id: string | null;
  reminders_sent: number;
  created_at: Date;
  decided_at: Date | null;
}

/** A review with what a reviewer's list and page show. */
export interface ReviewView extends Review {
  image_id: number;
  image_name: string;
  width: number;
  height: number;
  campaign_id: number | null;
  round: number | null;
  task_kind: "annotate" | "correct";
  doctor_name: string;
  reviewer_name: string | null;
}

const COLUMNS = `r.id, r.task_id, r.version_id, r.doctor_id, r.state, r.reviewer_id, r.comment, r.region, r.active_ms,
  r.decision_id, r.reminders_sent, r.created_at, r.decided_at`;
const VIEW = `SELECT ${COLUMNS}, t.image_id, i.name AS image_name, i.width, i.height, t.campaign_id, t.round, t.kind AS task_kind,
    d.name AS doctor_name, rv.name AS reviewer_name
  FROM reviews r JOIN tasks t ON t.id = r.task_id JOIN images i ON i.id = t.image_id
  JOIN users d ON d.id = r.doctor_id LEFT JOIN users rv ON rv.id = r.reviewer_id`;

/** Who may decide reviews: reviewers and lab leads. */
export function canReview(user: User): boolean {
  return user.role === "reviewer" || user.role === "lab_lead";
}

export async function getReview(db: Queryable, id: number): Promise<ReviewView> {
  const { rows } = await db.query<ReviewView>(`${VIEW} WHERE r.id = $1`, [id]);
  if (!rows[0]) throw notFound("review", id);
  return rows[0];
}

/** Reviews by state (default pending), oldest first; `campaignId` narrows to one campaign. */
export async function listReviews(db: Queryable, filter: { state?: ReviewState; campaignId?: number } = {}): Promise<ReviewView[]> {
  const { rows } = await db.query<ReviewView>(
    `${VIEW} WHERE r.state = $1 AND ($2::int IS NULL OR t.campaign_id = $2) ORDER BY r.created_at, r.id`,
    [filter.state ?? "pending", filter.campaignId ?? null],
  );
  return rows;
}

/**
 * Records that the task's submitted version waits for review and puts the task `in_review`
 * (called by the task workflow). Idempotent: one review per submitted version.
 */
export async function requestReview(pool: Pool, input: { taskId: number; versionId: number }): Promise<Review> {
  const task = await getTask(pool, input.taskId);
  const version = await getVersion(pool, input.versionId);
  if (version.task_id !== task.id || version.author_id === null) throw badRequest(`version ${version.id} was not submitted for task ${task.id}`);
  try {
    return await withTransaction(pool, async (tx) => {
      const found = await tx.query<{ id: number }>("SELECT id FROM reviews WHERE version_id = $1", [version.id]);
      if (found.rows[0]) return getReview(tx, found.rows[0].id);
      const { rows } = await tx.query<{ id: number }>(
        "INSERT INTO reviews (task_id, version_id, doctor_id) VALUES ($1, $2, $3) RETURNING id",
        [task.id, version.id, version.author_id],
      );
      await tx.query("UPDATE tasks SET state = 'in_review', updated_at = now() WHERE id = $1 AND state IN ('open', 'submitted')", [task.id]);
      await appendAudit(tx, { actorId: null, action: "review.request", entity: "review", entityId: rows[0]!.id, details: { task_id: task.id, version_id: version.id } });
      return getReview(tx, rows[0]!.id);
    });
  } catch (err) {
    if (uniqueViolation(err)) return requestReview(pool, input); // a concurrent retry won the race
    throw err;
  }
}

/** The decision stored in a review's row, if any (the workflow reads it when no Update came). */
export function storedDecision(review: Pick<Review, "state">): ReviewDecision | null {
  return review.state === "accepted" ? "accept" : review.state === "returned" ? "return" : null;
}

/**
 * Counts a reminder; returns whom to remind (the reviewers, and the lab leads too once
 * `escalate`d) and the decision if one is stored already (then nobody is reminded).
 */
export async function recordReviewReminder(pool: Pool, input: { reviewId: number; escalate: boolean }): Promise<{ to: User[]; decision: ReviewDecision | null }> {
  const review = await getReview(pool, input.reviewId);
  if (review.state !== "pending") return { to: [], decision: storedDecision(review) };
  await pool.query("UPDATE reviews SET reminders_sent = reminders_sent + 1 WHERE id = $1", [review.id]);
  await appendAudit(pool, { actorId: null, action: "review.remind", entity: "review", entityId: review.id, details: { escalate: input.escalate } });
  const { rows } = await pool.query<User>(
    `SELECT id, email, name, role, active, created_at FROM users
      WHERE active AND (role = 'reviewer' OR ($1 AND role = 'lab_lead')) ORDER BY id`,
    [input.escalate],
  );
  return { to: rows, decision: null };
}

/**
 * A returned task reopens for its doctor from the returned version (called by the task workflow
 * once it has the decision). Only a task still `in_review` is reopened: a cancelled one stays
 * cancelled; a retry changes nothing.
 */
export async function reopenReturnedTask(pool: Pool, input: { taskId: number; versionId: number }): Promise<void> {
  await withTransaction(pool, async (tx) => {
    const { rowCount } = await tx.query(
      "UPDATE tasks SET state = 'open', start_version_id = $2, result_version_id = NULL, updated_at = now() WHERE id = $1 AND state = 'in_review'",
      [input.taskId, input.versionId],
    );
    if (rowCount) await appendAudit(tx, { actorId: null, action: "task.reopen", entity: "task", entityId: input.taskId, details: { start_version_id: input.versionId } });
  });
}

export interface DecisionInput {
  reviewId: number;
  decision: ReviewDecision;
  /** Required to return a mask; what the doctor should change. At most 2000 characters. */
  comment?: string | null;
  /** Where, in image pixels; must lie inside the image. */
  region?: ReviewRegion | null;
  /** The reviewer's active time on the review, milliseconds. */
  activeMs: number;
  /** The reviewer's idempotency key: a retry with the same id and decision is answered again. */
  decisionId: string;
}

/** Tells the task workflow (the `review` update); null on a server without Temporal. */
export type NotifyReview = (workflowId: string, review: { reviewId: string; decision: ReviewDecision }) => Promise<unknown>;

/**
 * Stores a reviewer's decision, then tells the task workflow. Returning reopens the task for its
 * doctor from the submitted mask. Errors: 403 not a reviewer or lab lead; 404 no such review;
 * 400 a return without a comment, a region outside the image, a bad time; 409 the review was
 * already decided (another decision id) or cancelled; 503 stored but the workflow was not told
 * (retry with the same decision_id).
 */
export async function decideReview(
  deps: { pool: Pool; notify: NotifyReview | null },
  viewer: User,
  input: DecisionInput,
): Promise<ReviewView> {
  if (!canReview(viewer)) throw forbidden("only reviewers and lab leads review masks");
  const review = await getReview(deps.pool, input.reviewId);
  if (review.doctor_id === viewer.id) throw forbidden("nobody reviews their own mask");
  if (!input.decisionId.trim()) throw badRequest("decision_id must not be empty");
  if (review.decision_id !== null && review.decision_id === input.decisionId) return replayDecision(deps, review, input);
  const comment = input.comment?.trim() || null;
  if (input.decision === "return" && !comment) throw badRequest("comment: a returned mask needs a comment saying what to change");
  if (comment && comment.length > 2000) throw badRequest("comment: at most 2000 characters");
  if (!Number.isSafeInteger(input.activeMs) || input.activeMs < 0) throw badRequest("active_ms must be a non-negative integer");
  if (input.region) checkRegion(input.region, review);
  let decided: ReviewView;
  try {
    decided = await storeDecision(deps.pool, viewer, review, input, comment);
  } catch (err) {
    // The decision id was used for another review: the unique index refuses it.
    if (uniqueViolation(err)) throw conflict(`decision id ${input.decisionId} was already used for another review`);
    throw err;
  }
  return replayDecision(deps, decided, input);
}

/** A decision id seen before: the same decision is told to the workflow again; another one is refused. */
function replayDecision(deps: { pool: Pool; notify: NotifyReview | null }, review: ReviewView, input: DecisionInput): Promise<ReviewView> {
  if (storedDecision(review) !== input.decision) throw conflict(`decision id ${input.decisionId} was already used for another decision`);
  return tellWorkflow(deps, review);
}

/** The decision in one transaction, under the review's and the task's row locks; the task must wait for review. */
async function storeDecision(pool: Pool, viewer: User, review: ReviewView, input: DecisionInput, comment: string | null): Promise<ReviewView> {
  return withTransaction(pool, async (tx) => {
    const locked = await tx.query<{ state: ReviewState; decision_id: string | null }>("SELECT state, decision_id FROM reviews WHERE id = $1 FOR UPDATE", [review.id]);
    const row = locked.rows[0]!;
    if (row.decision_id === input.decisionId) return getReview(tx, review.id); // a concurrent retry stored it
    if (row.state !== "pending") throw conflict(`review ${review.id} is ${row.state}`);
    const task = await tx.query<{ state: string }>("SELECT state FROM tasks WHERE id = $1 FOR UPDATE", [review.task_id]);
    if (task.rows[0]?.state !== "in_review") throw conflict(`task ${review.task_id} is ${task.rows[0]?.state ?? "gone"}; it does not wait for review`);
    const state = input.decision === "accept" ? "accepted" : "returned";
    await tx.query(
      `UPDATE reviews SET state = $2, reviewer_id = $3, comment = $4, region = $5, active_ms = $6, decision_id = $7, decided_at = now()
        WHERE id = $1`,
      [review.id, state, viewer.id, comment, input.region ? JSON.stringify(input.region) : null, input.activeMs, input.decisionId],
    );
    await appendAudit(tx, {
      actorId: viewer.id,
      action: input.decision === "accept" ? "review.accept" : "review.return",
      entity: "review",
      entityId: review.id,
      details: { task_id: review.task_id, version_id: review.version_id, active_ms: input.activeMs, region: input.region ?? null, comment },
    });
    return getReview(tx, review.id);
  });
}

function checkRegion(region: ReviewRegion, image: { width: number; height: number }): void {
  const { x, y, width, height } = region;
  for (const [name, v] of Object.entries({ x, y, width, height })) {
    if (!Number.isInteger(v) || v < 0) throw badRequest(`region.${name} must be a non-negative integer`);
  }
  if (width < 1 || height < 1) throw badRequest("region: width and height must be at least 1");
  if (x + width > image.width || y + height > image.height) {
    throw badRequest(`region (${x},${y} ${width}×${height}) lies outside the image of ${image.width}×${image.height}`);
  }
}

async function tellWorkflow(deps: { pool: Pool; notify: NotifyReview | null }, review: ReviewView): Promise<ReviewView> {
  const task = await getTask(deps.pool, review.task_id);
  // A retried decision after the workflow completed the task (accepted) has nothing left to tell.
  if (!task.workflow_id || task.state === "done" || task.state === "cancelled") return review;
  const decision: ReviewDecision = review.state === "accepted" ? "accept" : "return";
  if (!deps.notify) {
    throw new AppError("workflow_unavailable", `decision stored for review ${review.id} but this server has no Temporal client; retry with the same decision_id`);
  }
  try {
    await deps.notify(task.workflow_id, { reviewId: String(review.id), decision });
  } catch (err) {
    if (err instanceof AppError && err.code !== "workflow_unavailable") throw err;
    throw new AppError(
      "workflow_unavailable",
      `decision stored for review ${review.id} but the task workflow could not be told (${(err as Error).message}); retry with the same decision_id`,
    );
  }
  return review;
}

/** Review outcomes of a campaign per doctor (the auditor's report). */
export interface ReviewOutcomeRow {
  doctor_id: number;
  doctor_name: string;
  accepted: number;
  returned: number;
  pending: number;
  review_active_ms: number;
}

export async function reviewOutcomes(db: Queryable, campaignId: number): Promise<ReviewOutcomeRow[]> {
  const { rows } = await db.query<ReviewOutcomeRow>(
    `SELECT r.doctor_id, d.name AS doctor_name,
            count(*) FILTER (WHERE r.state = 'accepted')::int AS accepted,
            count(*) FILTER (WHERE r.state = 'returned')::int AS returned,
            count(*) FILTER (WHERE r.state = 'pending')::int AS pending,
            coalesce(sum(r.active_ms), 0)::bigint::float8 AS review_active_ms
       FROM reviews r JOIN tasks t ON t.id = r.task_id JOIN users d ON d.id = r.doctor_id
      WHERE t.campaign_id = $1 GROUP BY r.doctor_id, d.name ORDER BY d.name`,
    [campaignId],
  );
  return rows;
}
