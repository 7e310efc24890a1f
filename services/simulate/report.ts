// The report of a simulated campaign (campaign-report.json): per round the model's F1
// and AUC on the test images and the simulated annotation time, from scratch against
// correcting. Every minute here is simulated: by the action-level effort model
// (services/correction/effort.ts, docs/effort-model.md), with the pixel-count model's minutes
// (services/simulate/timeModel.ts) beside them under `pixel_model`, labelled, for old figures.

/** One doctor's simulated answer to one task. */
export interface SimulatedAnswer {
  round: number;
  kind: "annotate" | "correct";
  imageName: string;
  pixelsChanged: number;
  /** Action-level model: drawing the image from scratch, and what the answer cost. */
  minutesScratch: number;
  minutesSpent: number;
  /** The simulated doctor's actions and clicks, and the F1 against the truth they reached. */
  actions?: number;
  clicks?: number;
  f1Reached?: number;
  /** The pixel-count model's minutes for the same answer (superseded; kept for comparison). */
  pixelModel?: { minutesScratch: number; minutesSpent: number };
}

export interface RoundMetrics {
  round: number;
  f1: number | null;
  auc: number | null;
}

export interface ReportRound {
  round: number;
  f1: number | null;
  auc: number | null;
  images_annotated: number;
  images_corrected: number;
  /** What the corrected images would have cost drawn from scratch. */
  simulated_minutes_scratch: number;
  simulated_minutes_correction: number;
  savings_minutes: number;
  savings_percent: number | null;
  /** Actions and clicks of the corrections (simulated doctor with the editor's tools). */
  correction_actions: number;
  correction_clicks: number;
  /** The same corrections by the superseded pixel-count model. */
  pixel_model: { simulated_minutes_scratch: number; simulated_minutes_correction: number };
}

export interface CampaignReport {
  simulated: true;
  time_model: string;
  campaign_id: string;
  strategy: string;
  k: number;
  rounds: ReportRound[];
  totals: {
    images_corrected: number;
    simulated_minutes_scratch: number;
    simulated_minutes_correction: number;
    savings_minutes: number;
    savings_percent: number | null;
    seed_minutes_scratch: number;
  };
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/**
 * Rows per round of the metrics. A round's corrections are those of the tasks the
 * round's model pre-annotated (the tasks carry that round number).
 */
export function buildRounds(metrics: RoundMetrics[], answers: SimulatedAnswer[]): ReportRound[] {
  const rounds = new Set([...metrics.map((m) => m.round), ...answers.map((a) => a.round)]);
  return [...rounds].sort((a, b) => a - b).map((round) => {
    const m = metrics.find((x) => x.round === round);
    const mine = answers.filter((a) => a.round === round);
    const corrected = mine.filter((a) => a.kind === "correct");
    const scratch = corrected.reduce((s, a) => s + a.minutesScratch, 0);
    const spent = corrected.reduce((s, a) => s + a.minutesSpent, 0);
    const sum = (f: (a: SimulatedAnswer) => number | undefined) => corrected.reduce((s, a) => s + (f(a) ?? 0), 0);
    return {
      round,
      f1: m?.f1 ?? null,
      auc: m?.auc ?? null,
      images_annotated: mine.filter((a) => a.kind === "annotate").length,
      images_corrected: corrected.length,
      simulated_minutes_scratch: round2(scratch),
      simulated_minutes_correction: round2(spent),
      savings_minutes: round2(scratch - spent),
      savings_percent: scratch > 0 ? round2((100 * (scratch - spent)) / scratch) : null,
      correction_actions: sum((a) => a.actions),
      correction_clicks: sum((a) => a.clicks),
      pixel_model: {
        simulated_minutes_scratch: round2(sum((a) => a.pixelModel?.minutesScratch)),
        simulated_minutes_correction: round2(sum((a) => a.pixelModel?.minutesSpent)),
      },
    };
  });
}

export function buildReport(
  campaignId: string,
  strategy: string,
  k: number,
  timeModel: string,
  metrics: RoundMetrics[],
  answers: SimulatedAnswer[],
): CampaignReport {
  const rounds = buildRounds(metrics, answers);
  const scratch = rounds.reduce((s, r) => s + r.simulated_minutes_scratch, 0);
  const spent = rounds.reduce((s, r) => s + r.simulated_minutes_correction, 0);
  const seeds = answers.filter((a) => a.kind === "annotate").reduce((s, a) => s + a.minutesSpent, 0);
  return {
    simulated: true,
    time_model: timeModel,
    campaign_id: campaignId,
    strategy,
    k,
    rounds,
    totals: {
      images_corrected: rounds.reduce((s, r) => s + r.images_corrected, 0),
      simulated_minutes_scratch: round2(scratch),
      simulated_minutes_correction: round2(spent),
      savings_minutes: round2(scratch - spent),
      savings_percent: scratch > 0 ? round2((100 * (scratch - spent)) / scratch) : null,
      seed_minutes_scratch: round2(seeds),
    },
  };
}

/** A round's F1/AUC on the test images (the evaluation's mean), whichever key it was stored under. */
export function roundMetric(metrics: Record<string, unknown>, name: "f1" | "auc"): number | null {
  for (const key of [name, `test_${name}`, `mean_${name}`]) {
    const v = metrics[key];
    if (typeof v === "number") return v;
  }
  const nested = metrics.test ?? metrics.mean;
  if (nested && typeof nested === "object") return roundMetric(nested as Record<string, unknown>, name);
  return null;
}
