// Trained models of a campaign: one per round, written by the campaign's activities.
import { stat } from "node:fs/promises";
import type { Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { joinUri, type BlobStore } from "./blobs.js";
import { badRequest, notFound } from "./errors.js";

export interface Model {
  id: number;
  campaign_id: number | null;
  round: number | null;
  run_id: string | null;
  /** The run folder (`train_segmentation`'s `model_uri`); read it through `modelFolderUri`. */
  uri: string;
  onnx_uri: string | null;
  dataset_uri: string | null;
  metrics: Record<string, unknown>;
  approved: boolean;
  approved_by: number | null;
  approved_at: Date | null;
  created_at: Date;
}

const COLUMNS = `id, campaign_id, round, run_id, uri, onnx_uri, dataset_uri, metrics, approved, approved_by, approved_at,
  created_at`;

export interface NewModel {
  campaignId: number | null;
  round: number | null;
  uri: string;
  onnxUri?: string | null;
  runId?: string | null;
  datasetUri?: string | null;
  metrics?: Record<string, unknown>;
}

/** Records a trained model; idempotent per campaign and round (a retried activity updates it). */
export async function recordModel(db: Queryable, input: NewModel): Promise<Model> {
  if (!input.uri) throw badRequest("a model needs its uri");
  const args = [
    input.campaignId, input.round, input.runId ?? null, input.uri, input.onnxUri ?? null, input.datasetUri ?? null,
    JSON.stringify(input.metrics ?? {}),
  ];
  const sql =
    input.campaignId !== null && input.round !== null
      ? `INSERT INTO models (campaign_id, round, run_id, uri, onnx_uri, dataset_uri, metrics) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (campaign_id, round) DO UPDATE SET run_id = EXCLUDED.run_id, uri = EXCLUDED.uri,
           onnx_uri = EXCLUDED.onnx_uri, dataset_uri = EXCLUDED.dataset_uri, metrics = EXCLUDED.metrics
         RETURNING ${COLUMNS}`
      : `INSERT INTO models (campaign_id, round, run_id, uri, onnx_uri, dataset_uri, metrics) VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING ${COLUMNS}`;
  const { rows } = await db.query<Model>(sql, args);
  const model = rows[0]!;
  await appendAudit(db, {
    actorId: null,
    action: "model.record",
    entity: "model",
    entityId: model.id,
    details: { campaign_id: input.campaignId, round: input.round, uri: input.uri },
  });
  return model;
}

export async function getModel(db: Queryable, id: number): Promise<Model> {
  const { rows } = await db.query<Model>(`SELECT ${COLUMNS} FROM models WHERE id = $1`, [id]);
  if (!rows[0]) throw notFound("model", id);
  return rows[0];
}

export async function listModels(db: Queryable, campaignId?: number): Promise<Model[]> {
  const { rows } =
    campaignId === undefined
      ? await db.query<Model>(`SELECT ${COLUMNS} FROM models ORDER BY id`)
      : await db.query<Model>(`SELECT ${COLUMNS} FROM models WHERE campaign_id = $1 ORDER BY round`, [campaignId]);
  return rows;
}

/** Marks a model approved by a user (idempotent). */
export async function approveModel(db: Queryable, modelId: number, approvedBy: number | null): Promise<Model> {
  const model = await getModel(db, modelId);
  if (model.approved) return model;
  const { rows } = await db.query<Model>(
    `UPDATE models SET approved = true, approved_by = $2, approved_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
    [modelId, approvedBy],
  );
  await appendAudit(db, { actorId: approvedBy, action: "model.approve", entity: "model", entityId: modelId });
  return rows[0]!;
}

/**
 * A model's run folder as a folder URI in normal form (trailing "/"), for `joinUri(folder,
 * "model.json")` and the like. `models.uri` names the folder `train_segmentation` wrote (its
 * `model_uri`, e.g. `blob://runs/3/round-2/model/`). Rows written before folder URIs were agreed
 * may lack the trailing "/" (they are still folders), and a URI naming a file inside the folder
 * (`…/best.pt`, as `init_model_uri` also accepts) stands for that folder.
 * @throws AppError bad_request when the URI is not a well-formed blob:// or file:/// URI.
 */
export async function modelFolderUri(blobs: BlobStore, uri: string): Promise<string> {
  if (!uri.endsWith("/") && (await stat(blobs.pathOf(uri)).catch(() => null))?.isFile()) {
    return joinUri(uri.slice(0, uri.lastIndexOf("/") + 1));
  }
  return joinUri(uri);
}
