// The quality figures of a campaign for the lab lead and the auditor (issue 14): each consensus
// with every annotator's STAPLE sensitivity and specificity and the annotators' pairwise Dice
// and clDice, the review outcomes per doctor, and the honeypot scores per doctor over time.
import type { Queryable } from "../db/pool.js";
import { getVersion, loadVersionMask } from "./annotations.js";
import type { BlobStore } from "./blobs.js";
import { campaignConsensus, type ConsensusMethod, type ConsensusSource } from "./consensus.js";
import { honeypotScores, type HoneypotScore } from "./honeypots.js";
import { agreement } from "./liveEvaluation.js";
import { csvCell } from "./reports.js";
import { reviewOutcomes, type ReviewOutcomeRow } from "./reviews.js";

export interface ConsensusQuality {
  consensus_id: number;
  image_id: number;
  image_name: string;
  round: number;
  method: ConsensusMethod;
  annotators: ConsensusSource[];
  /** Every pair of annotators: Dice (= F1) and clDice of their masks (null above the clDice size limit). */
  pairs: Array<{ a_version_id: number; b_version_id: number; dice: number; cldice: number | null }>;
}

export interface HoneypotDoctor {
  doctor_id: number;
  doctor_name: string;
  honeypots: number;
  dice_mean: number;
  cldice_mean: number | null;
}

export interface QualityReport {
  campaign_id: number;
  consensus: ConsensusQuality[];
  /** Mean pairwise Dice and clDice over all consensus images (null without any). */
  agreement: { dice_mean: number | null; cldice_mean: number | null; pairs: number };
  reviews: ReviewOutcomeRow[];
  honeypots: { scores: HoneypotScore[]; by_doctor: HoneypotDoctor[] };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);

export async function qualityReport(deps: { pool: Queryable; blobs: BlobStore }, campaignId: number): Promise<QualityReport> {
  const consensus: ConsensusQuality[] = [];
  for (const c of await campaignConsensus(deps.pool, campaignId)) {
    const masks = await Promise.all(c.sources.map(async (s) => loadVersionMask(deps.blobs, await getVersion(deps.pool, s.version_id))));
    const pairs: ConsensusQuality["pairs"] = [];
    for (let i = 0; i < masks.length; i++) {
      for (let j = i + 1; j < masks.length; j++) {
        const { f1, cldice } = agreement(masks[i]!.bits, masks[j]!.bits, masks[i]!.width, masks[i]!.height);
        pairs.push({ a_version_id: c.sources[i]!.version_id, b_version_id: c.sources[j]!.version_id, dice: f1, cldice });
      }
    }
    consensus.push({ consensus_id: c.consensus_id, image_id: c.image_id, image_name: c.image_name, round: c.round, method: c.method, annotators: c.sources, pairs });
  }
  const allPairs = consensus.flatMap((c) => c.pairs);
  const scores = await honeypotScores(deps.pool, { campaignId });
  const byDoctor = new Map<number, HoneypotScore[]>();
  for (const s of scores) byDoctor.set(s.doctor_id, [...(byDoctor.get(s.doctor_id) ?? []), s]);
  return {
    campaign_id: campaignId,
    consensus,
    agreement: {
      dice_mean: mean(allPairs.map((p) => p.dice)),
      cldice_mean: mean(allPairs.flatMap((p) => (p.cldice === null ? [] : [p.cldice]))),
      pairs: allPairs.length,
    },
    reviews: await reviewOutcomes(deps.pool, campaignId),
    honeypots: {
      scores,
      by_doctor: [...byDoctor.values()].map((list) => ({
        doctor_id: list[0]!.doctor_id,
        doctor_name: list[0]!.doctor_name,
        honeypots: list.length,
        dice_mean: mean(list.map((s) => s.dice)) as number,
        cldice_mean: mean(list.flatMap((s) => (s.cldice === null ? [] : [s.cldice]))),
      })),
    },
  };
}

/**
 * The report as CSV in long form, one figure per line: `section` (annotator, pair, review,
 * honeypot), `round`, `image`, `doctor`, `metric`, `value` (RFC 4180 quoting).
 */
export function qualityCsv(report: QualityReport): string {
  const lines = ["section,round,image,doctor,metric,value"];
  const line = (...cells: unknown[]) => lines.push(cells.map(csvCell).join(","));
  for (const c of report.consensus) {
    for (const a of c.annotators) {
      line("annotator", c.round, c.image_name, a.annotator_name, `${c.method}_sensitivity`, a.sensitivity);
      line("annotator", c.round, c.image_name, a.annotator_name, `${c.method}_specificity`, a.specificity);
    }
    const name = (versionId: number) => c.annotators.find((a) => a.version_id === versionId)?.annotator_name ?? String(versionId);
    for (const p of c.pairs) {
      const who = `${name(p.a_version_id)} / ${name(p.b_version_id)}`;
      line("pair", c.round, c.image_name, who, "dice", p.dice);
      line("pair", c.round, c.image_name, who, "cldice", p.cldice);
    }
  }
  for (const r of report.reviews) {
    line("review", null, null, r.doctor_name, "accepted", r.accepted);
    line("review", null, null, r.doctor_name, "returned", r.returned);
    line("review", null, null, r.doctor_name, "pending", r.pending);
    line("review", null, null, r.doctor_name, "review_active_ms", r.review_active_ms);
  }
  for (const s of report.honeypots.scores) {
    line("honeypot", s.round, s.image_name, s.doctor_name, "dice", s.dice);
    line("honeypot", s.round, s.image_name, s.doctor_name, "cldice", s.cldice);
  }
  return `${lines.join("\r\n")}\r\n`;
}
