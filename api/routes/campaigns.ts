import { z } from "zod";
import {
  approveCampaignRound,
  campaignConfigSchema,
  campaignStatus,
  controlCampaign,
  getCampaign,
  listCampaigns,
  listPullableCampaigns,
  listRounds,
  MAX_STOP_REASON,
  pullNextTask,
  startCampaign,
  type CampaignAction,
  type CampaignWorkflows,
} from "../../services/campaigns.js";
import { AppError } from "../../services/errors.js";
import { liveCurve } from "../../services/liveEvaluation.js";
import { loadTrainingPreview } from "../../services/training-preview.js";
import type { AppDeps } from "../deps.js";
import { READERS, STAFF } from "../present.js";
import { defineRoute } from "../route.js";
import { campaignSchema, campaignStatusSchema, countInput, idInput, idParam, idQuery, livePointSchema, pullableCampaignSchema, pulledTaskSchema, roundSchema } from "../schemas.js";
import { deployApproved, deploymentSchema } from "./deployments.js";

const unavailable = (): never => {
  throw new AppError("workflow_unavailable", "this server has no Temporal client configured");
};
/** Without a Temporal client every workflow call answers 503, after the input checks ran. */
const NO_TEMPORAL: CampaignWorkflows = {
  start: unavailable,
  pause: unavailable,
  resume: unavailable,
  stop: unavailable,
  approve: unavailable,
  setK: unavailable,
  status: unavailable,
  pull: unavailable,
  restartTask: unavailable,
};

function workflows(deps: AppDeps): CampaignWorkflows {
  return deps.campaigns ?? NO_TEMPORAL;
}

const controlAnswer = z
  .object({
    campaign: campaignSchema,
    result: z.unknown(),
    deployment: deploymentSchema.optional().meta({ description: "approve: the approved model's deployment" }),
  })
  .meta({ id: "CampaignControlResult" });

function controlRoute(action: "pause" | "resume" | "stop", summary: string, body?: z.ZodType) {
  return defineRoute({
    method: "post",
    path: `/campaigns/:id/${action}`,
    operationId: `${action}Campaign`,
    summary,
    tag: "campaigns",
    access: STAFF,
    params: idParam,
    ...(body ? { body: { kind: "json" as const, schema: body } } : {}),
    responses: {
      200: { description: "the workflow's answer", schema: controlAnswer },
      409: {
        description:
          "campaign finished or without workflow, a stop already requested (pause, resume), or the workflow refused (message names why)",
      },
      503: { description: "Temporal unreachable (a stop is then undone and audited as failed)" },
    },
    async handler({ deps, params, body: b, user }) {
      await getCampaign(deps.pool, params.id);
      const input = (b ?? {}) as { reason?: string };
      const result = await controlCampaign({ pool: deps.pool, workflows: workflows(deps) }, params.id, { action, ...input }, user!);
      return { campaign: await getCampaign(deps.pool, params.id), result };
    },
  });
}

/**
 * POST /campaigns/:id/approve {round}: approves the round's model and deploys it as the next
 * version of the campaign's deployment (services/campaigns.ts approveCampaignRound). A running
 * campaign approves through its workflow's Update; a finished one (completed, stopped, failed: its
 * workflow is closed) from the database, which is how the final round's model is approved.
 */
const approveRoute = defineRoute({
  method: "post",
  path: "/campaigns/:id/approve",
  operationId: "approveCampaign",
  summary: "Approve a round's model and deploy it (also once the campaign has completed)",
  tag: "campaigns",
  access: STAFF,
  params: idParam,
  body: { kind: "json", schema: z.object({ round: countInput }).meta({ id: "ApproveInput" }) },
  responses: {
    200: { description: "the workflow's answer (or the approval of a finished campaign) and the deployment", schema: controlAnswer },
    400: { description: "the model has no ONNX export or a bad model.json; nothing approved" },
    404: { description: "no such campaign, or a finished campaign has no model for that round" },
    409: { description: "a running campaign's round has no model yet, the workflow refused (already approved), or no workflow" },
    503: { description: "Temporal unreachable (a running campaign's approval must reach its workflow)" },
  },
  async handler({ deps, params, body, user }) {
    const { round } = body as { round: number };
    const approval = await approveCampaignRound({ pool: deps.pool, workflows: workflows(deps) }, params.id, round, user!, (modelId) =>
      deployApproved(deps, modelId, user!.id),
    );
    return { campaign: await getCampaign(deps.pool, params.id), result: approval.result, deployment: approval.deployment };
  },
});

