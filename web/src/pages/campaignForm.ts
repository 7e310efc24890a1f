// The start-campaign form: K, strategy, rounds, target F1, approval, training budget and
// the augmentation pipeline as editable steps (the JSON format of docs/architecture.md),
// with the number of training examples it makes from the seed images.

import { ApiError, api, fetchBlob } from "../api/client.js";
import { decodeImage } from "../editor/png.js";
import { previewCrops } from "./augmentPreview.js";
import type { AugmentStep, Campaign, CampaignConfig } from "../api/types.js";
import { h } from "../ui/dom.js";

type Op = AugmentStep["op"];
/** A step as the form reads it; the API validates the fields per op. */
type FormStep = { op: Op } & Record<string, unknown>;

/** Editable fields per op, with their defaults (the published recipe's values). */
const OP_FIELDS: Record<Op, Array<{ key: string; label: string; value: string; kind: "list" | "number" | "size" }>> = {
  flip: [{ key: "modes", label: "modes", value: "none,h,v,hv", kind: "list" }],
  random_crop: [
    { key: "size", label: "size (h×w)", value: "448x448", kind: "size" },
    { key: "count", label: "count", value: "11", kind: "number" },
  ],
  rotate90: [{ key: "ks", label: "quarter turns", value: "0,1", kind: "list" }],
  intensity: [
    { key: "brightness", label: "brightness ±", value: "0.1", kind: "number" },
    { key: "contrast", label: "contrast ±", value: "0.1", kind: "number" },
    { key: "p", label: "p", value: "1", kind: "number" },
  ],
  elastic: [
    { key: "alpha", label: "alpha", value: "30", kind: "number" },
    { key: "sigma", label: "sigma", value: "6", kind: "number" },
    { key: "p", label: "p", value: "0.3", kind: "number" },
  ],
};

interface StepRow {
  op: Op;
  inputs: Record<string, HTMLInputElement>;
  el: HTMLElement;
}

function parseStep(row: StepRow): FormStep {
  const step: FormStep = { op: row.op };
  for (const f of OP_FIELDS[row.op]) {
    const raw = row.inputs[f.key]!.value.trim();
    if (f.kind === "number") step[f.key] = Number(raw);
    else if (f.kind === "size") step[f.key] = raw.split(/[x×, ]+/).map(Number);
    else step[f.key] = raw.split(/[, ]+/).filter(Boolean).map((v) => (/^-?\d+$/.test(v) ? Number(v) : v));
  }
  return step;
}

/** How many examples each seed image becomes (expanding steps multiply). */
export function multiplier(steps: FormStep[]): number {
  let m = 1;
  for (const s of steps) {
    if (s.op === "flip") m *= (s.modes as unknown[] | undefined)?.length ?? 1;
    else if (s.op === "random_crop") m *= Number(s.count ?? 1);
    else if (s.op === "rotate90") m *= (s.ks as unknown[] | undefined)?.length ?? 1;
  }
  return m;
}

/**
 * The line under the pipeline. `seeds` is null while the project's images are not known yet:
 * a count then would be a wrong "0 seeds → 0 examples" (the form is built before the image list
 * arrives).
 */
export function augmentSummary(multiplier: number, seeds: number | null): string {
  return seeds === null
    ? `Each seed image becomes ${multiplier} training examples.`
    : `Each seed image becomes ${multiplier} training examples: ${seeds} ${seeds === 1 ? "seed" : "seeds"} → ${seeds * multiplier} examples.`;
}

export interface SeedImages {
  count: number;
  /** The first seed image, for the crop preview. */
  firstId: number | null;
}

export interface CampaignForm {
  element: HTMLFormElement;
  /** Called whenever the project's image list is (re)loaded; the summary follows it. */
  setSeeds(seeds: SeedImages): void;
}

