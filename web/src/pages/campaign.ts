// The live campaign view: phase and progress, the training curve drawn from the training
// activity's heartbeats (collected while this page polls), the latest per-epoch preview of an
// unseen image (GET /campaigns/:id/training-preview), F1 per round, open tasks per doctor,
// and pause / resume / stop / approve. Lab leads and auditors also see the campaign's quality
// figures (GET /reports/quality): agreement between annotators, STAPLE's per-annotator estimates,
// review outcomes and honeypot scores per doctor, with the CSV.

import { ApiError, api, apiUrl, asList, fetchBlob, getToken } from "../api/client.js";
import type { Campaign, LivePoint, QualityReport, Task, User } from "../api/types.js";
import { lineChart } from "../charts/svg.js";
import { fill, formatDuration, h, toast } from "../ui/dom.js";
import { hasRole } from "../session.js";
import type { Page } from "./page.js";

interface Heartbeat {
  epoch: number;
  epochs?: number;
  loss?: number;
  val_dice?: number;
  preview_uri?: string;
}

interface Activity {
  activityType: string;
  attempt: number;
  heartbeat: unknown;
  lastHeartbeatTime: string | null;
  lastFailure: string | null;
}

interface Status {
  round: number;
  phase: string;
  paused: boolean;
  stopRequested: boolean;
  k: number;
  strategy: string;
  progress: { done: number; total: number };
  rounds: Array<{ round: number; modelId?: string; metrics: Record<string, number>; approved?: boolean; corrected?: number; correctionActiveMs?: number; trainSeconds?: number | null }>;
  openTasks: Array<{ workflowId: string; imageId: string; kind: string }>;
  labelled: number;
  pool: number;
  test: number;
  finishedReason: string | null;
  workflowStatus?: string;
  activities?: Activity[];
  mode?: "rounds" | "continuous";
  continuous?: { modelVersion: number | null; pulled: number; labelBudget: number; pullable: number };
  trainer?: { training: boolean; pendingLabels: number; nextVersion: number; trainedOn: number } | null;
}

function kpi(label: string, value: string, testid?: string): HTMLElement {
  return h("div", { class: "kpi" }, h("div", { class: "v", "data-testid": testid }, value), h("div", { class: "l" }, label));
}

/** Continuous mode's figures: the newest model, the pulls against the budget, what the trainer does. */
function continuousKpis(status: Status | null): HTMLElement[] {
  const c = status?.continuous;
  if (status?.mode !== "continuous" || !c) return [];
  const t = status.trainer;
  const trainer = !t ? "—" : t.training ? `training v${t.nextVersion} (${t.pendingLabels} waiting)` : "waiting for labels";
  return [
    kpi("mode", "continuous", "campaign-mode"),
    kpi("newest model", c.modelVersion === null ? "training the first" : `v${c.modelVersion}`, "campaign-model-version"),
    kpi("pulled / budget", `${c.pulled} / ${c.labelBudget} (${c.pullable} pullable)`, "campaign-pulled"),
    kpi("trainer", trainer, "campaign-trainer"),
  ];
}

const POLL_MS = 2000;

const fixed3 = (v: number | null | undefined) => (v === null || v === undefined ? "—" : v.toFixed(3));

