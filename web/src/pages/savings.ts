// Time savings for auditors: minutes per image drawing from scratch against correcting a
// prediction (every image as a dot), the saving with its 95% interval, per doctor and per
// round, pixels changed, the editor actions (per image and per tool, priced by the action-level
// effort model), and the CSV the figures come from. Versions whose timing the server
// corrected (a doctor's clock was off: see AnnotationVersion.flags) are counted and marked,
// and can be left out. Read-only.

import { api, asList, type Query } from "../api/client.js";
import { stripPlot } from "../charts/svg.js";
import { fill, h } from "../ui/dom.js";
import { parseCsv } from "../ui/csv.js";
import type { DoctorSavings, RoundSavings, Savings } from "../api/types.js";
import type { Page } from "./page.js";

const m = (v: number | null | undefined, digits = 2) => (v === null || v === undefined ? "—" : v.toFixed(digits));

function summaryRow(label: string, s: Savings): HTMLTableRowElement {
  return h(
    "tr",
    {},
    h("td", {}, label),
    h("td", { class: "num" }, `${s.scratch.n}`),
    h("td", { class: "num" }, m(s.scratch.mean_minutes)),
    h("td", { class: "num" }, `${s.correction.n}`),
    h("td", { class: "num" }, m(s.correction.mean_minutes)),
    h("td", { class: "num" }, m(s.savings_minutes_per_image)),
    h("td", { class: "num" }, s.savings_ci95 ? `${m(s.savings_ci95.low)} … ${m(s.savings_ci95.high)}` : "—"),
    h("td", { class: "num" }, m(s.correction.mean_pixels_changed, 0)),
    h("td", { class: "num" }, m(s.correction.mean_actions, 1)),
    h("td", { class: "num" }, m(s.correction.mean_effort_minutes)),
    h("td", { class: "num" }, m(s.correction.mean_start_f1, 3)),
    h("td", {}, s.simulated ? "includes simulated" : "measured"),
    h("td", { class: "num" }, s.flagged_n > 0 ? `⚑ ${s.flagged_n}` : "—"),
  );
}

const HEAD = [
  "", "scratch n", "scratch min/img", "correction n", "correction min/img", "saved min/img", "95% CI", "pixels changed / correction",
  "actions / correction", "effort-model min / correction", "prediction F1 vs final (live)", "times", "corrected timings",
];

/** Actions and clicks per tool, scratch and correction side by side. */
function toolsTable(s: Savings): HTMLElement {
  const tools = [...new Set([...Object.keys(s.scratch.tools), ...Object.keys(s.correction.tools)])].sort();
  if (tools.length === 0) return h("p", { class: "muted" }, "No submission carried its editor actions yet.");
  const cell = (t: { actions: number; clicks: number } | undefined) => (t ? `${t.actions} (${t.clicks} clicks)` : "—");
  return h(
    "table",
    { class: "grid", "data-testid": "tools" },
    h("thead", {}, h("tr", {}, ["Tool", "from scratch: actions (clicks)", "corrections: actions (clicks)"].map((c) => h("th", {}, c)))),
    h("tbody", {}, tools.map((t) => h("tr", {}, h("td", {}, t), h("td", { class: "num" }, cell(s.scratch.tools[t])), h("td", { class: "num" }, cell(s.correction.tools[t]))))),
  );
}

/** What each flag means, for the marker's tooltip. */
const FLAG_TEXT: Record<string, string> = {
  active_ms_clamped: "active time was longer than the time between opening and submitting; clamped to it",
  ended_before_started: "the end time was before the start time; the start was set to the end",
  started_at_in_future: "the start time was in the future; set to the server's time",
  ended_at_in_future: "the end time was in the future; set to the server's time",
};

function flagMarker(flags: string): HTMLElement | string {
  const list = flags.split(";").filter(Boolean);
  if (list.length === 0) return "";
  return h(
    "span",
    { class: "badge flagged", title: `${list.map((f) => FLAG_TEXT[f] ?? f).join("; ")}. The times as sent are in the audit log.` },
    `⚑ ${list.join(", ")}`,
  );
}

