// Auditor reports: time per image drawing from scratch (manual versions) against correcting
// a prediction (correction versions), overall, per doctor and per round, with Welch's 95%
// confidence interval for the saving. Times from the simulated doctors are counted apart and
// flagged, never passed off as measured. Versions whose timing the server had to correct (a
// clock oddity on the doctor's machine, see services/tasks.ts normaliseTiming) are counted and
// marked, and can be left out with `flagged: "exclude"`. Versions submitted with their editor
// actions are also priced by the action-level effort model (services/correction/effort.ts) and
// summarised per tool: how many actions and clicks an image took, and with which tools.
import type { Queryable } from "../db/pool.js";
import { effortMinutes, type Action } from "./correction/effort.js";
import { mean, median, sd, welchInterval } from "./stats.js";

export type SimulatedFilter = "include" | "exclude" | "only";

export interface ReportFilter {
  projectId?: number;
  campaignId?: number;
  simulated?: SimulatedFilter;
  /** Versions with a corrected timing (`flags` not empty): include (default), exclude or only. */
  flagged?: SimulatedFilter;
}

export interface WorkRow {
  version_id: number;
  kind: "manual" | "correction";
  image_id: number;
  image_name: string;
  project_id: number;
  campaign_id: number | null;
  round: number | null;
  task_id: number | null;
  author_id: number;
  author_email: string;
  active_ms: number;
  edits: number | null;
  pixels_changed: number;
  foreground_pixels: number;
  simulated: boolean;
  /** What the server corrected in the timing as sent (empty: stored as sent). */
  flags: string[];
  started_at: Date | null;
  submitted_at: Date | null;
  /** Editor actions sent with the submission (null: none recorded), their count and clicks. */
  actions: Action[] | null;
  action_count: number | null;
  clicks: number | null;
  /** The actions priced by the action-level effort model; null without actions. */
  effort_minutes: number | null;
  /** Live evaluation: the start prediction against this mask (services/liveEvaluation.ts). */
  start_f1: number | null;
  start_cldice: number | null;
}

function withEffort(row: Omit<WorkRow, "action_count" | "clicks" | "effort_minutes">): WorkRow {
  const a = row.actions;
  return {
    ...row,
    action_count: a ? a.length : null,
    clicks: a ? a.reduce((n, x) => n + x.clicks, 0) : null,
    effort_minutes: a ? Math.round(effortMinutes(a) * 1000) / 1000 : null,
  };
}

/** Every human annotation version with its timing (the raw data of all reports and the CSV). */
export async function workRows(db: Queryable, filter: ReportFilter = {}): Promise<WorkRow[]> {
  const where = ["v.kind IN ('manual', 'correction')", "v.active_ms IS NOT NULL"];
  const args: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    args.push(v);
    where.push(sql.replace("?", `$${args.length}`));
  };
  if (filter.projectId !== undefined) add("i.project_id = ?", filter.projectId);
  if (filter.campaignId !== undefined) add("v.campaign_id = ?", filter.campaignId);
  if (filter.simulated === "exclude") where.push("NOT v.simulated");
  if (filter.simulated === "only") where.push("v.simulated");
  if (filter.flagged === "exclude") where.push("v.flags = '{}'");
  if (filter.flagged === "only") where.push("v.flags <> '{}'");
  const { rows } = await db.query<Omit<WorkRow, "action_count" | "clicks" | "effort_minutes">>(
    `SELECT v.id AS version_id, v.kind, v.image_id, i.name AS image_name, i.project_id, v.campaign_id, v.round, v.task_id,
            v.author_id, u.email AS author_email, v.active_ms, v.edits, v.pixels_changed, v.foreground_pixels,
            v.simulated, v.flags, v.started_at, v.submitted_at, v.actions, v.start_f1, v.start_cldice
       FROM annotation_versions v JOIN images i ON i.id = v.image_id JOIN users u ON u.id = v.author_id
      WHERE ${where.join(" AND ")} ORDER BY v.id`,
    args,
  );
  return rows.map(withEffort);
}

export interface KindSummary {
  n: number;
  simulated_n: number;
  flagged_n: number;
  mean_minutes: number | null;
  sd_minutes: number | null;
  median_minutes: number | null;
  mean_pixels_changed: number | null;
  total_minutes: number;
  /** Versions with recorded actions, and their means (actions, clicks, effort-model minutes). */
  with_actions_n: number;
  mean_actions: number | null;
  mean_clicks: number | null;
  mean_effort_minutes: number | null;
  /** Per tool: actions and clicks summed over the versions with actions. */
  tools: Record<string, { actions: number; clicks: number }>;
  /** Live evaluation: the start predictions' mean F1 and clDice against the final masks. */
  mean_start_f1: number | null;
  mean_start_cldice: number | null;
}

export interface SavingsSummary {
  scratch: KindSummary;
  correction: KindSummary;
  /** Mean minutes per image saved by correcting instead of drawing (scratch − correction). */
  savings_minutes_per_image: number | null;
  /** Welch's t-based 95% interval of that difference; null with fewer than 2 images on a side. */
  savings_ci95: { low: number; high: number; df: number } | null;
  /** Saving as a fraction of the scratch time. */
  savings_fraction: number | null;
  /** True when any time in this summary came from the simulated doctors. */
  simulated: boolean;
  /** Versions in this summary whose timing the server corrected. */
  flagged_n: number;
  method: "welch_t";
}

