// Trained models and the files of their run folder (training curves, per-epoch previews,
// model.json, history.json), for the lab lead's campaign pages.
import path from "node:path";
import { z } from "zod";
import { approveCampaignRound, campaignFinished, getCampaign } from "../../services/campaigns.js";
import { AppError } from "../../services/errors.js";
import { joinUri } from "../../services/blobs.js";
import { getModel, listModels, modelFolderUri, type Model } from "../../services/models.js";
import type { User } from "../../services/users.js";
import type { AppDeps } from "../deps.js";
import { READERS, STAFF, sendBytes } from "../present.js";
import { defineRoute } from "../route.js";
import { idParam, idQuery, modelSchema } from "../schemas.js";
import { deployApproved, deploymentSchema } from "./deployments.js";

const CONTENT_TYPES: Record<string, string> = {
  ".png": "image/png",
  ".gif": "image/gif",
  ".json": "application/json",
  ".onnx": "application/octet-stream",
};

/**
 * Approves and deploys a model. A model of a campaign whose workflow still runs is approved
 * through the workflow's approve Update (the workflow may be waiting for it); a model of a
 * finished campaign (its workflow closed) or one without a campaign is approved in the database by
 * deployModel alone (services/campaigns.ts approveCampaignRound says why). An already approved
 * model is not sent to the workflow again: deploying it gives back its version.
 */
async function approveAndDeploy(deps: AppDeps, model: Model, user: User, name?: string) {
  const deploy = (modelId: number) => deployApproved(deps, modelId, user.id, name);
  if (model.approved || model.campaign_id === null || model.round === null) return deploy(model.id);
  const campaign = await getCampaign(deps.pool, model.campaign_id);
  // A campaign row without a workflow (recorded outside Temporal) has no workflow to tell.
  if (!campaign.workflow_id && !campaignFinished(campaign)) return deploy(model.id);
  const approval = await approveCampaignRound({ pool: deps.pool, workflows: deps.campaigns }, campaign.id, model.round, user, deploy);
  return approval.deployment;
}

export const modelRoutes = [
  defineRoute({
    method: "get",
    path: "/models",
    operationId: "listModels",
    summary: "Trained models (of one campaign with campaign_id)",
    tag: "models",
    access: READERS,
    query: z.object({ campaign_id: idQuery.optional() }),
    responses: { 200: { description: "models", schema: z.array(modelSchema) } },
    async handler({ deps, query }) {
      return listModels(deps.pool, (query as { campaign_id?: number }).campaign_id);
    },
  }),
  defineRoute({
    method: "get",
    path: "/models/:id",
    operationId: "getModel",
    summary: "One model with its metrics and approval",
    tag: "models",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "the model", schema: modelSchema } },
    async handler({ deps, params }) {
      return getModel(deps.pool, params.id);
    },
  }),
  defineRoute({
    method: "get",
    path: "/models/:id/file",
    operationId: "getModelFile",
    summary: "A file of the model's run folder: curves.png, previews.gif, previews/epoch_NNN.png, model.json, history.json, model.onnx",
    tag: "models",
    access: READERS,
    params: idParam,
    query: z.object({
      name: z
        .string()
        .regex(/^(previews\/)?[A-Za-z0-9_.-]+\.(png|gif|json|onnx)$/, "a file of the run folder, e.g. curves.png or previews/epoch_003.png"),
    }),
    responses: {
      200: {
        description: "the file: image/png, image/gif, application/json, or application/octet-stream for model.onnx",
        contentType: "application/octet-stream",
        otherContentTypes: [...new Set(Object.values(CONTENT_TYPES))],
      },
    },
    async handler({ deps, params, query, res }) {
      const model = await getModel(deps.pool, params.id);
      if (!model.uri.startsWith("blob://")) throw new AppError("not_found", `model ${model.id} is not in the blob store`);
      const name = (query as { name: string }).name;
      const data = await deps.blobs.get(joinUri(await modelFolderUri(deps.blobs, model.uri), name));
      sendBytes(res, data, CONTENT_TYPES[path.extname(name)] ?? "application/octet-stream");
      return undefined;
    },
  }),
  defineRoute({
    method: "post",
    path: "/models/:id/approve",
    operationId: "approveModel",
    summary: "Approve a model and deploy it as the next version of its deployment (with its model card)",
    tag: "models",
    access: STAFF,
    params: idParam,
    body: {
      kind: "json",
      schema: z
        .object({ name: z.string().optional().meta({ description: "deployment name (default: the campaign's name as a slug)" }) })
        .strict()
        .meta({ id: "ApproveModelInput" }),
    },
    responses: {
      200: { description: "the model and its deployment", schema: z.object({ model: modelSchema, deployment: deploymentSchema }) },
      400: { description: "no ONNX export, bad model.json or bad name; nothing approved" },
      409: { description: "the campaign's running workflow refused the approval, or the campaign has no workflow" },
      503: { description: "the campaign's workflow is unreachable" },
    },
    async handler({ deps, params, body, user }) {
      const model = await getModel(deps.pool, params.id);
      const deployment = await approveAndDeploy(deps, model, user!, (body as { name?: string }).name);
      return { model: await getModel(deps.pool, model.id), deployment };
    },
  }),
];