/**
 * POST /campaigns/:id/pull: "Next image" — a doctor pulls the most useful unlabelled image of a
 * continuous campaign under its newest model and gets the correction task created for it
 * (services/campaigns.ts pullNextTask).
 */
const pullRoute = defineRoute({
  method: "post",
  path: "/campaigns/:id/pull",
  operationId: "pullNextImage",
  summary: "Next image: pull the most useful unlabelled image of a continuous campaign as a correction task",
  tag: "campaigns",
  access: ["doctor"],
  params: idParam,
  responses: {
    200: { description: "the task (a new one, or the doctor's pulled task still open)", schema: pulledTaskSchema },
    404: { description: "no such campaign" },
    409: {
      description: "not a continuous campaign, not running, paused, no model yet, or nothing left to pull (label budget or pool); the message names which",
    },
    503: { description: "Temporal unreachable, or the task not yet written (pull again to get it)" },
  },
  async handler({ deps, params, user }) {
    const pulled = await pullNextTask({ pool: deps.pool, workflows: workflows(deps) }, params.id, user!);
    return { task: pulled.task, image_id: pulled.imageId, model_version: pulled.modelVersion, existing: pulled.existing };
  },
});

export const campaignRoutes = [
  defineRoute({
    method: "get",
    path: "/campaigns/pullable",
    operationId: "listPullableCampaigns",
    summary: "Running continuous campaigns a doctor can pull images from (the inbox's Next image)",
    tag: "campaigns",
    access: ["doctor"],
    responses: { 200: { description: "campaigns", schema: z.array(pullableCampaignSchema) } },
    async handler({ deps }) {
      return listPullableCampaigns(deps.pool);
    },
  }),
  pullRoute,
  defineRoute({
    method: "get",
    path: "/campaigns",
    operationId: "listCampaigns",
    summary: "Campaigns",
    tag: "campaigns",
    access: READERS,
    query: z.object({ project_id: idQuery.optional() }),
    responses: { 200: { description: "campaigns", schema: z.array(campaignSchema) } },
    async handler({ deps, query }) {
      return listCampaigns(deps.pool, (query as { project_id?: number }).project_id);
    },
  }),
  defineRoute({
    method: "post",
    path: "/campaigns",
    operationId: "startCampaign",
    summary: "Create a campaign and start its workflow",
    tag: "campaigns",
    access: STAFF,
    status: 201,
    body: {
      kind: "json",
      schema: z
        .object({
          project_id: idInput,
          name: z.string().min(1).max(200),
          config: campaignConfigSchema.default({}).meta({ id: "CampaignConfig" }),
        })
        .meta({ id: "NewCampaign" }),
    },
    responses: {
      201: { description: "started", schema: campaignSchema },
      404: { description: "no project with this project_id" },
      503: { description: "Temporal unreachable; nothing stored" },
    },
    async handler({ deps, body, user }) {
      const b = body as { project_id: number; name: string; config: z.infer<typeof campaignConfigSchema> };
      const wf = workflows(deps);
      return startCampaign({ pool: deps.pool, workflows: wf }, { projectId: b.project_id, name: b.name, config: b.config }, user!.id);
    },
  }),
  defineRoute({
    method: "get",
    path: "/campaigns/:id",
    operationId: "getCampaign",
    summary: "A campaign's stored record",
    tag: "campaigns",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "the campaign", schema: campaignSchema } },
    async handler({ deps, params }) {
      return getCampaign(deps.pool, params.id);
    },
  }),
  defineRoute({
    method: "get",
    path: "/campaigns/:id/status",
    operationId: "getCampaignStatus",
    summary: "Live status from the workflow (round, phase, progress, metrics, open tasks)",
    tag: "campaigns",
    access: READERS,
    params: idParam,
    responses: {
      200: { description: "status", schema: campaignStatusSchema },
      409: { description: "the campaign has no workflow (recorded outside Temporal)" },
      503: { description: "Temporal unreachable" },
    },
    async handler({ deps, params }) {
      await getCampaign(deps.pool, params.id);
      return campaignStatus({ pool: deps.pool, workflows: workflows(deps) }, params.id);
    },
  }),
  defineRoute({
    method: "get",
    path: "/campaigns/:id/training-preview",
    operationId: "getCampaignTrainingPreview",
    summary: "The running training's latest per-epoch preview of an unseen image (PNG; header x-training-epoch)",
    tag: "campaigns",
    access: READERS,
    params: idParam,
    responses: {
      200: {
        description: "the preview PNG of the last heartbeat's epoch",
        contentType: "image/png",
        headers: { "x-training-epoch": "the epoch the preview shows" },
      },
      404: { description: "no training running, or no preview written yet" },
      409: { description: "the campaign has no workflow (recorded outside Temporal)" },
      503: { description: "Temporal unreachable" },
    },
    async handler({ deps, params, res }) {
      await getCampaign(deps.pool, params.id);
      const preview = await loadTrainingPreview({ pool: deps.pool, workflows: workflows(deps), blobs: deps.blobs }, params.id);
      // A new epoch overwrites nothing but the heartbeat moves on: never serve a cached one.
      res.setHeader("content-type", "image/png");
      res.setHeader("cache-control", "no-store");
      res.setHeader("x-training-epoch", String(preview.epoch));
      res.status(200).end(preview.png);
      return undefined;
    },
  }),
  controlRoute("pause", "Pause the campaign (running activities finish; nothing new starts)"),
  controlRoute("resume", "Resume a paused campaign"),
  controlRoute(
    "stop",
    "Stop the campaign (audited, and the row marked stopping, before the workflow is told)",
    z.object({ reason: z.string().max(MAX_STOP_REASON).optional() }).meta({ id: "StopInput" }),
  ),
  approveRoute,
  defineRoute({
    method: "patch",
    path: "/campaigns/:id",
    operationId: "updateCampaign",
    summary: "Change K (images corrected per round) from the next selection on",
    tag: "campaigns",
    access: STAFF,
    params: idParam,
    body: { kind: "json", schema: z.object({ k: z.int().min(1).max(1000) }).strict().meta({ id: "CampaignPatch" }) },
    responses: {
      200: { description: "the workflow's answer", schema: controlAnswer },
      409: { description: "campaign finished or without workflow, a stop requested, or the workflow refused (message names why)" },
      503: { description: "Temporal unreachable" },
    },
    async handler({ deps, params, body, user }) {
      await getCampaign(deps.pool, params.id);
      const action: CampaignAction = "set_k";
      const result = await controlCampaign(
        { pool: deps.pool, workflows: workflows(deps) },
        params.id,
        { action, k: (body as { k: number }).k },
        user!,
      );
      return { campaign: await getCampaign(deps.pool, params.id), result };
    },
  }),
  defineRoute({
    method: "get",
    path: "/campaigns/:id/rounds",
    operationId: "listCampaignRounds",
    summary: "Rounds with their model, metrics, selected images and task counts",
    tag: "campaigns",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "rounds", schema: z.array(roundSchema) } },
    async handler({ deps, params }) {
      return listRounds(deps.pool, params.id);
    },
  }),
  defineRoute({
    method: "get",
    path: "/campaigns/:id/live",
    operationId: "getCampaignLiveCurve",
    summary:
      "The live learning curve: per model version whose predictions doctors corrected, how good those predictions were " +
      "against the final masks (mean F1, clDice, pixels changed, effort-model minutes), oldest model first",
    tag: "campaigns",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "one point per model version", schema: z.array(livePointSchema) } },
    async handler({ deps, params }) {
      await getCampaign(deps.pool, params.id); // 404 for a campaign that does not exist
      return liveCurve(deps.pool, params.id);
    },
  }),
];
