// Live evaluation: what a doctor's correction says about the prediction it started from. The
// final mask is the reference; the prediction is scored against it with F1 (Dice) and clDice
// (Shit et al., "clDice - a novel topology-preserving loss function for tubular structure
// segmentation", CVPR 2021: the harmonic mean of the prediction's skeleton inside the reference
// and the reference's skeleton inside the prediction). Skeletons are Zhang–Suen thinning
// (services/correction/skeleton.ts), the method scikit-image's 2-D skeletonize uses in the
// engine's evaluation. Both masks empty scores 1; one empty scores 0.
import type { Queryable } from "../db/pool.js";
import { effortMinutes, type Action } from "./correction/effort.js";
import { thin } from "./correction/skeleton.js";

export interface Agreement {
  f1: number;
  /** null for images above CLDICE_MAX_PIXELS. */
  cldice: number | null;
}

/**
 * clDice is computed for images up to this many pixels. Thinning runs in the request on Node's one
 * thread: about 0.3 s for the worst mask of 999×960 (all foreground) on a 2-core machine, so at
 * this bound a submission never holds the API for more than about a second; larger images are
 * scored by F1 alone.
 */
export const CLDICE_MAX_PIXELS = 2_000_000;

/** F1 and clDice of `predicted` against `reference` (0/1 bytes of one size). */
export function agreement(predicted: Uint8Array, reference: Uint8Array, width: number, height: number): Agreement {
  if (predicted.length !== width * height || reference.length !== width * height) {
    throw new Error(`masks of ${predicted.length} and ${reference.length} pixels for ${width}×${height}`);
  }
  let tp = 0;
  let p = 0;
  let r = 0;
  for (let i = 0; i < predicted.length; i++) {
    const a = predicted[i] ? 1 : 0;
    const b = reference[i] ? 1 : 0;
    tp += a & b;
    p += a;
    r += b;
  }
  if (p === 0 && r === 0) return { f1: 1, cldice: 1 };
  const f1 = (2 * tp) / (p + r);
  if (p === 0 || r === 0) return { f1, cldice: 0 };
  if (width * height > CLDICE_MAX_PIXELS) return { f1, cldice: null };
  const sp = thin({ width, height, data: predicted });
  const sr = thin({ width, height, data: reference });
  const inside = (skeleton: Uint8Array, mask: Uint8Array) => {
    let n = 0;
    let hit = 0;
    for (let i = 0; i < skeleton.length; i++) {
      if (!skeleton[i]) continue;
      n++;
      if (mask[i]) hit++;
    }
    return n ? hit / n : 0;
  };
  const precision = inside(sp, reference);
  const sensitivity = inside(sr, predicted);
  const cldice = precision + sensitivity > 0 ? (2 * precision * sensitivity) / (precision + sensitivity) : 0;
  return { f1, cldice };
}

/** One model version's corrections: how good its predictions were, by the doctors' final masks. */
export interface LivePoint {
  model_id: number;
  round: number | null;
  corrections: number;
  f1_mean: number;
  /** Over the corrections that have a clDice (images up to CLDICE_MAX_PIXELS); null when none has. */
  cldice_mean: number | null;
  pixels_changed_mean: number;
  /** Action-level effort model minutes, over the corrections that carried their actions. */
  effort_minutes_mean: number | null;
  first_at: Date;
  last_at: Date;
}

/**
 * The live learning curve of a campaign: per model version whose predictions were corrected,
 * the mean agreement of those predictions with the final masks, oldest model first.
 */
export async function liveCurve(db: Queryable, campaignId: number): Promise<LivePoint[]> {
  const { rows } = await db.query<{
    model_id: number;
    round: number | null;
    corrections: number;
    f1_mean: number;
    cldice_mean: number;
    pixels_changed_mean: number;
    first_at: Date;
    last_at: Date;
    actions: Action[][] | null;
  }>(
    `SELECT p.model_id, min(p.round) AS round, count(*)::int AS corrections, avg(v.start_f1)::float8 AS f1_mean,
            avg(v.start_cldice)::float8 AS cldice_mean, avg(v.pixels_changed)::float8 AS pixels_changed_mean,
            min(v.submitted_at) AS first_at, max(v.submitted_at) AS last_at,
            jsonb_agg(v.actions) FILTER (WHERE v.actions IS NOT NULL) AS actions
       FROM annotation_versions v JOIN annotation_versions p ON p.id = v.parent_id
      WHERE v.kind = 'correction' AND v.campaign_id = $1 AND v.start_f1 IS NOT NULL AND p.model_id IS NOT NULL
      GROUP BY p.model_id ORDER BY p.model_id`,
    [campaignId],
  );
  return rows.map(({ actions, ...r }) => ({
    ...r,
    effort_minutes_mean: actions && actions.length ? actions.reduce((s, a) => s + effortMinutes(a), 0) / actions.length : null,
  }));
}

/** Two annotators' masks of one image compared (issue 14: agreement between annotators). */
export interface PairAgreement {
  a: { version_id: number; author_id: number | null };
  b: { version_id: number; author_id: number | null };
  /** Dice (= F1) and clDice of the two masks; both symmetric in a and b. */
  dice: number;
  cldice: number | null;
}

export interface ImageAgreement {
  image_id: number;
  /** Each annotator's latest human version (manual or correction), oldest author first. */
  versions: Array<{ version_id: number; author_id: number | null; kind: string }>;
  pairs: PairAgreement[];
  /** Means over the pairs (null with fewer than two annotators). */
  dice_mean: number | null;
  cldice_mean: number | null;
}

/**
 * Agreement between the doctors who annotated one image: each doctor's latest human version,
 * Dice and clDice for every pair. `loadBits` reads a version's 0/1 mask.
 */
export async function imageAgreement(
  db: Queryable,
  imageId: number,
  loadBits: (versionId: number) => Promise<{ width: number; height: number; bits: Uint8Array }>,
): Promise<ImageAgreement> {
  const { rows } = await db.query<{ version_id: number; author_id: number | null; kind: string }>(
    `SELECT DISTINCT ON (author_id) id AS version_id, author_id, kind FROM annotation_versions
      WHERE image_id = $1 AND kind IN ('manual', 'correction') ORDER BY author_id, id DESC`,
    [imageId],
  );
  const versions = [...rows].sort((x, y) => x.version_id - y.version_id);
  const masks = new Map<number, { width: number; height: number; bits: Uint8Array }>();
  for (const v of versions) masks.set(v.version_id, await loadBits(v.version_id));
  const pairs: PairAgreement[] = [];
  for (let i = 0; i < versions.length; i++) {
    for (let j = i + 1; j < versions.length; j++) {
      const a = versions[i]!;
      const b = versions[j]!;
      const ma = masks.get(a.version_id)!;
      const mb = masks.get(b.version_id)!;
      const { f1, cldice } = agreement(ma.bits, mb.bits, ma.width, ma.height);
      pairs.push({ a: { version_id: a.version_id, author_id: a.author_id }, b: { version_id: b.version_id, author_id: b.author_id }, dice: f1, cldice });
    }
  }
  const meanOf = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);
  return {
    image_id: imageId,
    versions,
    pairs,
    dice_mean: meanOf(pairs.map((p) => p.dice)),
    cldice_mean: meanOf(pairs.flatMap((p) => (p.cldice === null ? [] : [p.cldice]))),
  };
}