function smallTable(testid: string, head: string[], rows: Array<Array<string | number>>): HTMLElement {
  return h(
    "table",
    { class: "grid", "data-testid": testid },
    h("thead", {}, h("tr", {}, head.map((c, i) => h("th", { class: typeof rows[0]?.[i] === "number" || /^\d/.test(String(rows[0]?.[i])) ? "num" : "" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", { class: typeof c === "number" || /^\d/.test(String(c)) ? "num" : "" }, c))))),
  );
}

/** The quality figures of a campaign, small: agreement, STAPLE per annotator, reviews and honeypots per doctor. */
function qualityView(q: QualityReport): HTMLElement[] {
  const staple = q.consensus.flatMap((c) =>
    c.annotators.map((a) => [c.image_name, c.round, c.method, a.annotator_name, fixed3(a.sensitivity), fixed3(a.specificity)]),
  );
  return [
    h(
      "p",
      { "data-testid": "quality-agreement" },
      q.agreement.pairs > 0
        ? `Agreement between annotators of the same image: mean Dice ${fixed3(q.agreement.dice_mean)}, mean clDice ${fixed3(q.agreement.cldice_mean)} over ${q.agreement.pairs} pair${q.agreement.pairs === 1 ? "" : "s"}.`
        : "No image annotated by several doctors yet.",
    ),
    staple.length
      ? h("div", {}, h("h3", {}, "Consensus: each annotator against it"), smallTable("quality-staple", ["Image", "Round", "Method", "Annotator", "Sensitivity", "Specificity"], staple))
      : null,
    disagreementOverlays(q),
    h("h3", {}, "Reviews per doctor"),
    q.reviews.length
      ? smallTable(
          "quality-reviews",
          ["Doctor", "Accepted", "Returned", "Pending", "Review time"],
          q.reviews.map((r) => [r.doctor_name, r.accepted, r.returned, r.pending, formatDuration(r.review_active_ms)]),
        )
      : h("p", { class: "muted" }, "No review yet."),
    h("h3", {}, "Honeypots per doctor"),
    q.honeypots.by_doctor.length
      ? smallTable(
          "quality-honeypots",
          ["Doctor", "Honeypots", "Mean Dice", "Mean clDice", "Dice over time"],
          q.honeypots.by_doctor.map((d) => [
            d.doctor_name,
            d.honeypots,
            fixed3(d.dice_mean),
            fixed3(d.cldice_mean),
            // Over time: each honeypot's Dice, oldest first.
            q.honeypots.scores.filter((s) => s.doctor_id === d.doctor_id).map((s) => s.dice.toFixed(2)).join(" → "),
          ]),
        )
      : h("p", { class: "muted" }, "No honeypot scored yet."),
    honeypotChart(q),
  ].filter((e): e is HTMLElement => e !== null);
}

const DOCTOR_COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a"];

/** Each doctor's honeypot Dice against the references, in the order they were scored. */
function honeypotChart(q: QualityReport): HTMLElement | null {
  if (q.honeypots.scores.length < 2) return null;
  const series = q.honeypots.by_doctor.map((d, i) => ({
    name: d.doctor_name,
    colour: DOCTOR_COLOURS[i % DOCTOR_COLOURS.length] as string,
    points: q.honeypots.scores.filter((s) => s.doctor_id === d.doctor_id).map((s, n) => ({ x: n + 1, y: s.dice })),
  }));
  const legend = series.map((s) => h("span", { style: { color: s.colour, marginRight: "1em" } }, `● ${s.name}`));
  return h("div", { "data-testid": "quality-honeypot-chart" }, h("p", { class: "muted" }, "Honeypot Dice over time: ", ...legend), lineChart(series, { xLabel: "honeypot", yRange: [0, 1] }));
}

/** The first annotator pairs' disagreement over their image: green both, red only the first, blue only the second. */
function disagreementOverlays(q: QualityReport): HTMLElement | null {
  const pairs = q.consensus.flatMap((c) => c.pairs.map((p) => ({ c, p }))).slice(0, 6);
  if (pairs.length === 0) return null;
  const name = (c: QualityReport["consensus"][number], versionId: number) => c.annotators.find((a) => a.version_id === versionId)?.annotator_name ?? `version ${versionId}`;
  return h(
    "div",
    { "data-testid": "quality-overlays" },
    h("h3", {}, "Where annotators disagree"),
    h("p", { class: "muted" }, "Green: both drew it; red: only the first; blue: only the second."),
    h(
      "div",
      { class: "row" },
      pairs.map(({ c, p }) => {
        const img = h("img", { alt: `${c.image_name}: ${name(c, p.a_version_id)} against ${name(c, p.b_version_id)}`, style: { maxWidth: "240px" } });
        void fetchBlob(`/versions/${p.a_version_id}/overlay`, { against: p.b_version_id })
          .then((blob) => (img.src = URL.createObjectURL(blob)))
          .catch(() => img.replaceWith(h("span", { class: "muted" }, "no overlay")));
        return h("figure", {}, img, h("figcaption", {}, `${c.image_name}: ${name(c, p.a_version_id)} / ${name(c, p.b_version_id)}, Dice ${fixed3(p.dice)}`));
      }),
    ),
  );
}

function isHeartbeat(x: unknown): x is Heartbeat {
  return !!x && typeof x === "object" && typeof (x as Heartbeat).epoch === "number";
}

export const campaignPage: Page = async (root, [cid]) => {
  const campaignId = Number(cid);
  let campaign = await api.get<Campaign>(`/campaigns/${campaignId}`);
  const users = new Map<number, User>();
  try {
    for (const u of asList<User>(await api.get("/users"), "users")) users.set(u.id, u);
  } catch {
    /* not allowed to list users: doctors are shown by id */
  }
  // Training curves per round, keyed by epoch: heartbeats are sampled by polling, so an
  // epoch seen twice is recorded once and a missed one leaves a gap, not a wrong point.
  const curves = new Map<number, Map<number, Heartbeat>>();

  const title = h("h1", {}, `Campaign: ${campaign.name}`);
  const kpis = h("div", { class: "kpis", "data-testid": "campaign-kpis" });
  const controls = h("div", { class: "toolbar" });
  const training = h("div", { class: "card", "data-testid": "training" });
  const roundsBox = h("div", { class: "card", "data-testid": "rounds" });
  const tasksBox = h("div", { class: "card", "data-testid": "open-tasks" });
  const liveBox = h("div", { class: "card", "data-testid": "live-curve" });
  const qualityBox = hasRole("lab_lead", "auditor") ? h("div", { class: "card", "data-testid": "quality" }) : null;
  const errorLine = h("p", { class: "error", role: "alert" });
  root.append(
    h("p", {}, h("a", { href: `#/projects/${campaign.project_id}` }, "← Project"), " · ", h("a", { href: `#/campaigns/${campaignId}/evaluation` }, "Evaluation")),
    title,
    kpis,
    controls,
    errorLine,
    h("div", { class: "row" }, training, roundsBox),
    liveBox,
    tasksBox,
    ...(qualityBox ? [qualityBox] : []),
  );

  // The training preview is kept across polls and fetched again only when the heartbeat's
  // epoch changes; it needs the bearer token, so it is fetched as a blob and shown through
  // an object URL (revoked when replaced and when the page closes).
  const previewImg = h("img", { alt: "per-epoch preview of an unseen image", "data-testid": "training-preview-img" });
  const previewCaption = h("p", {});
  const previewBox = h("div", { class: "preview", "data-testid": "training-preview" }, previewCaption, previewImg);
  let previewKey = "";
  let previewUrl: string | null = null;
  function refreshPreview(round: number, hb: Heartbeat): void {
    const key = `${round}:${hb.epoch}`;
    if (key === previewKey) return;
    previewKey = key;
    fetchBlob(`/campaigns/${campaignId}/training-preview`)
      .then((blob) => {
        if (previewKey !== key) return; // a later epoch's fetch superseded this one
        if (previewUrl) URL.revokeObjectURL(previewUrl);
        previewUrl = URL.createObjectURL(blob);
        previewImg.src = previewUrl;
        previewCaption.textContent = `Prediction of an unseen image after epoch ${hb.epoch}/${hb.epochs ?? "?"}`;
      })
      .catch((err: Error) => {
        if (previewKey !== key) return;
        previewKey = ""; // try again at the next poll
        previewCaption.textContent = `Preview of epoch ${hb.epoch} not available: ${err.message}`;
      });
  }

  async function control(action: "pause" | "resume" | "stop" | "approve", body?: unknown): Promise<void> {
    try {
      await api.post(`/campaigns/${campaignId}/${action}`, body ?? {});
      toast(`Campaign: ${action} done.`, "ok");
      await poll();
    } catch (err) {
      toast(err instanceof ApiError ? err.message : String(err), "error");
    }
  }

  /** A finished campaign's workflow is closed; its models are approved from the rounds table. */
  const isFinished = (s: Status | null) =>
    ["completed", "stopped", "failed"].includes(campaign.state) || s?.phase === "completed" || s?.phase === "stopped";

  /** The rounds table's "Approved" cell: once finished, an unapproved model can still be approved and deployed. */
  function approvedCell(s: Status, r: Status["rounds"][number]): HTMLElement {
    if (r.approved || !isFinished(s) || !r.modelId) return h("td", {}, r.approved ? "yes" : "no");
    const button = h("button", { "data-testid": `approve-round-${r.round}`, onclick: () => void control("approve", { round: r.round }) }, "Approve and deploy");
    return h("td", {}, button);
  }

  function renderControls(s: Status | null): void {
    // A requested stop is final: the API refuses pause, resume and K changes from then on.
    const finished = isFinished(s) || campaign.state === "stopping" || Boolean(s?.stopRequested);
    const awaiting = s?.phase === "awaiting_approval";
    controls.replaceChildren(
      h("button", { disabled: finished || s?.paused, onclick: () => void control("pause") }, "Pause"),
      h("button", { disabled: finished || !s?.paused, onclick: () => void control("resume") }, "Resume"),
      h(
        "button",
        {
          class: "danger",
          disabled: finished || s?.stopRequested,
          onclick: () => {
            if (confirm("Stop this campaign? Open tasks are cancelled.")) void control("stop", { reason: "stopped from the UI" });
          },
        },
        "Stop",
      ),
      h("button", { class: awaiting ? "primary" : "", disabled: !awaiting, onclick: () => void control("approve", { round: s!.round }) }, `Approve round ${s?.round ?? ""} model`),
    );
  }

  function renderTraining(s: Status): void {
    const trainActivity = (s.activities ?? []).find((a) => a.activityType === "train_segmentation" && isHeartbeat(a.heartbeat));
    const hb = trainActivity?.heartbeat as Heartbeat | undefined;
    if (hb) {
      const m = curves.get(s.round) ?? new Map<number, Heartbeat>();
      m.set(hb.epoch, hb);
      curves.set(s.round, m);
    }
    const points = [...(curves.get(s.round)?.values() ?? [])].sort((a, b) => a.epoch - b.epoch);
    const activity = (s.activities ?? [])[0];
    fill(training, 
      h("h2", { style: { marginTop: 0 } }, `Training, round ${s.round}`),
      activity
        ? h(
            "p",
            { class: "muted", "data-testid": "activity" },
            `${activity.activityType}, attempt ${activity.attempt}${hb ? `: epoch ${hb.epoch}/${hb.epochs ?? "?"}` : ""}` +
              `${activity.lastHeartbeatTime ? ` · last heartbeat ${new Date(activity.lastHeartbeatTime).toLocaleTimeString()}` : ""}` +
              `${activity.lastFailure ? ` · last failure: ${activity.lastFailure}` : ""}`,
          )
        : h("p", { class: "muted" }, "No activity running."),
      points.length
        ? lineChart(
            [
              { name: "loss", colour: "#d9480f", points: points.filter((p) => p.loss !== undefined).map((p) => ({ x: p.epoch, y: p.loss! })) },
              { name: "val dice", colour: "#1f6feb", points: points.filter((p) => p.val_dice !== undefined).map((p) => ({ x: p.epoch, y: p.val_dice! })) },
            ],
            { xLabel: "epoch" },
          )
        : h("p", { class: "muted" }, "The curve appears with the first training heartbeat."),
      points.length ? h("p", { class: "legend" }, h("span", {}, h("i", { style: { background: "#d9480f" } }), "loss"), h("span", {}, h("i", { style: { background: "#1f6feb" } }), "validation Dice")) : null,
      hb?.preview_uri ? previewBox : null,
    );
    if (hb?.preview_uri) refreshPreview(s.round, hb);
  }

  /** A file of a round's model run folder (GET /models/:id/file), usable as an <img src>. */
  const modelFile = (modelId: string, name: string) => apiUrl(`/models/${modelId}/file`, { name, access_token: getToken() });

  // Kept across polls: re-rendering would reload the images every two seconds.
  let filesOf: { modelId: string; el: HTMLElement } | null = null;
  function modelFiles(s: Status): HTMLElement | null {
    const last = [...s.rounds].reverse().find((r) => r.modelId);
    if (!last?.modelId) return null;
    if (filesOf?.modelId === last.modelId) return filesOf.el;
    const img = (name: string, alt: string) => {
      const el = h("img", { src: modelFile(last.modelId!, name), alt, style: { maxWidth: "48%", marginRight: "2%" } });
      el.addEventListener("error", () => el.replaceWith(h("span", { class: "muted" }, `${alt}: not written by this run. `)));
      return el;
    };
    const el = h(
      "div",
      { class: "preview", "data-testid": "model-files" },
      h("h3", {}, `Round ${last.round} model: training curves and the per-epoch previews of an unseen image`),
      img("curves.png", "training curves"),
      img("previews.gif", "per-epoch previews"),
    );
    filesOf = { modelId: last.modelId, el };
    return el;
  }

  function renderRounds(s: Status): void {
    const f1 = s.rounds.filter((r) => typeof r.metrics.f1 === "number" || typeof r.metrics.test_f1 === "number");
    fill(roundsBox,
      h("h2", { style: { marginTop: 0 } }, "F1 per round"),
      f1.length
        ? lineChart([{ name: "F1", colour: "#1a7f37", points: f1.map((r) => ({ x: r.round, y: r.metrics.f1 ?? r.metrics.test_f1! })) }], { xLabel: "round", yRange: [0, 1] })
        : h("p", { class: "muted" }, "No round evaluated yet."),
      h(
        "table",
        { class: "grid", "data-testid": "rounds-table" },
        h("thead", {}, h("tr", {}, ["Round", "F1", "AUC", "Train", "Corrected", "Correction time", "Approved"].map((c) => h("th", {}, c)))),
        h(
          "tbody",
          {},
          s.rounds.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, r.round),
              h("td", { class: "num" }, (r.metrics.f1 ?? r.metrics.test_f1)?.toFixed(3) ?? "—"),
              h("td", { class: "num" }, (r.metrics.auc ?? r.metrics.test_auc)?.toFixed(3) ?? "—"),
              h("td", { class: "num" }, r.trainSeconds ? `${Math.round(r.trainSeconds)} s` : "—"),
              h("td", { class: "num" }, r.corrected ?? "—"),
              h("td", { class: "num" }, r.correctionActiveMs ? formatDuration(r.correctionActiveMs) : "—"),
              approvedCell(s, r),
            ),
          ),
        ),
      ),
      modelFiles(s),
    );
  }

  async function renderTasks(): Promise<void> {
    const tasks = asList<Task>(await api.get("/tasks", { campaign_id: campaignId }), "tasks");
    const open = tasks.filter((t) => t.state === "open" || t.state === "pending");
    const byDoctor = new Map<string, Task[]>();
    for (const t of open) {
      const who = t.assignee_id === null ? "unassigned" : (users.get(t.assignee_id)?.name ?? `doctor #${t.assignee_id}`);
      byDoctor.set(who, [...(byDoctor.get(who) ?? []), t]);
    }
    tasksBox.replaceChildren(
      h("h2", { style: { marginTop: 0 } }, `Open tasks (${open.length} of ${tasks.length})`),
      byDoctor.size
        ? h(
            "table",
            { class: "grid" },
            h("thead", {}, h("tr", {}, ["Doctor", "Open", "Tasks"].map((c) => h("th", {}, c)))),
            h(
              "tbody",
              {},
              [...byDoctor].map(([who, ts]) =>
                h("tr", {}, h("td", {}, who), h("td", { class: "num" }, ts.length), h("td", {}, ts.map((t) => `${t.image_name} (${t.kind}, round ${t.round ?? 0})`).join(", "))),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No open task."),
    );
  }

  /**
   * The live learning curve: every correction scores the prediction it started from against the
   * doctor's final mask, so each model version gets a point as soon as one of its predictions
   * is corrected, before any test-set evaluation.
   */
  async function renderLive(): Promise<void> {
    const points = asList<LivePoint>(await api.get(`/campaigns/${campaignId}/live`));
    fill(liveBox,
      h("h2", { style: { marginTop: 0 } }, "Live: each model's predictions against the doctors' corrected masks"),
      points.length
        ? lineChart(
            [
              { name: "F1", colour: "#1a7f37", points: points.map((p, i) => ({ x: p.round ?? i, y: p.f1_mean })) },
              { name: "clDice", colour: "#0969da", points: points.flatMap((p, i) => (p.cldice_mean === null ? [] : [{ x: p.round ?? i, y: p.cldice_mean }])) },
            ],
            { xLabel: "round of the model", yRange: [0, 1] },
          )
        : h("p", { class: "muted" }, "No prediction corrected yet."),
      points.length
        ? h(
            "table",
            { class: "grid" },
            h("thead", {}, h("tr", {}, ["Model", "Round", "Corrections", "F1", "clDice", "Pixels changed", "Effort-model min"].map((c) => h("th", {}, c)))),
            h(
              "tbody",
              {},
              points.map((p) =>
                h(
                  "tr",
                  {},
                  h("td", {}, p.model_id),
                  h("td", {}, p.round ?? "—"),
                  h("td", { class: "num" }, p.corrections),
                  h("td", { class: "num" }, p.f1_mean.toFixed(3)),
                  h("td", { class: "num" }, p.cldice_mean === null ? "—" : p.cldice_mean.toFixed(3)),
                  h("td", { class: "num" }, Math.round(p.pixels_changed_mean)),
                  h("td", { class: "num" }, p.effort_minutes_mean === null ? "—" : p.effort_minutes_mean.toFixed(2)),
                ),
              ),
            ),
          )
        : null,
    );
  }

  // The quality report is read on opening and on request (it is heavier than the live status).
  let qualityCsvUrl: string | null = null;
  async function renderQuality(): Promise<void> {
    if (!qualityBox) return;
    const q = { campaign_id: campaignId };
    const refresh = h("button", { onclick: () => void renderQuality() }, "Refresh");
    const heading = h("div", { class: "toolbar" }, h("h2", { style: { margin: 0 } }, "Quality"), refresh);
    try {
      const [report, csv] = await Promise.all([api.get<QualityReport>("/reports/quality", q), api.get<string>("/reports/quality.csv", q)]);
      if (qualityCsvUrl) URL.revokeObjectURL(qualityCsvUrl);
      qualityCsvUrl = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
      heading.append(h("a", { class: "button", href: qualityCsvUrl, download: `medloop-quality-campaign-${campaignId}.csv`, "data-testid": "quality-csv" }, "Download CSV"));
      fill(qualityBox, heading, ...qualityView(report));
    } catch (err) {
      fill(qualityBox, heading, h("p", { class: "error" }, `The quality report could not be loaded: ${(err as Error).message}`));
    }
  }

  async function poll(): Promise<void> {
    campaign = await api.get<Campaign>(`/campaigns/${campaignId}`);
    let status: Status | null = null;
    try {
      status = await api.get<Status>(`/campaigns/${campaignId}/status`);
      errorLine.textContent = "";
    } catch (err) {
      errorLine.textContent = `Live status unavailable: ${(err as Error).message}`;
    }
    fill(kpis,
      kpi("state", campaign.state, "campaign-state"),
      kpi("phase", status?.phase ?? campaign.phase ?? "—", "campaign-phase"),
      kpi("round", String(status?.round ?? campaign.round), "campaign-round"),
      kpi("progress", status ? `${status.progress.done}/${status.progress.total}` : "—", "campaign-progress"),
      kpi("labelled / pool / test", status ? `${status.labelled} / ${status.pool} / ${status.test}` : "—"),
      status?.mode === "continuous" ? kpi("strategy", status.strategy) : kpi("K · strategy", status ? `${status.k} · ${status.strategy}` : String(campaign.k)),
      ...continuousKpis(status),
      status?.workflowStatus ? kpi("workflow", status.workflowStatus.toLowerCase(), "workflow-status") : null,
    );
    // The stored state lags behind a workflow that failed: say so rather than show "running".
    if (status?.workflowStatus && !["RUNNING", "COMPLETED"].includes(status.workflowStatus)) {
      errorLine.textContent = `The campaign's workflow is ${status.workflowStatus.toLowerCase()}${status.finishedReason ? `: ${status.finishedReason}` : ""}.`;
    }
    renderControls(status);
    if (status) {
      renderTraining(status);
      renderRounds(status);
    }
    await renderLive();
    await renderTasks();
  }

  await poll();
  void renderQuality();
  let stopped = false;
  const loop = async (): Promise<void> => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (stopped || document.visibilityState === "hidden") continue;
      await poll().catch((err: Error) => (errorLine.textContent = err.message));
    }
  };
  void loop();
  return () => {
    stopped = true;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    if (qualityCsvUrl) URL.revokeObjectURL(qualityCsvUrl);
  };
};
