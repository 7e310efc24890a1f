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

function wrapTemporal(err: unknown, what: string): never {
  if (err instanceof AppError) throw err;
  throw new AppError("workflow_unavailable", `${what}: ${(err as Error).message}`);
}

/**
 * Creates the campaign row and starts its workflow in one step: the row is committed only
 * once Temporal accepted the workflow, so a failed start leaves nothing behind.
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
  return withTransaction(deps.pool, async (tx) => {
    const { rows } = await tx.query<{ id: number }>(
      `INSERT INTO campaigns (project_id, name, config, k, state, created_by) VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id`,
      [input.projectId, input.name.trim(), JSON.stringify(config), config.k ?? 2, actorId],
    );
    const id = rows[0]!.id;
    const { workflowId } = await deps.workflows
      .start({ campaignId: String(id), projectId: String(input.projectId), config })
      .catch((err: unknown) => wrapTemporal(err, "the campaign workflow could not be started"));
    await tx.query("UPDATE campaigns SET workflow_id = $2 WHERE id = $1", [id, workflowId]);
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

/** Pause, resume, stop or change K; returns what the workflow answered. */
export async function controlCampaign(
  deps: { pool: Pool; workflows: CampaignWorkflows },
  campaignId: number,
  input: ControlInput,
  actor: { id: number; email: string },
): Promise<unknown> {
  const campaign = await getCampaign(deps.pool, campaignId);
  if (!campaign.workflow_id) throw conflict(`campaign ${campaignId} has no workflow`);
  // Approving a finished campaign's model needs no workflow: approveCampaignRound.
  if (campaignFinished(campaign)) throw conflict(`campaign ${campaignId} is ${campaign.state}`);
  const wf = campaign.workflow_id;
  const call = async (): Promise<unknown> => {
    switch (input.action) {
      case "pause":
        return deps.workflows.pause(wf);
      case "resume":
        return deps.workflows.resume(wf);
      case "stop":
        return deps.workflows.stop(wf, input.reason ?? `stopped by ${actor.email}`);
      case "set_k":
        if (input.k === undefined || !Number.isInteger(input.k) || input.k < 1) throw badRequest("k must be a positive integer");
        return deps.workflows.setK(wf, input.k);
    }
  };
  const answer = await call().catch((err: unknown) => wrapTemporal(err, `campaign ${campaignId}: ${input.action} failed`));
  if (input.action === "set_k") await deps.pool.query("UPDATE campaigns SET k = $2, updated_at = now() WHERE id = $1", [campaignId, input.k]);
  await appendAudit(deps.pool, {
    actorId: actor.id,
    action: `campaign.${input.action}`,
    entity: "campaign",
    entityId: campaignId,
    details: { reason: input.reason ?? null, k: input.k ?? null },
  });
  return answer;
}

const FINISHED: readonly CampaignState[] = ["stopped", "completed", "failed"];

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
 * Audited as `campaign.approve` with `{round, model_id, via}`; on the database path only once
 * the deployment succeeded (a refused deployment approves nothing).
 * @throws AppError not_found (campaign, or the round's model of a finished campaign), conflict
 *   (no workflow; the workflow refused), workflow_unavailable (Temporal unreachable), and what
 *   `deploy` throws (bad_request: no ONNX export, bad model.json).
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
  if (!campaignFinished(campaign)) {
    if (!campaign.workflow_id) throw conflict(`campaign ${campaignId} has no workflow`);
    if (!deps.workflows) throw new AppError("workflow_unavailable", "this server has no Temporal client configured");
    let result: unknown;
    try {
      result = await deps.workflows.approve(campaign.workflow_id, round, actor.id === null ? undefined : String(actor.id));
    } catch (err) {
      // Temporal answers "not found" for a closed workflow; only a row that now says finished
      // makes that the race above rather than a campaign whose workflow is missing.
      if (!(err instanceof AppError && err.code === "not_found")) wrapTemporal(err, `campaign ${campaignId}: approve failed`);
      campaign = await getCampaign(deps.pool, campaignId);
      if (!campaignFinished(campaign)) wrapTemporal(err, `campaign ${campaignId}: approve failed`);
    }
    if (result !== undefined) {
      const modelId = Number((result as { modelId?: unknown }).modelId);
      if (!Number.isInteger(modelId) || modelId <= 0) throw new AppError("internal", `campaign ${campaignId}: the workflow answered no model id`);
      await audit(modelId, "workflow");
      return { modelId, via: "workflow", result, deployment: await deploy(modelId) };
    }
  }
  const { rows } = await deps.pool.query<{ id: number }>("SELECT id FROM models WHERE campaign_id = $1 AND round = $2", [
    campaignId,
    round,
  ]);
  if (!rows[0]) throw notFound(`model of round ${round} of campaign`, campaignId);
  const modelId = rows[0].id;
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

/** Written by the workflow's activities as the campaign moves on. */
export async function setCampaignState(
  db: Queryable,
  campaignId: number,
  update: { state?: CampaignState; phase?: string | null; round?: number; reason?: string | null },
): Promise<Campaign> {
  const before = await getCampaign(db, campaignId);
  await db.query(
    `UPDATE campaigns SET state = COALESCE($2, state), phase = COALESCE($3, phase), round = COALESCE($4, round),
            updated_at = now() WHERE id = $1`,
    [campaignId, update.state ?? null, update.phase ?? null, update.round ?? null],
  );
  if (update.state && update.state !== before.state) {
    await appendAudit(db, {
      actorId: null,
      action: "campaign.state",
      entity: "campaign",
      entityId: campaignId,
      details: { from: before.state, to: update.state, reason: update.reason ?? null },
    });
  }
  return getCampaign(db, campaignId);
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