const minutes = (ms: number) => ms / 60_000;

function summariseKind(rows: WorkRow[]): KindSummary {
  const times = rows.map((r) => minutes(r.active_ms));
  const recorded = rows.filter((r) => r.actions !== null);
  const tools: Record<string, { actions: number; clicks: number }> = {};
  for (const a of recorded.flatMap((r) => r.actions!)) {
    const t = (tools[a.tool] ??= { actions: 0, clicks: 0 });
    t.actions++;
    t.clicks += a.clicks;
  }
  const meanOf = (f: (r: WorkRow) => number | null) => (recorded.length ? mean(recorded.map((r) => f(r) ?? 0)) : null);
  const scored = rows.filter((r) => r.start_f1 !== null);
  return {
    n: rows.length,
    simulated_n: rows.filter((r) => r.simulated).length,
    flagged_n: rows.filter((r) => r.flags.length > 0).length,
    mean_minutes: times.length ? mean(times) : null,
    sd_minutes: times.length > 1 ? sd(times) : null,
    median_minutes: times.length ? median(times) : null,
    mean_pixels_changed: rows.length ? mean(rows.map((r) => r.pixels_changed)) : null,
    total_minutes: times.reduce((a, b) => a + b, 0),
    with_actions_n: recorded.length,
    mean_actions: meanOf((r) => r.action_count),
    mean_clicks: meanOf((r) => r.clicks),
    mean_effort_minutes: meanOf((r) => r.effort_minutes),
    tools,
    mean_start_f1: scored.length ? mean(scored.map((r) => r.start_f1!)) : null,
    mean_start_cldice: (() => {
      const c = scored.filter((r) => r.start_cldice !== null).map((r) => r.start_cldice!);
      return c.length ? mean(c) : null;
    })(),
  };
}

export function summarise(rows: WorkRow[]): SavingsSummary {
  const scratchRows = rows.filter((r) => r.kind === "manual");
  const correctionRows = rows.filter((r) => r.kind === "correction");
  const scratch = summariseKind(scratchRows);
  const correction = summariseKind(correctionRows);
  const saving = scratch.mean_minutes !== null && correction.mean_minutes !== null ? scratch.mean_minutes - correction.mean_minutes : null;
  const ci = welchInterval(
    scratchRows.map((r) => minutes(r.active_ms)),
    correctionRows.map((r) => minutes(r.active_ms)),
  );
  return {
    scratch,
    correction,
    savings_minutes_per_image: saving,
    savings_ci95: ci ? { low: ci.low, high: ci.high, df: ci.df } : null,
    savings_fraction: saving !== null && scratch.mean_minutes ? saving / scratch.mean_minutes : null,
    simulated: rows.some((r) => r.simulated),
    flagged_n: scratch.flagged_n + correction.flagged_n,
    method: "welch_t",
  };
}

export async function savingsReport(db: Queryable, filter: ReportFilter = {}): Promise<SavingsSummary> {
  return summarise(await workRows(db, filter));
}

export async function savingsByDoctor(
  db: Queryable,
  filter: ReportFilter = {},
): Promise<Array<{ doctor_id: number; doctor_email: string } & SavingsSummary>> {
  const rows = await workRows(db, filter);
  const ids = [...new Set(rows.map((r) => r.author_id))].sort((a, b) => a - b);
  return ids.map((id) => {
    const mine = rows.filter((r) => r.author_id === id);
    return { doctor_id: id, doctor_email: mine[0]!.author_email, ...summarise(mine) };
  });
}

export async function savingsByRound(
  db: Queryable,
  filter: ReportFilter = {},
): Promise<Array<{ campaign_id: number | null; round: number | null } & SavingsSummary>> {
  const rows = await workRows(db, filter);
  const key = (r: WorkRow) => `${r.campaign_id ?? ""}:${r.round ?? ""}`;
  const groups = new Map<string, WorkRow[]>();
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  return [...groups.values()]
    .map((g) => ({ campaign_id: g[0]!.campaign_id, round: g[0]!.round, ...summarise(g) }))
    .sort((a, b) => (a.campaign_id ?? -1) - (b.campaign_id ?? -1) || (a.round ?? -1) - (b.round ?? -1));
}

const CSV_COLUMNS: Array<keyof WorkRow> = [
  "version_id", "kind", "image_id", "image_name", "project_id", "campaign_id", "round", "task_id", "author_id",
  "author_email", "active_ms", "edits", "pixels_changed", "foreground_pixels", "simulated", "flags", "started_at",
  "submitted_at", "action_count", "clicks", "effort_minutes", "start_f1", "start_cldice",
];

/** One CSV cell (RFC 4180 quoting; a text a spreadsheet would run as a formula is defused). */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return "";
  // Flags as one cell, separated by ";" (none: empty).
  if (Array.isArray(v)) return csvCell(v.join(";"));
  let s = v instanceof Date ? v.toISOString() : String(v);
  // A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR) is prefixed with ' (OWASP,
  // "CSV Injection"); numbers are written as they are.
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One line per human annotation version (RFC 4180 quoting). */
export async function savingsCsv(db: Queryable, filter: ReportFilter = {}): Promise<string> {
  const rows = await workRows(db, filter);
  const lines = [CSV_COLUMNS.join(",")];
  for (const r of rows) lines.push(CSV_COLUMNS.map((c) => csvCell(r[c])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}