export function campaignForm(projectId: number, onStarted: (c: Campaign) => void): CampaignForm {
  let seedImages: SeedImages | null = null;
  const num = (name: string, value: string, attrs: Record<string, unknown> = {}) =>
    h("input", { type: "number", name, value, required: true, ...attrs });
  const name = h("input", { name: "name", required: true, value: `campaign ${new Date().toISOString().slice(0, 16).replace("T", " ")}` });
  const k = num("k", "2", { min: 1, max: 1000 });
  const strategy = h(
    "select",
    { name: "strategy", title: "uncertainty: the least certain images; diverse: uncertain and unlike each other; random: the control" },
    h("option", { value: "uncertainty" }, "uncertainty"),
    h("option", { value: "diverse" }, "uncertainty + diversity"),
    h("option", { value: "random" }, "random"),
  );
  const mode = h(
    "select",
    {
      name: "mode",
      title:
        "rounds: train, send K images out, wait for all of them, train again; continuous: the model retrains after every correction while doctors pull the next image",
    },
    h("option", { value: "rounds" }, "rounds"),
    h("option", { value: "continuous" }, "continuous (doctors pull the next image)"),
  );
  const labelBudget = h("input", { type: "number", name: "labelBudget", min: 1, placeholder: "the whole pool" });
  const coldStart = h("input", {
    type: "number",
    name: "coldStartPulls",
    min: 0,
    value: "0",
    title: "The first pulls choose images that cover the pool (unlike each other) instead of the young model's uncertainty",
  });
  // Quality control (issue 14): several annotators per seed, second corrections, consensus, review, honeypots.
  const annotators = num("annotatorsPerSeed", "1", { min: 1, max: 10 });
  const doubled = num("doubleCorrectionFraction", "0", { min: 0, max: 1, step: 0.05 });
  const consensus = h("select", { name: "consensus" }, h("option", { value: "staple" }, "STAPLE"), h("option", { value: "majority" }, "majority vote"));
  const review = h("input", { type: "checkbox", name: "review" });
  const honeypots = num("honeypotsPerRound", "0", { min: 0, max: 100 });
  const seed = num("seed", "1");
  const maxRounds = num("maxRounds", "3", { min: 1, max: 1000 });
  const targetF1 = num("targetF1", "0.8", { min: 0, max: 1, step: 0.01 });
  const approval = h("input", { type: "checkbox", name: "requireApproval" });
  // The engine takes one budget: minutes of training, or a number of epochs.
  const budget = h("select", { name: "budget" }, h("option", { value: "minutes" }, "minutes"), h("option", { value: "epochs" }, "epochs"));
  const minutes = num("minutes", "5", { min: 0.1, step: 0.1 });
  const epochs = num("epochs", "20", { min: 1 });
  const augSeed = num("augSeed", "7");
  const steps: StepRow[] = [];
  const stepsBox = h("div", { class: "steps" });
  const summary = h("p", { class: "muted", "data-testid": "augment-summary" });
  const error = h("p", { class: "error", role: "alert" });

  const updateSummary = (): void => {
    try {
      summary.textContent = augmentSummary(multiplier(steps.map(parseStep)), seedImages?.count ?? null);
    } catch {
      summary.textContent = "";
    }
  };

  const addStep = (op: Op, values: Record<string, string> = {}): void => {
    const inputs: Record<string, HTMLInputElement> = {};
    const row: StepRow = { op, inputs, el: h("div", { class: "step", "data-op": op }) };
    row.el.append(
      h("strong", { style: { minWidth: "7em" } }, op),
      ...OP_FIELDS[op].map((f) => {
        const input = h("input", { name: `${op}.${f.key}`, value: values[f.key] ?? f.value });
        input.addEventListener("input", updateSummary);
        inputs[f.key] = input;
        return h("label", {}, f.label, input);
      }),
      h("button", { type: "button", class: "link", onclick: () => move(row, -1) }, "↑"),
      h("button", { type: "button", class: "link", onclick: () => move(row, 1) }, "↓"),
      h("button", { type: "button", class: "link", onclick: () => remove(row) }, "remove"),
    );
    steps.push(row);
    stepsBox.appendChild(row.el);
    updateSummary();
  };
  const remove = (row: StepRow): void => {
    steps.splice(steps.indexOf(row), 1);
    row.el.remove();
    updateSummary();
  };
  const move = (row: StepRow, d: number): void => {
    const i = steps.indexOf(row);
    const j = i + d;
    if (j < 0 || j >= steps.length) return;
    steps.splice(i, 1);
    steps.splice(j, 0, row);
    stepsBox.replaceChildren(...steps.map((s) => s.el));
  };
  addStep("flip");
  addStep("random_crop");

  const previewBox = h("div", { class: "row", "data-testid": "augment-preview" });
  const showPreview = async (): Promise<void> => {
    const id = seedImages?.firstId ?? null;
    if (id === null) {
      previewBox.replaceChildren(h("p", { class: "muted" }, "Upload a seed image to preview its augmented crops."));
      return;
    }
    try {
      const image = await decodeImage(await fetchBlob(`/images/${id}/image`));
      const crops = previewCrops(image, steps.map(parseStep) as AugmentStep[], Number(augSeed.value));
      previewBox.replaceChildren(...crops, h("p", { class: "muted" }, "Drawn in the browser from the first seed image (elastic not shown); the worker draws its own examples."));
    } catch (err) {
      previewBox.replaceChildren(h("p", { class: "error" }, `No preview: ${(err as Error).message}`));
    }
  };
  const opSelect = h("select", {}, (Object.keys(OP_FIELDS) as Op[]).map((op) => h("option", { value: op }, op)));
  const button = h("button", { class: "primary", type: "submit", "data-testid": "start-campaign" }, "Start campaign");

  const element = h(
    "form",
    {
      class: "card",
      "data-testid": "campaign-form",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        error.textContent = "";
        const config: CampaignConfig = {
          k: Number(k.value),
          strategy: strategy.value as "uncertainty" | "diverse" | "random",
          seed: Number(seed.value),
          maxRounds: Number(maxRounds.value),
          targetF1: Number(targetF1.value),
          requireApproval: approval.checked,
          augmentation: { seed: Number(augSeed.value), steps: steps.map(parseStep) as AugmentStep[] },
          train: budget.value === "epochs" ? { epochs: Number(epochs.value) } : { minutes: Number(minutes.value) },
          mode: mode.value as "rounds" | "continuous",
          ...(mode.value === "continuous" && labelBudget.value ? { labelBudget: Number(labelBudget.value) } : {}),
          ...(mode.value === "continuous" && Number(coldStart.value) > 0 ? { coldStartPulls: Number(coldStart.value) } : {}),
          ...(Number(annotators.value) > 1 ? { annotatorsPerSeed: Number(annotators.value) } : {}),
          ...(Number(doubled.value) > 0 ? { doubleCorrectionFraction: Number(doubled.value) } : {}),
          ...(Number(annotators.value) > 1 || Number(doubled.value) > 0 ? { consensus: consensus.value as "staple" | "majority" } : {}),
          ...(review.checked ? { review: true } : {}),
          ...(Number(honeypots.value) > 0 ? { honeypotsPerRound: Number(honeypots.value) } : {}),
        };
        button.disabled = true;
        try {
          onStarted(await api.post<Campaign>("/campaigns", { project_id: projectId, name: name.value.trim(), config }));
        } catch (err) {
          error.textContent = err instanceof ApiError ? err.message : String(err);
        } finally {
          button.disabled = false;
        }
      },
    },
    h(
      "div",
      { class: "form-grid" },
      h("label", {}, "Name", name),
      h("label", {}, "Mode", mode),
      h("label", {}, "Images to pull at most (continuous)", labelBudget),
      h("label", {}, "Cold start: first pulls covering the pool (continuous)", coldStart),
      h("label", {}, "K (images corrected per round)", k),
      h("label", {}, "Selection strategy", strategy),
      h("label", {}, "Random seed", seed),
      h("label", {}, "Rounds at most", maxRounds),
      h("label", {}, "Stop at test F1", targetF1),
      h("label", {}, "Training budget", budget),
      h("label", {}, "Minutes (budget: minutes)", minutes),
      h("label", {}, "Epochs (budget: epochs)", epochs),
      h("label", { class: "check" }, approval, "Approve each model before its predictions go out"),
    ),
    h("h3", {}, "Quality control"),
    h(
      "div",
      { class: "form-grid" },
      h("label", {}, "Doctors per seed image (each a different doctor)", annotators),
      h("label", {}, "Fraction of corrections done twice (rounds)", doubled),
      h("label", {}, "Consensus of several masks", consensus),
      h("label", {}, "Honeypots per round: test images scored against their reference (rounds)", honeypots),
      h("label", { class: "check" }, review, "A reviewer accepts or returns every submitted mask (rounds)"),
    ),
    h("h3", {}, "Augmentation pipeline"),
    h("label", { class: "check" }, "Pipeline seed", augSeed),
    stepsBox,
    h(
      "p",
      {},
      opSelect,
      " ",
      h("button", { type: "button", onclick: () => addStep(opSelect.value as Op) }, "Add step"),
      " ",
      h("button", { type: "button", "data-testid": "preview-augment", onclick: () => void showPreview() }, "Preview crops"),
    ),
    summary,
    previewBox,
    button,
    error,
  );
  return {
    element,
    setSeeds(seeds: SeedImages): void {
      seedImages = seeds;
      updateSummary();
    },
  };
}
