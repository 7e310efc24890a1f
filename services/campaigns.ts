// Campaigns: the database row, the Temporal workflow that runs it (through a gateway the
// caller passes in: services/temporal.ts in production), and the rounds the workflow's
// activities record.
import type { z } from "zod";
import { withTransaction, type Pool, type Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { AppError, badRequest, conflict, notFound } from "./errors.js";
import { listImages, type Image } from "./images.js";
import { getModel, type Model } from "./models.js";
import { getProject } from "./projects.js";
import { campaignConfigSchema, resolveCampaignConfig } from "./temporal.js";
import { findTaskByWorkflowId, type Task } from "./tasks.js";
import type { User } from "./users.js";
import type { PullResult } from "../workflows/types.js";

/**
 * A campaign's settings: the workflow's CampaignConfig (workflows/types.ts), every key optional,
 * validated by the schema next to the Temporal client (services/temporal.ts) so the API and the
 * workflow start accept exactly the same configurations.
 */
export { campaignConfigSchema };
export type CampaignConfigInput = z.infer<typeof campaignConfigSchema>;

export type CampaignState = "created" | "running" | "paused" | "stopping" | "stopped" | "completed" | "failed";

export interface Campaign {
  id: number;
  project_id: number;
  name: string;
  config: CampaignConfigInput;
  state: CampaignState;
  phase: string | null;
  round: number;
  k: number;
  workflow_id: string | null;
  created_by: number | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = "id, project_id, name, config, state, phase, round, k, workflow_id, created_by, created_at, updated_at";

/** The final states: the workflow has closed, and a row in one of them never leaves it. */
const FINISHED: readonly CampaignState[] = ["stopped", "completed", "failed"];
/** FINISHED as an SQL list, for the guards in the UPDATE statements. */
const FINAL_SQL = "('stopped', 'completed', 'failed')";

/** The Temporal side of a campaign; services/temporal.ts provides the real one. */
export interface CampaignWorkflows {
  start(input: { campaignId: string; projectId: string; config: CampaignConfigInput }): Promise<{ workflowId: string }>;
  pause(workflowId: string): Promise<unknown>;
  resume(workflowId: string): Promise<unknown>;
  stop(workflowId: string, reason: string): Promise<unknown>;
  /** The approveModel Update; `by` is the approving user's id (absent: nobody named, e.g. the CLI without --by). */
  approve(workflowId: string, round: number, by?: string): Promise<unknown>;
  setK(workflowId: string, k: number): Promise<unknown>;
  status(workflowId: string): Promise<unknown>;
  /** The `pull` Update of a continuous campaign (workflows/continuous.ts). */
  pull(workflowId: string, doctorId: string): Promise<PullResult>;
  /** The `restartFrom` Update of a correction task (services/tasks.ts restartFromNewerPrediction). */
  restartTask(workflowId: string, versionId: string): Promise<unknown>;
}

export async function getCampaign(db: Queryable, id: number): Promise<Campaign> {
  const { rows } = await db.query<Campaign>(`SELECT ${COLUMNS} FROM campaigns WHERE id = $1`, [id]);
  if (!rows[0]) throw notFound("campaign", id);
  return rows[0];
}

export async function listCampaigns(db: Queryable, projectId?: number): Promise<Campaign[]> {
  const { rows } =
    projectId === undefined
      ? await db.query<Campaign>(`SELECT ${COLUMNS} FROM campaigns ORDER BY id`)
      : await db.query<Campaign>(`SELECT ${COLUMNS} FROM campaigns WHERE project_id = $1 ORDER BY id`, [projectId]);
  return rows;
}

/** Running campaigns in continuous mode, whose images doctors pull ("Next image"). */
export async function listPullableCampaigns(
  db: Queryable,
): Promise<Array<{ id: number; name: string; project_id: number; project_name: string }>> {
  const { rows } = await db.query<{ id: number; name: string; project_id: number; project_name: string }>(
    `SELECT c.id, c.name, c.project_id, p.name AS project_name
       FROM campaigns c JOIN projects p ON p.id = c.project_id
      WHERE c.state = 'running' AND c.config->>'mode' = 'continuous'
      ORDER BY c.id`,
  );
  return rows;
}

/** Checks that a project can run a campaign: seed images, and test images to measure F1 on. */
async function checkProjectReady(db: Queryable, projectId: number): Promise<void> {
  await getProject(db, projectId);
  const { rows } = await db.query<{ role: string; n: number }>(
    "SELECT role, count(*)::int AS n FROM images WHERE project_id = $1 GROUP BY role",
    [projectId],
  );
  const count = (role: string) => rows.find((r) => r.role === role)?.n ?? 0;
  if (count("seed") === 0) throw badRequest(`project ${projectId} has no seed images`);
  if (count("test") === 0) throw badRequest(`project ${projectId} has no test images`);
}

/** Several annotators of one image are different doctors: there must be as many active doctors (issue 14). */
async function checkEnoughDoctors(db: Queryable, config: CampaignConfigInput): Promise<void> {
  const needed = Math.max(config.annotatorsPerSeed ?? 1, (config.doubleCorrectionFraction ?? 0) > 0 ? 2 : 1);
  if (needed < 2) return;
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM users WHERE role = 'doctor' AND active");
  const have = rows[0]?.n ?? 0;
  if (have < needed) {
    const why = (config.annotatorsPerSeed ?? 1) >= needed ? `annotatorsPerSeed is ${needed}` : "doubleCorrectionFraction asks for a second doctor";
    throw new AppError("validation_failed", `campaign config: ${why}, but there ${have === 1 ? "is 1 active doctor" : `are ${have} active doctors`}; each annotator of an image is a different doctor`);
  }
}

function wrapTemporal(err: unknown, what: string): never {
  if (err instanceof AppError) throw err;
  throw new AppError("workflow_unavailable", `${what}: ${(err as Error).message}`);
}

/**
 * Creates the campaign row and starts its workflow. The row is committed (state `created`)
 * before the workflow starts: the workflow's first activities read it, and one that ran before a
 * still-open transaction committed found no campaign, failed for good and left the row, once
 * committed, `running` for a workflow that had already ended. A start that Temporal refuses
 * deletes the row again, so a failed start leaves nothing behind.
 */
export async function startCampaign(
  deps: { pool: Pool; workflows: CampaignWorkflows },
  input: { projectId: number; name: string; config: CampaignConfigInput },
  actorId: number,
): Promise<Campaign> {
  // Stored with every default filled in, so the record shows the settings the workflow runs with.
  const config = resolveCampaignConfig(input.config) as CampaignConfigInput;
  if (!input.name.trim()) throw badRequest("campaign name must not be empty");
  await checkProjectReady(deps.pool, input.projectId);
  await checkEnoughDoctors(deps.pool, config);
  const { rows } = await deps.pool.query<{ id: number }>(
    `INSERT INTO campaigns (project_id, name, config, k, state, created_by) VALUES ($1, $2, $3, $4, 'created', $5) RETURNING id`,
    [input.projectId, input.name.trim(), JSON.stringify(config), config.k ?? 2, actorId],
  );
  const id = rows[0]!.id;
  let workflowId: string;
  try {
    ({ workflowId } = await deps.workflows.start({ campaignId: String(id), projectId: String(input.projectId), config }));
  } catch (err) {
    await deps.pool.query("DELETE FROM campaigns WHERE id = $1", [id]);
    wrapTemporal(err, "the campaign workflow could not be started");
  }
  return withTransaction(deps.pool, async (tx) => {
    // The workflow may already have recorded a state (even a final one): only `created` moves on.
    await tx.query(
      `UPDATE campaigns SET workflow_id = $2, state = CASE WHEN state = 'created' THEN 'running' ELSE state END, updated_at = now()
        WHERE id = $1`,
      [id, workflowId],
    );
    await appendAudit(tx, { actorId, action: "campaign.start", entity: "campaign", entityId: id, details: { workflow_id: workflowId, config } });
    return getCampaign(tx, id);
  });
}

/** Steering of a running campaign; approving a round's model is approveCampaignRound. */
export type CampaignAction = "pause" | "resume" | "stop" | "set_k";

export interface ControlInput {
  action: CampaignAction;
  reason?: string;
  k?: number;
}

/** The longest stop reason kept (the API's StopInput says the same). */
export const MAX_STOP_REASON = 500;

/**
 * A stop's reason, checked before anything happens: it goes into the audit row, which is written
 * before the workflow is told, so a reason PostgreSQL cannot store (a NUL byte) or one too long
 * must be refused here, not after the workflow has stopped. Other control characters are refused
 * too (they would end up in the audit log and the reports unseen). Empty: the default reason.
 */
function checkStopReason(reason: unknown): string | undefined {
  if (reason === undefined || reason === null) return undefined;
  if (typeof reason !== "string") throw new AppError("validation_failed", "reason: must be a string");
  if (reason.length > MAX_STOP_REASON) {
    throw new AppError("validation_failed", `reason: at most ${MAX_STOP_REASON} characters, not ${reason.length}`);
  }
  for (const ch of reason) {
    const code = ch.charCodeAt(0);
    if ((code < 0x20 && ch !== "\t" && ch !== "\n" && ch !== "\r") || code === 0x7f) {
      throw new AppError("validation_failed", `reason: must not contain control characters (U+${code.toString(16).toUpperCase().padStart(4, "0")})`);
    }
  }
  return reason.trim() ? reason : undefined;
}

const VERB: Record<CampaignAction, string> = { pause: "paused", resume: "resumed", stop: "stopped", set_k: "given a new K" };

/**
 * Why the campaign's row refuses `action`, or null. A finished campaign (stopped, completed,
 * failed) has a closed workflow; a `stopping` one has a stop on its way, after which pausing,
 * resuming or changing K would be accepted by nobody (the workflow refuses them too) or, worse,
 * recorded after the final state. A second stop is let through: it is how a stop whose first
 * call never reached Temporal is retried, and the workflow takes it again harmlessly.
 */
function controlRefusal(campaign: Campaign, action: CampaignAction): string | null {
  if (!campaign.workflow_id) return `campaign ${campaign.id} has no workflow`;
  if (campaignFinished(campaign)) return `campaign ${campaign.id} is ${campaign.state}`;
  if (campaign.state === "stopping" && action !== "stop") {
    return `campaign ${campaign.id} is stopping (a stop was requested); it cannot be ${VERB[action]}`;
  }
  return null;
}

async function lockCampaign(tx: Queryable, id: number): Promise<Campaign> {
  const { rows } = await tx.query<Campaign>(`SELECT ${COLUMNS} FROM campaigns WHERE id = $1 FOR UPDATE`, [id]);
  if (!rows[0]) throw notFound("campaign", id);
  return rows[0];
}

/**
 * Pause, resume, stop or change K; returns what the workflow answered.
 *
 * Order, so that nothing irreversible happens before it is checked and recorded:
 * 1. the input (k, the stop's reason): 400 naming the field, nothing else happens;
 * 2. the row, locked: no workflow, finished, or (except for a stop) stopping → 409 naming why;
 * 3. a stop marks the row `stopping` and writes its audit row in that same transaction, committed
 *    before the workflow hears of it: there is never a stopped workflow without the audit row of
 *    who stopped it, and a pause, resume or change of K sent after the stop is refused by step 2;
 * 4. the workflow's Update. A stop that fails there (Temporal unreachable, or refused because the
 *    campaign finished meanwhile) puts the row back unless it has moved on, and says so in the
 *    audit log (`campaign.stop_failed`). Pause, resume and K are reversible and audited once the
 *    workflow accepted them.
 */
export async function controlCampaign(
  deps: { pool: Pool; workflows: CampaignWorkflows },
  campaignId: number,
  input: ControlInput,
  actor: { id: number; email: string },
): Promise<unknown> {
  const stopReason = input.action === "stop" ? checkStopReason(input.reason) : undefined;
  if (input.action === "set_k" && (input.k === undefined || !Number.isInteger(input.k) || input.k < 1 || input.k > 1000)) {
    throw new AppError("validation_failed", "k: must be an integer from 1 to 1000");
  }
  const campaign = await withTransaction(deps.pool, async (tx) => {
    const c = await lockCampaign(tx, campaignId);
    const refused = controlRefusal(c, input.action);
    if (refused) throw conflict(refused);
    if (input.action === "stop") {
      await tx.query("UPDATE campaigns SET state = 'stopping', updated_at = now() WHERE id = $1", [campaignId]);
      await appendAudit(tx, {
        actorId: actor.id,
        action: "campaign.stop",
        entity: "campaign",
        entityId: campaignId,
        details: { reason: stopReason ?? null, k: null, state: c.state },
      });
    }
    return c;
  });
  const wf = campaign.workflow_id!;
  let answer: unknown;
  try {
    switch (input.action) {
      case "pause":
        answer = await deps.workflows.pause(wf);
        break;
      case "resume":
        answer = await deps.workflows.resume(wf);
        break;
      case "stop":
        answer = await deps.workflows.stop(wf, stopReason ?? `stopped by ${actor.email}`);
        break;
      case "set_k":
        answer = await deps.workflows.setK(wf, input.k!);
        break;
    }
  } catch (err) {
    if (input.action === "stop") await stopFailed(deps.pool, campaign, actor, err);
    throw await controlFailure(deps.pool, campaign, input.action, err);
  }
  if (input.action === "stop") return answer;
  if (input.action === "set_k") {
    await deps.pool.query(`UPDATE campaigns SET k = $2, updated_at = now() WHERE id = $1 AND state NOT IN ${FINAL_SQL}`, [campaignId, input.k]);
  }
  await appendAudit(deps.pool, {
    actorId: actor.id,
    action: `campaign.${input.action}`,
    entity: "campaign",
    entityId: campaignId,
    details: { reason: null, k: input.k ?? null },
  });
  return answer;
}

/**
 * A stop the workflow did not take: the row goes back to the state the stop found, unless it has
 * moved on (the workflow recorded its final state meanwhile), and the audit log says the stop
 * failed, next to the `campaign.stop` row written before the call.
 */
async function stopFailed(pool: Pool, before: Campaign, actor: { id: number }, err: unknown): Promise<void> {
  await pool.query("UPDATE campaigns SET state = $2, updated_at = now() WHERE id = $1 AND state = 'stopping'", [before.id, before.state]);
  await appendAudit(pool, {
    actorId: actor.id,
    action: "campaign.stop_failed",
    entity: "campaign",
    entityId: before.id,
    details: { error: err instanceof Error ? err.message : String(err) },
  });
}

/**
 * The error a failed Update answers with. Temporal says "not found" for a workflow that has
 * closed; the campaign exists, so that is a 409 naming the state the row now records (the
 * workflow records its final state before it closes), never a 404 as if the campaign were unknown.
 */
async function controlFailure(pool: Pool, campaign: Campaign, action: CampaignAction, err: unknown): Promise<AppError> {
  if (err instanceof AppError && err.code === "not_found") {
    const now = await getCampaign(pool, campaign.id);
    if (campaignFinished(now)) return conflict(`campaign ${campaign.id} is ${now.state}`);
    return conflict(`campaign ${campaign.id}: its workflow ${campaign.workflow_id} is no longer running (${err.message})`);
  }
  if (err instanceof AppError) return err;
  return new AppError("workflow_unavailable", `campaign ${campaign.id}: ${action} failed: ${(err as Error).message}`);
}

/** Whether a campaign has finished: its workflow is closed and takes no Update. */
export function campaignFinished(campaign: Campaign): boolean {
  return FINISHED.includes(campaign.state);
}

export interface RoundApproval<T> {
  modelId: number;
  /** `workflow`: the running workflow's approveModel Update approved it; `database`: the campaign had finished. */
  via: "workflow" | "database";
  /** The workflow's answer (the round's summary), or `{round, modelId, approved}` when it had finished. */
  result: unknown;
  deployment: T;
}

/**
 * Approves the model a campaign trained in `round`, then deploys it with `deploy` (serving's
 * `deployModel`: approves the row and freezes the files in one transaction, idempotent).
 *
 * - While the workflow runs, through its `approveModel` Update: the workflow may be waiting for
 *   it (`requireApproval`), and it answers with the round's summary; its validator's refusal
 *   (no model yet, already approved) is a 409.
 * - Once the campaign has finished (completed, stopped, failed) its workflow is closed and takes no
 *   Update, yet that is exactly when a lab lead approves the final round's model: the round's
 *   model row is deployed directly. So is it when the Update finds the workflow gone because it
 *   finished after the row was read.
 *
 * Audited as `campaign.approve` with `{round, model_id, via, state}`. Through the workflow the
 * row is written before the Update is sent (approving unblocks the campaign, which cannot be
 * undone), for the model the round recorded; a refused or failed Update adds
 * `campaign.approve_failed` with the reason. On the database path the deployment is audited in
 * its own transaction (`model.deploy`, serving/registry.ts), and `campaign.approve` follows it
 * once it succeeded (a refused deployment approves nothing).
 * @throws AppError not_found (campaign, or the round's model of a finished campaign), conflict
 *   (no workflow; no model recorded for the round yet; the workflow refused), workflow_unavailable
 *   (Temporal unreachable), and what `deploy` throws (bad_request: no ONNX export, bad model.json).
 */
export async function approveCampaignRound<T>(
  deps: { pool: Pool; workflows: CampaignWorkflows | null },
  campaignId: number,
  round: number,
  actor: { id: number | null },
  deploy: (modelId: number) => Promise<T>,
): Promise<RoundApproval<T>> {
  if (!Number.isInteger(round) || round < 0) throw badRequest(`round must be a non-negative integer, not ${round}`);
  let campaign = await getCampaign(deps.pool, campaignId);
  const audit = (modelId: number, via: RoundApproval<T>["via"]) =>
    appendAudit(deps.pool, {
      actorId: actor.id,
      action: "campaign.approve",
      entity: "campaign",
      entityId: campaignId,
      details: { round, model_id: modelId, via, state: campaign.state },
    });
  const roundModel = async (): Promise<number | null> => {
    const { rows } = await deps.pool.query<{ id: number }>("SELECT id FROM models WHERE campaign_id = $1 AND round = $2", [
      campaignId,
      round,
    ]);
    return rows[0]?.id ?? null;
  };
  if (!campaignFinished(campaign)) {
    if (!campaign.workflow_id) throw conflict(`campaign ${campaignId} has no workflow`);
    if (!deps.workflows) throw new AppError("workflow_unavailable", "this server has no Temporal client configured");
    // The workflow approves the model its round recorded (store.recordModel writes the row before
    // the round's summary exists in the workflow): without that row there is nothing to approve.
    const recorded = await roundModel();
    if (recorded === null) throw conflict(`round ${round} of campaign ${campaignId} has no model yet`);
    await audit(recorded, "workflow");
    let result: unknown;
    try {
      result = await deps.workflows.approve(campaign.workflow_id, round, actor.id === null ? undefined : String(actor.id));
    } catch (err) {
      // Temporal answers "not found" for a closed workflow; only a row that now says finished
      // makes that the race above rather than a campaign whose workflow is missing.
      const gone = err instanceof AppError && err.code === "not_found";
      if (gone) campaign = await getCampaign(deps.pool, campaignId);
      if (!gone || !campaignFinished(campaign)) {
        await appendAudit(deps.pool, {
          actorId: actor.id,
          action: "campaign.approve_failed",
          entity: "campaign",
          entityId: campaignId,
          details: { round, model_id: recorded, error: err instanceof Error ? err.message : String(err) },
        });
        wrapTemporal(err, `campaign ${campaignId}: approve failed`);
      }
    }
    if (result !== undefined) {
      const modelId = Number((result as { modelId?: unknown }).modelId);
      if (!Number.isInteger(modelId) || modelId <= 0) throw new AppError("internal", `campaign ${campaignId}: the workflow answered no model id`);
      return { modelId, via: "workflow", result, deployment: await deploy(modelId) };
    }
  }
  const modelId = await roundModel();
  if (modelId === null) throw notFound(`model of round ${round} of campaign`, campaignId);
  const deployment = await deploy(modelId);
  await audit(modelId, "database");
  return { modelId, via: "database", result: { round, modelId: String(modelId), approved: true }, deployment };
}

/** The live status from the workflow's query. */
export async function campaignStatus(deps: { pool: Pool; workflows: CampaignWorkflows }, campaignId: number): Promise<unknown> {
  const campaign = await getCampaign(deps.pool, campaignId);
  if (!campaign.workflow_id) throw conflict(`campaign ${campaignId} has no workflow`);
  return deps.workflows.status(campaign.workflow_id).catch((err: unknown) => wrapTemporal(err, `campaign ${campaignId}: status query failed`));
}

/** How long a pull waits for its task's row (the task workflow's first activity writes it), in ms. */
const PULLED_TASK_WAITS_MS = [50, 100, 200, 400, 800, 1600, 3200, 6400];
/**
 * How long a pull waits, and asks again, while the workflow still counts the doctor's previous
 * task as open although it was just submitted (the campaign hears of it when the task workflow
 * has completed it), in ms.
 */
const PREVIOUS_TASK_WAITS_MS = [100, 200, 400, 800, 1600, 3200];

export interface PulledTask {
  task: Task;
  imageId: number;
  /** The model version whose prediction the task starts from. */
  modelVersion: number;
  /** The doctor's open pulled task, given back instead of a new one. */
  existing: boolean;
}

/**
 * "Next image": a doctor pulls the most useful unlabelled image of a continuous campaign under its
 * newest model; the workflow claims it (never for two doctors) and starts a correction task
 * assigned to the doctor, whose row this returns once the task workflow has written it. A doctor
 * with a pulled task still open gets that one back. Only doctors pull.
 * Errors: 404 unknown campaign; 409 campaign not continuous, not running, paused, without a model
 * yet, nothing left to pull (the workflow's reason); 503 Temporal unreachable or the task not
 * written within about 13 s (the pull itself took effect: pulling again returns that task).
 */
export async function pullNextTask(
  deps: { pool: Pool; workflows: CampaignWorkflows },
  campaignId: number,
  doctor: User,
): Promise<PulledTask> {
  if (doctor.role !== "doctor") throw new AppError("forbidden", "only doctors pull images to correct");
  const campaign = await getCampaign(deps.pool, campaignId);
  if (campaign.config.mode !== "continuous") throw conflict(`campaign ${campaignId} runs in rounds: its images come as tasks, none can be pulled`);
  if (!campaign.workflow_id || campaign.state !== "running") throw conflict(`campaign ${campaignId} is ${campaign.state}, not running`);
  const workflowId = campaign.workflow_id;
  const pull = () =>
    deps.workflows.pull(workflowId, String(doctor.id)).catch((err: unknown) => wrapTemporal(err, `campaign ${campaignId}: pull failed`));
  let pulled = await pull();
  for (const wait of PREVIOUS_TASK_WAITS_MS) {
    if (!pulled.existing) break;
    const previous = await findTaskByWorkflowId(deps.pool, pulled.taskWorkflowId);
    if (previous?.state === "open" && previous.assignee_id === doctor.id) break; // still the doctor's to do
    await sleep(wait);
    pulled = await pull();
  }
  for (const wait of [0, ...PULLED_TASK_WAITS_MS]) {
    if (wait) await sleep(wait);
    const task = await findTaskByWorkflowId(deps.pool, pulled.taskWorkflowId);
    if (!task) continue;
    if (task.assignee_id !== doctor.id || (pulled.existing && task.state !== "open")) break;
    return { task, imageId: Number(pulled.imageId), modelVersion: pulled.modelVersion, existing: pulled.existing };
  }
  throw new AppError("workflow_unavailable", `campaign ${campaignId}: the pulled task is not ready yet; pull again to open it`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `fn` in a transaction: the caller's when `db` is already a client in one, else a new one. */
async function inTransaction<T>(db: Queryable, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  if ("release" in db || !("connect" in db)) return fn(db);
  return withTransaction(db as Pool, fn);
}

/**
 * Written by the workflow's activities as the campaign moves on (state, phase, round).
 *
 * Guarded, because the writes do not arrive in the workflow's order: activities run concurrently
 * and are retried, and one the workflow cancelled (a stop cancels the round) may still run after
 * the workflow has closed. So:
 * - a row in a final state (stopped, completed, failed) never changes again: a late `running`,
 *   `paused` or phase write is ignored, and the row keeps what the workflow recorded last;
 * - a `stopping` row (a stop was requested, services' controlCampaign) only moves to a final state;
 * - a final `stopped` or `completed` also sets the phase of the same name in the same statement,
 *   so a phase write that overtook it cannot leave a finished row with a working phase.
 * An ignored write is not an error (the activity must not be retried for it); the row as it stands
 * is returned. The audit row `campaign.state` is written only for a change that happened.
 */
export async function setCampaignState(
  db: Queryable,
  campaignId: number,
  update: { state?: CampaignState; phase?: string | null; round?: number; reason?: string | null },
): Promise<Campaign> {
  const finalPhase = update.state === "stopped" || update.state === "completed" ? update.state : null;
  return inTransaction(db, async (tx) => {
    // Locked, so that the audit row's `from` is the state this write replaced.
    const before = await lockCampaign(tx, campaignId);
    const { rows } = await tx.query<Campaign>(
      `UPDATE campaigns SET state = COALESCE($2, state), phase = COALESCE($5, $3, phase), round = COALESCE($4, round),
              updated_at = now()
        WHERE id = $1 AND state NOT IN ${FINAL_SQL}
          AND ($2::text IS NULL OR $2 IN ${FINAL_SQL} OR state <> 'stopping')
        RETURNING ${COLUMNS}`,
      [campaignId, update.state ?? null, update.phase ?? null, update.round ?? null, finalPhase],
    );
    const after = rows[0];
    if (!after) return before;
    if (update.state && update.state !== before.state) {
      await appendAudit(tx, {
        actorId: null,
        action: "campaign.state",
        entity: "campaign",
        entityId: campaignId,
        details: { from: before.state, to: update.state, reason: update.reason ?? null },
      });
    }
    return after;
  });
}

export interface Round {
  id: number;
  campaign_id: number;
  round: number;
  phase: string;
  model_id: number | null;
  metrics: Record<string, unknown>;
  selected_image_ids: number[];
  strategy: string | null;
  dataset_uri: string | null;
  started_at: Date;
  finished_at: Date | null;
}

const ROUND_COLUMNS = "id, campaign_id, round, phase, model_id, metrics, selected_image_ids, strategy, dataset_uri, started_at, finished_at";

export interface RoundInput {
  campaignId: number;
  round: number;
  phase?: string;
  modelId?: number | null;
  /** Merged into the stored metrics (later writes add keys). */
  metrics?: Record<string, unknown>;
  selectedImageIds?: number[];
  strategy?: string | null;
  datasetUri?: string | null;
  finished?: boolean;
}

/** Creates or updates a round; fields left out keep their stored value (idempotent for retries). */
export async function recordRound(db: Queryable, input: RoundInput): Promise<Round> {
  await getCampaign(db, input.campaignId);
  if (input.modelId !== undefined && input.modelId !== null) await getModel(db, input.modelId);
  const { rows } = await db.query<Round>(
    `INSERT INTO rounds (campaign_id, round, phase, model_id, metrics, selected_image_ids, strategy, dataset_uri, finished_at)
     VALUES ($1, $2, COALESCE($3, 'started'), $4, COALESCE($5::jsonb, '{}'), COALESCE($6::int[], '{}'), $7, $8,
             CASE WHEN $9 THEN now() END)
     ON CONFLICT (campaign_id, round) DO UPDATE SET
       phase = COALESCE($3, rounds.phase),
       model_id = COALESCE($4, rounds.model_id),
       metrics = rounds.metrics || COALESCE($5::jsonb, '{}'),
       selected_image_ids = COALESCE($6::int[], rounds.selected_image_ids),
       strategy = COALESCE($7, rounds.strategy),
       dataset_uri = COALESCE($8, rounds.dataset_uri),
       finished_at = CASE WHEN $9 THEN COALESCE(rounds.finished_at, now()) ELSE rounds.finished_at END
     RETURNING ${ROUND_COLUMNS}`,
    [
      input.campaignId, input.round, input.phase ?? null, input.modelId ?? null,
      input.metrics ? JSON.stringify(input.metrics) : null, input.selectedImageIds ?? null, input.strategy ?? null,
      input.datasetUri ?? null, input.finished ?? false,
    ],
  );
  await db.query("UPDATE campaigns SET round = GREATEST(round, $2), updated_at = now() WHERE id = $1", [input.campaignId, input.round]);
  return rows[0]!;
}

export interface RoundWithModel extends Round {
  model: Model | null;
  tasks: { total: number; done: number };
}

export async function listRounds(db: Queryable, campaignId: number): Promise<RoundWithModel[]> {
  await getCampaign(db, campaignId);
  const { rows } = await db.query<Round>(`SELECT ${ROUND_COLUMNS} FROM rounds WHERE campaign_id = $1 ORDER BY round`, [campaignId]);
  const out: RoundWithModel[] = [];
  for (const r of rows) {
    const counts = await db.query<{ total: number; done: number }>(
      `SELECT count(*)::int AS total, count(*) FILTER (WHERE state = 'done')::int AS done FROM tasks
        WHERE campaign_id = $1 AND round = $2`,
      [campaignId, r.round],
    );
    out.push({ ...r, model: r.model_id ? await getModel(db, r.model_id) : null, tasks: counts.rows[0]! });
  }
  return out;
}

/** The images a campaign works on, by role (URIs of the normalised PNGs and reference masks). */
export async function loadCampaignImages(db: Queryable, campaignId: number): Promise<Record<"seed" | "pool" | "test", Image[]>> {
  const campaign = await getCampaign(db, campaignId);
  const images = await listImages(db, campaign.project_id);
  return {
    seed: images.filter((i) => i.role === "seed"),
    pool: images.filter((i) => i.role === "pool"),
    test: images.filter((i) => i.role === "test"),
  };
}
