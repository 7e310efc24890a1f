// Choosing the next K images to correct. `uncertainty` takes the images the model
// is least sure about; `random` is the control strategy, seeded so that a replayed
// or retried selection picks the same images.
import { ApplicationFailure } from "@temporalio/common";
import type { Strategy } from "../workflows/types.js";
import { mulberry32 } from "./random.js";

export interface Candidate {
  imageId: string;
  uncertainty: number | null;
}

export interface SelectInput {
  strategy: Strategy;
  k: number;
  seed: number;
  round: number;
  candidates: Candidate[];
}

function byId(a: Candidate, b: Candidate): number {
  return a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0;
}

function checkInput(input: SelectInput): void {
  if (input.strategy !== "uncertainty" && input.strategy !== "random") {
    throw ApplicationFailure.nonRetryable(`unknown strategy "${String(input.strategy)}" (uncertainty or random)`);
  }
  if (!Number.isInteger(input.k) || input.k < 1) throw ApplicationFailure.nonRetryable("k must be an integer >= 1");
  if (!Number.isInteger(input.seed)) throw ApplicationFailure.nonRetryable("seed must be an integer");
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
  const out = [...candidates].sort(byId); // independent of the order the candidates came in
  const random = mulberry32(Math.imul(seed, 0x9e3779b1) ^ round);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as Candidate, out[i] as Candidate];
  }
  return out;
}

export async function selectImages(input: SelectInput): Promise<{ imageIds: string[] }> {
  checkInput(input);
  const ordered =
    input.strategy === "uncertainty" ? byUncertainty(input.candidates) : shuffled(input.candidates, input.seed, input.round);
  return { imageIds: ordered.slice(0, input.k).map((c) => c.imageId) };
}

export const selectActivities = { selectImages };
export type SelectActivities = typeof selectActivities;
