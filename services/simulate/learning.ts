// What a simulated campaign says about learning speed, from its timeline: when each answer was
// submitted (with the doctor-minutes the effort model gave it) and when each model version was
// published (with its test F1 and the labelled images it was trained on), plus the live
// evaluation of each version's predictions against the doctors' final masks. Pure functions;
// `medloop simulate` records the timeline and benchmarks/continuous_learning.ts aggregates runs.

/** One submitted answer, `atS` seconds after the campaign started. */
export interface AnswerEvent {
  atS: number;
  kind: "annotate" | "correct";
  /** Doctor-minutes by the action-level effort model. */
  minutes: number;
}

/** One model version as first seen published, `atS` seconds after the campaign started. */
export interface ModelEvent {
  version: number;
  atS: number;
  testF1: number | null;
  /** Labelled images the version was trained on (null: not recorded by the campaign). */
  labelledImages: number | null;
}

export interface LivePoint {
  version: number;
  corrections: number;
  /** Mean F1 of the version's predictions against the doctors' final masks. */
  f1: number;
}

/** Test F1 a model must reach (issue 13), and the live F1 that makes a pre-annotation "useful". */
export const TARGET_TEST_F1 = 0.8;
export const USEFUL_LIVE_F1 = 0.7;

export interface LearningFigures {
  /** Doctor-minutes (seeds included) submitted before the first version with test F1 ≥ 0.80 was published; null: never reached. */
  doctor_minutes_to_f1_080: number | null;
  wall_seconds_to_f1_080: number | null;
  labelled_images_at_f1_080: number | null;
  /** Labelled images behind the first version whose corrected predictions reached live F1 ≥ 0.70; null: none did. */
  first_useful_after_images: number | null;
  best_test_f1: number | null;
  doctor_minutes_total: number;
  wall_seconds_total: number;
  /** Per version: when, on how many labels, test F1, doctor-minutes so far, live F1 of its corrected predictions. */
  curve: Array<{
    version: number;
    at_s: number;
    labelled_images: number | null;
    test_f1: number | null;
    doctor_minutes: number;
    live_f1: number | null;
    live_corrections: number;
  }>;
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/** Doctor-minutes submitted up to `atS`. */
function minutesBy(answers: AnswerEvent[], atS: number): number {
  return answers.filter((a) => a.atS <= atS).reduce((s, a) => s + a.minutes, 0);
}

export function learningFigures(answers: AnswerEvent[], models: ModelEvent[], live: LivePoint[], endS: number): LearningFigures {
  const ordered = [...models].sort((a, b) => a.version - b.version);
  const reached = ordered.find((m) => m.testF1 !== null && m.testF1 >= TARGET_TEST_F1);
  const useful = ordered.find((m) => (live.find((l) => l.version === m.version)?.f1 ?? 0) >= USEFUL_LIVE_F1);
  const f1s = ordered.map((m) => m.testF1).filter((f): f is number => f !== null);
  return {
    doctor_minutes_to_f1_080: reached ? round2(minutesBy(answers, reached.atS)) : null,
    wall_seconds_to_f1_080: reached ? Math.round(reached.atS) : null,
    labelled_images_at_f1_080: reached?.labelledImages ?? null,
    first_useful_after_images: useful?.labelledImages ?? null,
    best_test_f1: f1s.length ? Math.max(...f1s) : null,
    doctor_minutes_total: round2(answers.reduce((s, a) => s + a.minutes, 0)),
    wall_seconds_total: Math.round(endS),
    curve: ordered.map((m) => {
      const point = live.find((l) => l.version === m.version);
      return {
        version: m.version,
        at_s: Math.round(m.atS),
        labelled_images: m.labelledImages,
        test_f1: m.testF1,
        doctor_minutes: round2(minutesBy(answers, m.atS)),
        live_f1: point ? Math.round(point.f1 * 1000) / 1000 : null,
        live_corrections: point?.corrections ?? 0,
      };
    }),
  };
}
