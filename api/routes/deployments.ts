// Deployments of approved models (serving/registry.ts): list them, read a version's model card,
// and manage the API keys with which other systems call /v2/models/{name}/… and
// /v1/models/{name}/segment on this same server (serving/index.ts, mounted by api/app.ts).
import { z } from "zod";
import { joinUri } from "../../services/blobs.js";
import {
  createApiKey,
  deployModel,
  getDeploymentVersion,
  listApiKeys,
  listDeploymentVersions,
  revokeApiKey,
} from "../../serving/index.js";
import { DEPLOYMENT_NAME, type DeploymentVersion } from "../../serving/registry.js";
import type { AppDeps } from "../deps.js";
import { STAFF } from "../present.js";
import { defineRoute } from "../route.js";
import { idQuery } from "../schemas.js";

const ts = z.iso.datetime();

export const deploymentSchema = z
  .object({
    name: z.string(),
    version: z.int().positive(),
    model_id: z.int().positive(),
    status: z.enum(["active", "retired"]),
    onnx_sha256: z.string(),
    deployed_by: z.int().positive().nullable(),
    deployed_at: ts,
    card_uri: z.string().meta({ description: "where the model card is stored (blob URI)" }),
    card_url: z.string().meta({ description: "the model card through the API" }),
    infer_url: z.string().meta({ description: "KServe V2 infer endpoint of this version (API key)" }),
    segment_url: z.string().meta({ description: "image → mask endpoint of the deployment (API key)" }),
  })
  .meta({ id: "Deployment" });

const keySchema = z
  .object({
    id: z.int().positive(),
    deployment: z.string(),
    label: z.string(),
    prefix: z.string(),
    created_by: z.int().positive().nullable(),
    created_at: ts,
    revoked_at: ts.nullable(),
  })
  .meta({ id: "DeploymentKey" });

export function presentDeployment(v: DeploymentVersion) {
  const name = encodeURIComponent(v.name);
  return {
    name: v.name,
    version: v.version,
    model_id: v.model_id,
    status: v.status,
    onnx_sha256: v.onnx_sha256,
    deployed_by: v.deployed_by,
    deployed_at: v.deployed_at,
    card_uri: joinUri(v.artifact_uri, "model_card.json"),
    card_url: `/api/deployments/${name}/card?version=${v.version}`,
    infer_url: `/v2/models/${name}/versions/${v.version}/infer`,
    segment_url: `/v1/models/${name}/segment`,
  };
}

/** Approves and deploys a model (idempotent: an already deployed model gives back its version). */
export async function deployApproved(deps: AppDeps, modelId: number, approvedBy: number, name?: string) {
  return presentDeployment(await deployModel({ pool: deps.pool, blobs: deps.blobs }, modelId, approvedBy, name ? { name } : {}));
}

const nameParam = z.object({
  name: z.string().regex(DEPLOYMENT_NAME, "a deployment name: 1-63 of a-z 0-9 . _ - starting with a letter or digit"),
});

export const deploymentRoutes = [
  defineRoute({
    method: "get",
    path: "/deployments",
    operationId: "listDeployments",
    summary: "Every version of every deployment (of one with name)",
    tag: "deployments",
    access: STAFF,
    query: z.object({ name: z.string().regex(DEPLOYMENT_NAME).optional() }),
    responses: { 200: { description: "deployment versions", schema: z.array(deploymentSchema) } },
    async handler({ deps, query }) {
      return (await listDeploymentVersions(deps.pool, (query as { name?: string }).name)).map(presentDeployment);
    },
  }),
  defineRoute({
    method: "get",
    path: "/deployments/:name/card",
    operationId: "getDeploymentCard",
    summary: "The model card of a deployment's version (latest active without version); format=markdown for the text",
    tag: "deployments",
    access: STAFF,
    params: nameParam,
    query: z.object({
      version: idQuery.optional(),
      format: z.enum(["json", "markdown"]).default("json"),
    }),
    responses: {
      200: {
        description: "the model card (JSON, or text/markdown with format=markdown)",
        schema: z.record(z.string(), z.unknown()),
        otherContentTypes: ["text/markdown"],
      },
      404: { description: "unknown deployment or version" },
    },
    async handler({ deps, params, query, res }) {
      const q = query as { version?: number; format: "json" | "markdown" };
      const v = await getDeploymentVersion(deps.pool, params.name, q.version);
      if (q.format === "markdown") {
        res.type("text/markdown; charset=utf-8").send(v.card_markdown);
        return undefined;
      }
      return v.card;
    },
  }),
  defineRoute({
    method: "get",
    path: "/deployments/:name/keys",
    operationId: "listDeploymentKeys",
    summary: "API keys of a deployment (prefixes only; keys are never stored)",
    tag: "deployments",
    access: STAFF,
    params: nameParam,
    responses: { 200: { description: "keys", schema: z.array(keySchema) }, 404: { description: "unknown deployment" } },
    async handler({ deps, params }) {
      return listApiKeys(deps.pool, params.name);
    },
  }),
  defineRoute({
    method: "post",
    path: "/deployments/:name/keys",
    operationId: "createDeploymentKey",
    summary: "Create an API key for a deployment; the key is in this answer only",
    tag: "deployments",
    access: STAFF,
    status: 201,
    params: nameParam,
    body: { kind: "json", schema: z.object({ label: z.string().max(200).optional() }).strict().meta({ id: "NewDeploymentKey" }) },
    responses: {
      201: { description: "the key (shown once)", schema: keySchema.extend({ key: z.string() }).meta({ id: "CreatedDeploymentKey" }) },
      404: { description: "unknown deployment" },
    },
    async handler({ deps, params, body, user }) {
      return createApiKey(deps.pool, params.name, { label: (body as { label?: string }).label ?? "", createdBy: user!.id });
    },
  }),
  defineRoute({
    method: "delete",
    path: "/deployments/:name/keys/:id",
    operationId: "revokeDeploymentKey",
    summary: "Revoke an API key (takes effect within the key cache time, 5 s)",
    tag: "deployments",
    access: STAFF,
    status: 204,
    params: nameParam.extend({ id: idQuery }),
    responses: { 204: { description: "revoked" }, 404: { description: "unknown deployment or key" } },
    async handler({ deps, params, user, res }) {
      await revokeApiKey(deps.pool, params.name, params.id, user!.id);
      res.status(204).end();
      return undefined;
    },
  }),
];

