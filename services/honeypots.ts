// Honeypots (issue 14): tasks on images that have a reference mask (a campaign's test images),
// mixed into doctors' queues without being marked. The accepted mask is scored against the
// reference (Dice and clDice, services/liveEvaluation.ts), so a lab lead and an auditor see each
// doctor's agreement with the references over time.
import type { Pool, Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { getVersion, loadVersionMask } from "./annotations.js";
import type { BlobStore } from "./blobs.js";
import { badRequest } from "./errors.js";
import { getImage } from "./images.js";
import { readMask } from "./ingest/decode.js";
import { agreement } from "./liveEvaluation.js";
import { getTask } from "./tasks.js";

export interface HoneypotScore {
  task_id: number;
  version_id: number;
  doctor_id: number;
  doctor_name: string;
  campaign_id: number | null;
  round: number | null;
  image_name: string;
  /** Dice (= F1) of the doctor's mask against the reference, 0–1. */
  dice: number;
  /** clDice (Shit et al., CVPR 2021); null for images above the clDice size limit. */
  cldice: number | null;
  scored_at: Date;
}

/**
 * Scores a honeypot task's accepted version against its image's reference mask; idempotent (a
 * retried activity keeps the first score). Errors (400): not a honeypot, no reference mask, a
 * version of another task.
 */
export async function scoreHoneypot(deps: { pool: Pool; blobs: BlobStore }, input: { taskId: number; versionId: number }): Promise<{ dice: number; cldice: number | null }> {
  const { rows: found } = await deps.pool.query<{ dice: number; cldice: number | null }>("SELECT dice, cldice FROM honeypot_scores WHERE task_id = $1", [input.taskId]);
  if (found[0]) return found[0];
  const task = await getTask(deps.pool, input.taskId);
  const { rows } = await deps.pool.query<{ honeypot: boolean }>("SELECT honeypot FROM tasks WHERE id = $1", [task.id]);
  if (!rows[0]?.honeypot) throw badRequest(`task ${task.id} is not a honeypot`);
  const version = await getVersion(deps.pool, input.versionId);
  if (version.task_id !== task.id || version.author_id === null) throw badRequest(`version ${version.id} was not submitted for task ${task.id}`);
  const image = await getImage(deps.pool, task.image_id);
  if (!image.mask_uri) throw badRequest(`image ${image.id} has no reference mask to score a honeypot against`);
  const reference = await readMask(await deps.blobs.get(image.mask_uri), `reference mask of image ${image.id}`, image);
  const mask = await loadVersionMask(deps.blobs, version);
  const score = agreement(mask.bits, reference.bits, mask.width, mask.height);
  await deps.pool.query(
    `INSERT INTO honeypot_scores (task_id, version_id, doctor_id, campaign_id, round, dice, cldice)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (task_id) DO NOTHING`,
    [task.id, version.id, version.author_id, task.campaign_id, task.round, score.f1, score.cldice],
  );
  await appendAudit(deps.pool, {
    actorId: null,
    action: "honeypot.score",
    entity: "task",
    entityId: task.id,
    details: { version_id: version.id, doctor_id: version.author_id, dice: score.f1, cldice: score.cldice },
  });
  return { dice: score.f1, cldice: score.cldice };
}

/** Honeypot scores, oldest first; narrowed to a campaign and/or a doctor. */
export async function honeypotScores(db: Queryable, filter: { campaignId?: number; doctorId?: number } = {}): Promise<HoneypotScore[]> {
  const { rows } = await db.query<HoneypotScore>(
    `SELECT h.task_id, h.version_id, h.doctor_id, u.name AS doctor_name, h.campaign_id, h.round, i.name AS image_name,
            h.dice, h.cldice, h.scored_at
       FROM honeypot_scores h JOIN users u ON u.id = h.doctor_id JOIN tasks t ON t.id = h.task_id JOIN images i ON i.id = t.image_id
      WHERE ($1::int IS NULL OR h.campaign_id = $1) AND ($2::int IS NULL OR h.doctor_id = $2)
      ORDER BY h.scored_at, h.task_id`,
    [filter.campaignId ?? null, filter.doctorId ?? null],
  );
  return rows;
}
