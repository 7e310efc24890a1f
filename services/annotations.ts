// Annotation versions: every mask anybody or anything produced for an image, with its parent,
// author, timing and the pixels it changed. Predictions are recorded here by the campaign's
// activities; human versions are written by services/tasks.ts on submission.
import type { Pool, Queryable } from "../db/pool.js";
import type { Action } from "./correction/effort.js";
import type { BlobStore } from "./blobs.js";
import { badRequest, notFound, uniqueViolation } from "./errors.js";
import { getImage, sha256 } from "./images.js";
import { decodeSamples, readMask } from "./ingest/decode.js";
import { pixelsChanged, type DecodedMask } from "./masks.js";

export type VersionKind = "manual" | "prediction" | "correction" | "consensus";

export interface AnnotationVersion {
  id: number;
  image_id: number;
  task_id: number | null;
  kind: VersionKind;
  author_id: number | null;
  model_id: number | null;
  campaign_id: number | null;
  round: number | null;
  parent_id: number | null;
  uri: string;
  prob_uri: string | null;
  uncertainty: number | null;
  width: number;
  height: number;
  foreground_pixels: number;
  pixels_changed: number;
  active_ms: number | null;
  started_at: Date | null;
  submitted_at: Date | null;
  edits: number | null;
  submission_id: string | null;
  mask_sha256: string;
  simulated: boolean;
  /**
   * What the server changed in the timing it was sent (VersionFlag), e.g. `active_ms_clamped`;
   * empty for a version stored as sent. The values as sent are in the submission's audit entry.
   */
  flags: string[];
  /** The editor actions sent with the submission (null: none recorded). */
  actions: Action[] | null;
  /** The start prediction scored against this version's mask (services/liveEvaluation.ts); null without one. */
  start_f1: number | null;
  start_cldice: number | null;
  created_at: Date;
}

/** Clock oddities the server corrects instead of refusing a doctor's mask (services/tasks.ts). */
export type VersionFlag = "active_ms_clamped" | "ended_before_started" | "started_at_in_future" | "ended_at_in_future";

export const VERSION_COLUMNS = `id, image_id, task_id, kind, author_id, model_id, campaign_id, round, parent_id, uri,
  prob_uri, uncertainty, width, height, foreground_pixels, pixels_changed, active_ms, started_at, submitted_at, edits,
  submission_id, mask_sha256, simulated, flags, actions, start_f1, start_cldice, created_at`;

export async function getVersion(db: Queryable, id: number): Promise<AnnotationVersion> {
  const { rows } = await db.query<AnnotationVersion>(`SELECT ${VERSION_COLUMNS} FROM annotation_versions WHERE id = $1`, [id]);
  if (!rows[0]) throw notFound("annotation version", id);
  return rows[0];
}

export async function listVersions(db: Queryable, imageId: number): Promise<AnnotationVersion[]> {
  const { rows } = await db.query<AnnotationVersion>(
    `SELECT ${VERSION_COLUMNS} FROM annotation_versions WHERE image_id = $1 ORDER BY id`,
    [imageId],
  );
  return rows;
}

/** Reads and decodes a stored version's mask. */
export async function loadVersionMask(blobs: BlobStore, version: AnnotationVersion): Promise<DecodedMask> {
  return readMask(await blobs.get(version.uri), `version ${version.id}`, { width: version.width, height: version.height });
}

/**
 * A stored probability map (a 16-bit grey PNG, as the engine writes it; an 8-bit one is scaled)
 * as unsigned 16-bit little-endian samples of the version's size. Throws when the stored file is
 * not the version's size (a corrupt store, never the client's doing).
 */
export async function probabilitySamples(png: Buffer, version: AnnotationVersion): Promise<Buffer> {
  const decoded = await decodeSamples(png, `probability map of version ${version.id}`);
  if (decoded.width !== version.width || decoded.height !== version.height) {
    throw new Error(`probability map of version ${version.id} is ${decoded.width}×${decoded.height}, the version ${version.width}×${version.height}`);
  }
  const scale = 65535 / decoded.maxval;
  const out = Buffer.alloc(decoded.width * decoded.height * 2);
  for (let i = 0; i < decoded.width * decoded.height; i++) {
    out.writeUInt16LE(Math.round(decoded.data[i * decoded.channels]! * scale), i * 2);
  }
  return out;
}

export interface PredictionInput {
  campaignId: number | null;
  round: number | null;
  modelId: number;
  imageId: number;
  /** Binary mask PNG written by the gpu worker (`blob://…`). */
  maskUri: string;
  probUri?: string | null;
  uncertainty?: number | null;
}

/**
 * Records a model's prediction for an image as an annotation version. Idempotent: a retried
 * activity gets the version recorded the first time (one prediction per image and model).
 */
export async function recordPrediction(deps: { pool: Pool; blobs: BlobStore }, input: PredictionInput): Promise<AnnotationVersion> {
  const existing = await deps.pool.query<AnnotationVersion>(
    `SELECT ${VERSION_COLUMNS} FROM annotation_versions WHERE kind = 'prediction' AND image_id = $1 AND model_id = $2`,
    [input.imageId, input.modelId],
  );
  if (existing.rows[0]) return existing.rows[0];
  const image = await getImage(deps.pool, input.imageId);
  const data = await deps.blobs.get(input.maskUri);
  const mask = await readMask(data, `prediction for image ${image.id}`, image);
  try {
    const { rows } = await deps.pool.query<AnnotationVersion>(
      `INSERT INTO annotation_versions (image_id, kind, model_id, campaign_id, round, uri, prob_uri, uncertainty,
                                        width, height, foreground_pixels, pixels_changed, mask_sha256, submitted_at)
       VALUES ($1, 'prediction', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now()) RETURNING ${VERSION_COLUMNS}`,
      [
        image.id, input.modelId, input.campaignId, input.round, input.maskUri, input.probUri ?? null,
        input.uncertainty ?? null, mask.width, mask.height, mask.foreground, pixelsChanged(mask, null), sha256(data),
      ],
    );
    return rows[0]!;
  } catch (err) {
    if (uniqueViolation(err)) return recordPrediction(deps, input); // a concurrent retry won the race
    throw err;
  }
}

/** Records several predictions; returns image id → version id. */
export async function recordPredictions(
  deps: { pool: Pool; blobs: BlobStore },
  input: Omit<PredictionInput, "imageId" | "maskUri" | "probUri" | "uncertainty"> & {
    items: Array<{ imageId: number; maskUri: string; probUri?: string | null; uncertainty?: number | null }>;
  },
): Promise<Record<number, number>> {
  if (input.items.length === 0) throw badRequest("no predictions to record");
  const out: Record<number, number> = {};
  for (const item of input.items) {
    const version = await recordPrediction(deps, { ...input, ...item });
    out[item.imageId] = version.id;
  }
  return out;
}
