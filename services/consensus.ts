// Consensus versions (issue 14): where several doctors annotated one image, the gpu activity
// `consensus_masks` (ml/src/medloop_ml/consensus.py: STAPLE, Warfield, Zou & Wells, IEEE TMI 2004,
// through SimpleITK; or majority vote) makes one mask of theirs, and it is stored here as an
// annotation version of kind `consensus`, with each annotator's estimated sensitivity and
// specificity. Training uses the consensus where one exists (workflows/campaignRun.ts).
import { withTransaction, type Pool, type Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { VERSION_COLUMNS, getVersion, type AnnotationVersion } from "./annotations.js";
import type { BlobStore } from "./blobs.js";
import { badRequest, uniqueViolation } from "./errors.js";
import { getImage, sha256 } from "./images.js";
import { readMask } from "./ingest/decode.js";
import { pixelsChanged } from "./masks.js";

export type ConsensusMethod = "staple" | "majority";

export interface ConsensusSourceInput {
  /** A doctor's submitted version of the image (manual or correction). */
  versionId: number;
  /** STAPLE's estimates for that doctor on this image (majority vote: against the consensus), 0–1; null: undefined (all masks empty). */
  sensitivity: number | null;
  specificity: number | null;
}

export interface ConsensusInput {
  campaignId: number;
  round: number;
  imageId: number;
  method: ConsensusMethod;
  /** The consensus mask and its probability map written by the gpu worker (`blob://…`). */
  maskUri: string;
  probUri: string | null;
  sources: ConsensusSourceInput[];
}

export interface ConsensusSource {
  version_id: number;
  annotator_id: number;
  annotator_name: string;
  sensitivity: number | null;
  specificity: number | null;
}

/**
 * Stores a consensus version and its sources in one transaction. Idempotent: a retried activity
 * gets the version recorded the first time (one consensus per image, campaign and round).
 * Errors (400): fewer than two sources, a source that is not a doctor's version of this image,
 * a figure outside 0–1, a mask of another size than the image.
 */
export async function recordConsensus(deps: { pool: Pool; blobs: BlobStore }, input: ConsensusInput): Promise<AnnotationVersion> {
  const existing = await findConsensus(deps.pool, input);
  if (existing) return existing;
  if (input.sources.length < 2) throw badRequest(`a consensus needs two annotators or more, got ${input.sources.length}`);
  const image = await getImage(deps.pool, input.imageId);
  const sources: Array<ConsensusSourceInput & { annotatorId: number }> = [];
  for (const s of input.sources) {
    const version = await getVersion(deps.pool, s.versionId);
    if (version.image_id !== image.id) throw badRequest(`version ${version.id} belongs to another image than ${image.id}`);
    if (version.author_id === null || !["manual", "correction"].includes(version.kind)) {
      throw badRequest(`version ${version.id} is not a doctor's mask (${version.kind})`);
    }
    for (const [name, value] of [["sensitivity", s.sensitivity], ["specificity", s.specificity]] as const) {
      if (value !== null && !(typeof value === "number" && value >= 0 && value <= 1)) {
        throw badRequest(`${name} of version ${version.id} must be within 0–1 or null, got ${String(value)}`);
      }
    }
    sources.push({ ...s, annotatorId: version.author_id });
  }
  const data = await deps.blobs.get(input.maskUri);
  const mask = await readMask(data, `consensus for image ${image.id}`, image);
  try {
    return await withTransaction(deps.pool, async (tx) => {
      const { rows } = await tx.query<AnnotationVersion>(
        `INSERT INTO annotation_versions (image_id, kind, campaign_id, round, uri, prob_uri, width, height,
                                          foreground_pixels, pixels_changed, mask_sha256, submitted_at, consensus_method)
         VALUES ($1, 'consensus', $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11) RETURNING ${VERSION_COLUMNS}`,
        [
          image.id, input.campaignId, input.round, input.maskUri, input.probUri, mask.width, mask.height,
          mask.foreground, pixelsChanged(mask, null), sha256(data), input.method,
        ],
      );
      const version = rows[0]!;
      for (const s of sources) {
        await tx.query(
          `INSERT INTO consensus_sources (consensus_id, version_id, annotator_id, sensitivity, specificity)
           VALUES ($1, $2, $3, $4, $5)`,
          [version.id, s.versionId, s.annotatorId, s.sensitivity, s.specificity],
        );
      }
      await appendAudit(tx, {
        actorId: null,
        action: "consensus.create",
        entity: "annotation_version",
        entityId: version.id,
        details: { image_id: image.id, campaign_id: input.campaignId, round: input.round, method: input.method, sources: input.sources },
      });
      return version;
    });
  } catch (err) {
    if (uniqueViolation(err)) return (await findConsensus(deps.pool, input))!; // a concurrent retry won the race
    throw err;
  }
}

async function findConsensus(db: Queryable, key: { imageId: number; campaignId: number; round: number }): Promise<AnnotationVersion | null> {
  const { rows } = await db.query<AnnotationVersion>(
    `SELECT ${VERSION_COLUMNS} FROM annotation_versions
      WHERE kind = 'consensus' AND image_id = $1 AND campaign_id = $2 AND round = $3`,
    [key.imageId, key.campaignId, key.round],
  );
  return rows[0] ?? null;
}

export interface CampaignConsensusRow {
  consensus_id: number;
  image_id: number;
  image_name: string;
  round: number;
  method: ConsensusMethod;
  sources: ConsensusSource[];
}

/** Every consensus of a campaign with its sources (the auditor's report), by round and image. */
export async function campaignConsensus(db: Queryable, campaignId: number): Promise<CampaignConsensusRow[]> {
  const { rows } = await db.query<Omit<CampaignConsensusRow, "sources">>(
    `SELECT v.id AS consensus_id, v.image_id, i.name AS image_name, v.round, v.consensus_method AS method
       FROM annotation_versions v JOIN images i ON i.id = v.image_id
      WHERE v.kind = 'consensus' AND v.campaign_id = $1 ORDER BY v.round, v.image_id`,
    [campaignId],
  );
  // Every source of the campaign's consensus versions in one query, grouped here.
  const sources = await db.query<ConsensusSource & { consensus_id: number }>(
    `SELECT s.consensus_id, s.version_id, s.annotator_id, u.name AS annotator_name, s.sensitivity, s.specificity
       FROM consensus_sources s JOIN users u ON u.id = s.annotator_id
      WHERE s.consensus_id = ANY($1::int[]) ORDER BY s.version_id`,
    [rows.map((r) => r.consensus_id)],
  );
  return rows.map((r) => ({
    ...r,
    sources: sources.rows.filter((s) => s.consensus_id === r.consensus_id).map(({ consensus_id: _c, ...source }) => source),
  }));
}