export const savingsPage: Page = async (root) => {
  root.appendChild(h("h1", {}, "Time savings"));
  const simulated = h("select", { name: "simulated" }, ["include", "exclude", "only"].map((v) => h("option", { value: v }, `simulated times: ${v}`)));
  const flagged = h(
    "select",
    { name: "flagged", "data-testid": "flagged-filter" },
    ["include", "exclude", "only"].map((v) => h("option", { value: v }, `corrected timings: ${v}`)),
  );
  const body = h("div", {});
  const csvLink = h("a", { class: "button", "data-testid": "csv-link", download: "medloop-savings.csv" }, "Download CSV");
  root.append(h("div", { class: "toolbar" }, simulated, flagged, csvLink), body);

  // The download is the CSV this page already fetched (with the Authorization header), offered
  // through an object URL: the API takes no token in the URL of a non-image route.
  let csvUrl: string | null = null;
  async function render(): Promise<void> {
    const q: Query = { simulated: simulated.value, flagged: flagged.value };
    const [overall, doctors, rounds, csv] = await Promise.all([
      api.get<Savings>("/reports/savings", q),
      api.get<unknown>("/reports/doctors", q).then((b) => asList<DoctorSavings>(b)),
      api.get<unknown>("/reports/rounds", q).then((b) => asList<RoundSavings>(b)),
      api.get<string>("/reports/savings.csv", q),
    ]);
    if (csvUrl) URL.revokeObjectURL(csvUrl);
    csvUrl = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    csvLink.setAttribute("href", csvUrl);
    const rows = parseCsv(csv);
    const minutesOf = (kind: string) => rows.filter((r) => r.kind === kind).map((r) => Number(r.active_ms) / 60_000);
    fill(body, 
      h(
        "div",
        { class: "kpis" },
        kpi("from scratch, min per image", m(overall.scratch.mean_minutes), "kpi-scratch"),
        kpi("correcting, min per image", m(overall.correction.mean_minutes), "kpi-correction"),
        kpi("saved per image (min)", m(overall.savings_minutes_per_image), "kpi-saved"),
        kpi("saved (fraction)", overall.savings_fraction === null ? "—" : `${Math.round(overall.savings_fraction * 100)}%`),
        kpi("pixels changed per correction", m(overall.correction.mean_pixels_changed, 0)),
        kpi("actions per correction", m(overall.correction.mean_actions, 1), "kpi-actions"),
        kpi("effort-model min per correction", m(overall.correction.mean_effort_minutes), "kpi-effort"),
      ),
      overall.simulated ? h("p", { class: "muted" }, `Includes simulated times (${overall.scratch.simulated_n + overall.correction.simulated_n} masks); they are flagged in the CSV.`) : null,
      overall.flagged_n > 0
        ? h(
            "p",
            { class: "warning", "data-testid": "flagged-count" },
            `${overall.flagged_n} ${overall.flagged_n === 1 ? "mask has" : "masks have"} a corrected timing (⚑ below): the doctor's clock was off, ` +
              "so the server clamped the times it was sent. The times as sent are in the audit log.",
          )
        : null,
      h("h2", {}, "Minutes per image"),
      stripPlot(
        [
          { name: "from scratch", colour: "#d9480f", values: minutesOf("manual") },
          { name: "correction", colour: "#1a7f37", values: minutesOf("correction") },
        ],
        { unit: "minutes" },
      ),
      h("h2", {}, "Editor tools"),
      h(
        "p",
        { class: "muted" },
        "Actions recorded with the submissions, per tool. The effort-model minutes price them with the action-level model " +
          "(mental preparation, Fitts' law pointing, clicks, steering-law drags; docs/effort-model.md), beside the measured active time.",
      ),
      toolsTable(overall),
      h("h2", {}, "Per doctor"),
      table(doctors.map((d) => summaryRow(d.doctor_email, d))),
      h("h2", {}, "Per round"),
      table(rounds.map((r) => summaryRow(r.campaign_id === null ? "outside campaigns" : `campaign ${r.campaign_id}, round ${r.round}`, r))),
      h("h2", {}, "Masks"),
      h(
        "table",
        { class: "grid", "data-testid": "work-rows" },
        h(
          "thead",
          {},
          h("tr", {}, ["Version", "Kind", "Image", "Doctor", "Round", "Active", "Edits", "Pixels changed", "Actions", "Clicks", "Effort-model min", "Simulated", "Timing"].map((c) => h("th", {}, c))),
        ),
        h(
          "tbody",
          {},
          rows.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, r.version_id),
              h("td", {}, r.kind === "manual" ? "from scratch" : r.kind),
              h("td", {}, r.image_name),
              h("td", {}, r.author_email),
              h("td", {}, r.round || "—"),
              h("td", { class: "num", "data-testid": "active-ms" }, `${(Number(r.active_ms) / 1000).toFixed(1)} s`),
              h("td", { class: "num" }, r.edits),
              h("td", { class: "num" }, r.pixels_changed),
              h("td", { class: "num" }, r.action_count || "—"),
              h("td", { class: "num" }, r.clicks || "—"),
              h("td", { class: "num" }, r.effort_minutes ? Number(r.effort_minutes).toFixed(2) : "—"),
              h("td", {}, r.simulated === "true" ? "yes" : "no"),
              h("td", { "data-testid": "flags" }, flagMarker(r.flags ?? "")),
            ),
          ),
        ),
      ),
    );
  }

  const kpi = (label: string, value: string, testid?: string) =>
    h("div", { class: "kpi" }, h("div", { class: "v", "data-testid": testid }, value), h("div", { class: "l" }, label));
  const table = (rows: HTMLTableRowElement[]) =>
    rows.length
      ? h("table", { class: "grid" }, h("thead", {}, h("tr", {}, HEAD.map((c) => h("th", {}, c)))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "Nothing recorded yet.");

  simulated.addEventListener("change", () => void render());
  flagged.addEventListener("change", () => void render());
  await render();
  return () => {
    if (csvUrl) URL.revokeObjectURL(csvUrl);
  };
};
