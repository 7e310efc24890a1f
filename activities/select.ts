// Choosing the next K images to correct. `uncertainty` takes the images the model
// is least sure about; `diverse` adds a diversity term so that near-duplicates are not picked
// together; `random` is the control strategy, seeded so that a replayed or retried selection
// picks the same images.
import { ApplicationFailure } from "@temporalio/common";
import type { Strategy } from "../workflows/types.js";
import { seededShuffle } from "./random.js";

export interface Candidate {
  imageId: string;
  uncertainty: number | null;
  /** What the model sees where (the probability map on an 8×8 grid); used by `diverse`. */
  embedding?: number[] | null;
}

/** Weight of the diversity term against the uncertainty term in `diverse` (both in [0, 1]). */
export const DIVERSITY_WEIGHT = 0.5;

/**
 * `coverage`: the cold start of a continuous campaign's first pulls, when the young model's
 * uncertainty says little: images that cover the pool (farthest-first), uncertainty unused.
 */
export type SelectStrategy = Strategy | "coverage";

export interface SelectInput {
  strategy: SelectStrategy;
  k: number;
  seed: number;
  round: number;
  candidates: Candidate[];
  /**
   * Images already taken but not yet labelled (a continuous campaign's open tasks): never
   * returned, but `diverse` keeps the new picks unlike them, as if they were the batch's first.
   */
  chosen?: Candidate[];
}

function byId(a: Candidate, b: Candidate): number {
  return a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0;
}

function checkInput(input: SelectInput): void {
  if (!["uncertainty", "diverse", "random", "coverage"].includes(input.strategy)) {
    throw ApplicationFailure.nonRetryable(`unknown strategy "${String(input.strategy)}" (uncertainty, diverse, random or coverage)`);
  }
  if (!Number.isInteger(input.k) || input.k < 1) throw ApplicationFailure.nonRetryable("k must be an integer >= 1");
  if (!Number.isInteger(input.seed)) throw ApplicationFailure.nonRetryable("seed must be an integer");
  if (input.chosen && !Array.isArray(input.chosen)) throw ApplicationFailure.nonRetryable("chosen must be a list of candidates");
  if (new Set(input.candidates.map((c) => c.imageId)).size !== input.candidates.length) {
    throw ApplicationFailure.nonRetryable("candidates contain a duplicate image id");
  }
}

/** Most uncertain first; images without a score last; ties by image id. */
function byUncertainty(candidates: Candidate[]): Candidate[] {
  return [...candidates].sort((a, b) => {
    const ua = a.uncertainty ?? Number.NEGATIVE_INFINITY;
    const ub = b.uncertainty ?? Number.NEGATIVE_INFINITY;
    return ua !== ub ? ub - ua : byId(a, b);
  });
}

/** A Fisher–Yates shuffle of the candidates in id order, seeded by (seed, round). */
function shuffled(candidates: Candidate[], seed: number, round: number): Candidate[] {
  // Sorted first: independent of the order the candidates came in.
  return seededShuffle([...candidates].sort(byId), Math.imul(seed, 0x9e3779b1) ^ round);
}

function distance(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - (b[i] ?? 0)) ** 2;
  return Math.sqrt(s);
}

/**
 * Uncertainty with a diversity term, greedily, in the manner of ranked batch-mode active learning
 * (Cardoso et al., "Ranked batch-mode active learning", Information Sciences 385, 2017): each next
 * image maximises
 *   w · (1 − max similarity to the images already in the batch) + (1 − w) · uncertainty / max uncertainty,
 * with w = DIVERSITY_WEIGHT and similarity 1 / (1 + d / d̄), d the Euclidean distance between the
 * images' embeddings and d̄ its mean over all pairs (so the term does not depend on their scale).
 * The first pick is the most uncertain image; a near-duplicate of a picked image scores its
 * uncertainty only, and an image as uncertain but unlike the batch comes first. Candidates
 * without an embedding (an engine that sends none) fall back to the uncertainty order.
 */
