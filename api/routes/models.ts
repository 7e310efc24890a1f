// Trained models and the files of their run folder (training curves, per-epoch previews,
// model.json, history.json), for the lab lead's campaign pages.
import path from "node:path";
import { z } from "zod";
import { AppError } from "../../services/errors.js";
import { getModel, listModels } from "../../services/models.js";
import { READERS, sendBytes } from "../present.js";
import { defineRoute } from "../route.js";
import { idParam, modelSchema } from "../schemas.js";

const CONTENT_TYPES: Record<string, string> = {
  ".png": "image/png",
  ".gif": "image/gif",
  ".json": "application/json",
  ".onnx": "application/octet-stream",
};

export const modelRoutes = [
  defineRoute({
    method: "get",
    path: "/models",
    operationId: "listModels",
    summary: "Trained models (of one campaign with campaign_id)",
    tag: "models",
    access: READERS,
    query: z.object({ campaign_id: z.coerce.number().int().positive().optional() }),
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
    responses: { 200: { description: "the file", contentType: "application/octet-stream" } },
    async handler({ deps, params, query, res }) {
      const model = await getModel(deps.pool, params.id);
      if (!model.uri.startsWith("blob://")) throw new AppError("not_found", `model ${model.id} is not in the blob store`);
      const name = (query as { name: string }).name;
      const folder = model.uri.endsWith("/") ? model.uri : `${model.uri}/`;
      const data = await deps.blobs.get(`${folder}${name}`);
      sendBytes(res, data, CONTENT_TYPES[path.extname(name)] ?? "application/octet-stream");
      return undefined;
    },
  }),
];
