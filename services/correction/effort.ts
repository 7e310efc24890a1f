// The action-level effort model: what a correction costs a doctor, from the actions taken (tool,
// clicks, pointer travel, dragged path and its tolerance width), in the manner of the
// Keystroke-Level Model. It replaces the pixel-count model (services/simulate/timeModel.ts, kept
// for reading old figures), which charged a missed capillary like a thick blob and credited
// nothing to tools. docs/effort-model.md explains it and its calibration.
//
// Operators and their constants (sources in docs/effort-model.md):
// - M, mental preparation before each action: 1.35 s (Card, Moran & Newell, "The keystroke-level
//   model for user performance time with interactive systems", CACM 23(7), 1980).
// - BB, a button click (press and release): 0.2 s (same source: B = 0.1 s each).
// - P, pointing with the mouse, Fitts' law in the Shannon form MT = a + b log2(D/W + 1), with
//   a = −0.107 s and b = 0.223 s/bit for mouse pointing (MacKenzie, Sellen & Buxton, "A comparison
//   of input devices in elemental pointing and dragging tasks", CHI 1991), never below 0.
// - S, steering a drag along a path of length L within a tolerance W: T = k · L / W (the steering
//   law, Accot & Zhai, "Beyond Fitts' law: models for trajectory-based HCI tasks", CHI 1997).
//   k is the model's one calibrated constant: drawing the average CHASE_DB1 test image from
//   scratch with the manual tools costs the published 36 minutes
//   (benchmarks/correction_effort.ts prints the calibrated value and warns when this one differs).
// Distances and widths are in image pixels: the editor shows a 999×960 image at about 1:1.

export type ManualTool = "brush" | "eraser" | "polygon" | "polyline" | "fill";
export type AssistedTool = "trace" | "grow" | "remove" | "rethreshold";
export type ToolName = ManualTool | AssistedTool;
export const MANUAL_TOOLS: readonly ManualTool[] = ["brush", "eraser", "polygon", "polyline", "fill"];
export const ASSISTED_TOOLS: readonly AssistedTool[] = ["trace", "grow", "remove", "rethreshold"];

/**
 * The width, image pixels, a click has to land within with the click tools (polygon corners,
 * fill, grow, remove): Fitts' law's target width for them, the same in the editor and the
 * simulated doctor.
 */
export const CLICK_TARGET_PX = 4;

/** The most actions one submission carries; the editor keeps the first ones beyond it. */
export const MAX_ACTIONS = 20_000;
/** The longest duration one action records (a day), milliseconds; longer ones are clamped. */
export const MAX_ACTION_MS = 86_400_000;

/** One action of a doctor in the editor, as submitted and stored with the version. */
export interface Action {
  tool: ToolName;
  /** Button presses: a dragged stroke is one, a trace is one per point clicked. */
  clicks: number;
  /** Pointer travel in image pixels to reach the action's clicks (summed over them). */
  travel_px: number;
  /** Length in image pixels of the path dragged with the button down (strokes); 0 for clicks. */
  path_px: number;
  /** The width the action had to hit or stay within, image pixels (brush size, vessel width). */
  width_px: number;
  /** Measured duration in milliseconds (browser), absent for simulated actions. */
  ms?: number;
}

export interface EffortConstants {
  /** M: mental preparation per action, seconds. */
  mentalS: number;
  /** BB: one click (press + release), seconds. */
  clickS: number;
  /** Fitts' law intercept (s) and slope (s/bit), Shannon formulation. */
  fittsA: number;
  fittsB: number;
  /** Steering law slope k (seconds per unit of path length over width): the calibrated constant. */
  steeringK: number;
  /** The smallest tolerance width a hand can steer within, pixels (a 1-px vessel is drawn at 2). */
  minWidthPx: number;
}

/**
 * The constants. `steeringK` is the calibration result printed by
 * `npx tsx benchmarks/correction_effort.ts --predictions DIR` (mean scratch minutes on the 22
 * CHASE_DB1 test images, 1stHO masks, = 36).
 */
export const EFFORT_CONSTANTS: EffortConstants = {
  mentalS: 1.35,
  clickS: 0.2,
  fittsA: -0.107,
  fittsB: 0.223,
  steeringK: 0.338,
  minWidthPx: 2,
};

/** Seconds to point over distance `d` at a target of width `w` (Fitts, Shannon form). */
export function pointingSeconds(d: number, w: number, c: EffortConstants = EFFORT_CONSTANTS): number {
  if (d <= 0) return 0;
  const id = Math.log2(d / Math.max(w, c.minWidthPx) + 1);
  return Math.max(0, c.fittsA + c.fittsB * id);
}

/** Seconds to drag along `length` pixels within a tolerance of `width` pixels (steering law). */
export function steeringSeconds(length: number, width: number, c: EffortConstants = EFFORT_CONSTANTS): number {
  if (length <= 0) return 0;
  return (c.steeringK * length) / Math.max(width, c.minWidthPx);
}

/**
 * Modelled seconds of one action: M + one pointing movement and one click per click (the travel
 * split evenly between them) + steering along the dragged path.
 */
export function actionSeconds(a: Action, c: EffortConstants = EFFORT_CONSTANTS): number {
  const moves = Math.max(1, a.clicks);
  const pointing = moves * pointingSeconds(a.travel_px / moves, a.width_px, c);
  return c.mentalS + pointing + a.clicks * c.clickS + steeringSeconds(a.path_px, a.width_px, c);
}

/** Modelled minutes of a list of actions. */
export function effortMinutes(actions: readonly Action[], c: EffortConstants = EFFORT_CONSTANTS): number {
  let s = 0;
  for (const a of actions) s += actionSeconds(a, c);
  return s / 60;
}

/** Actions per tool and the clicks they took, for reports. */
export function summariseActions(actions: readonly Action[]): Record<string, { actions: number; clicks: number; path_px: number }> {
  const out: Record<string, { actions: number; clicks: number; path_px: number }> = {};
  for (const a of actions) {
    const t = (out[a.tool] ??= { actions: 0, clicks: 0, path_px: 0 });
    t.actions++;
    t.clicks += a.clicks;
    t.path_px += a.path_px;
  }
  return out;
}