function diverseBatch(candidates: Candidate[], k: number, chosen: Candidate[] = []): Candidate[] {
  const ranked = byUncertainty(candidates); // the tie order: uncertainty, then id
  const hasEmbedding = (c: Candidate) => Array.isArray(c.embedding) && c.embedding.length > 0;
  const alreadyTaken = chosen.filter(hasEmbedding);
  if (!ranked.every(hasEmbedding) || ranked.length + alreadyTaken.length <= 1) return ranked;
  const all = [...ranked, ...alreadyTaken];
  let total = 0;
  let pairs = 0;
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      total += distance(all[i]!.embedding!, all[j]!.embedding!);
      pairs++;
    }
  }
  const scale = total / pairs || 1;
  const maxU = Math.max(...ranked.map((c) => c.uncertainty ?? 0)) || 1;
  const similarity = (a: Candidate, b: Candidate) => 1 / (1 + distance(a.embedding!, b.embedding!) / scale);
  // max similarity to the batch so far (the images already taken count as its first members)
  const closest = ranked.map((c) => Math.max(0, ...alreadyTaken.map((t) => similarity(c, t))));
  const taken = new Array<boolean>(ranked.length).fill(false);
  const batch: Candidate[] = [];
  while (batch.length < Math.min(k, ranked.length)) {
    let best = -1;
    let bestScore = -Infinity;
    for (let i = 0; i < ranked.length; i++) {
      if (taken[i]) continue;
      const score = DIVERSITY_WEIGHT * (1 - closest[i]!) + (1 - DIVERSITY_WEIGHT) * ((ranked[i]!.uncertainty ?? 0) / maxU);
      if (score > bestScore) [best, bestScore] = [i, score]; // strictly better: ties keep the ranked order
    }
    taken[best] = true;
    batch.push(ranked[best]!);
    for (let i = 0; i < ranked.length; i++) {
      if (taken[i]) continue;
      closest[i] = Math.max(closest[i]!, similarity(ranked[i]!, ranked[best]!));
    }
  }
  return batch;
}

/**
 * Farthest-first traversal (Gonzalez, "Clustering to minimize the maximum intercluster distance",
 * Theoretical Computer Science 38, 1985; the k-center greedy of Sener & Savarese's core-set
 * active learning, ICLR 2018) on the embeddings: each next image is the one farthest from the
 * images already taken (`chosen`) and picked. With nothing taken yet, the first is the most
 * typical image (closest to the mean embedding). Without embeddings: the uncertainty order.
 */
function coverageBatch(candidates: Candidate[], k: number, chosen: Candidate[] = []): Candidate[] {
  const hasEmbedding = (c: Candidate) => Array.isArray(c.embedding) && c.embedding.length > 0;
  const ordered = [...candidates].sort(byId);
  if (!ordered.every(hasEmbedding) || ordered.length === 0) return byUncertainty(candidates);
  const taken = chosen.filter(hasEmbedding).map((c) => c.embedding!);
  const nearest = ordered.map((c) => Math.min(Infinity, ...taken.map((t) => distance(c.embedding!, t))));
  const picked = new Array<boolean>(ordered.length).fill(false);
  const batch: Candidate[] = [];
  if (taken.length === 0) {
    const dims = ordered[0]!.embedding!.length;
    const mean = Array.from({ length: dims }, (_, d) => ordered.reduce((s, c) => s + (c.embedding![d] ?? 0), 0) / ordered.length);
    let first = 0;
    for (let i = 1; i < ordered.length; i++) if (distance(ordered[i]!.embedding!, mean) < distance(ordered[first]!.embedding!, mean)) first = i;
    picked[first] = true;
    batch.push(ordered[first]!);
    for (let i = 0; i < ordered.length; i++) nearest[i] = distance(ordered[i]!.embedding!, ordered[first]!.embedding!);
  }
  while (batch.length < Math.min(k, ordered.length)) {
    let best = -1;
    for (let i = 0; i < ordered.length; i++) if (!picked[i] && (best < 0 || nearest[i]! > nearest[best]!)) best = i;
    picked[best] = true;
    batch.push(ordered[best]!);
    for (let i = 0; i < ordered.length; i++) nearest[i] = Math.min(nearest[i]!, distance(ordered[i]!.embedding!, ordered[best]!.embedding!));
  }
  return batch;
}

export async function selectImages(input: SelectInput): Promise<{ imageIds: string[] }> {
  checkInput(input);
  const ordered =
    input.strategy === "uncertainty"
      ? byUncertainty(input.candidates)
      : input.strategy === "diverse"
        ? diverseBatch(input.candidates, input.k, input.chosen)
        : input.strategy === "coverage"
          ? coverageBatch(input.candidates, input.k, input.chosen)
          : shuffled(input.candidates, input.seed, input.round);
  return { imageIds: ordered.slice(0, input.k).map((c) => c.imageId) };
}

export const selectActivities = { selectImages };
export type SelectActivities = typeof selectActivities;
