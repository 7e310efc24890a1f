// Evaluation: metrics per round and per image (as the campaign's rounds recorded them),
// and an overlay viewer comparing two masks of one image with its reference mask: true
// positive, false positive and false negative pixels in three colours, side by side.

import { api, asList, fetchBlob } from "../api/client.js";
import type { Campaign, ImageRow } from "../api/types.js";
import { decodeImage, decodeMaskPng } from "../editor/png.js";
import type { Mask } from "../../../services/correction/raster.js";
import { h } from "../ui/dom.js";
import type { Page } from "./page.js";

interface Round {
  round: number;
  metrics: Record<string, unknown>;
  model: { id: number; metrics: Record<string, unknown> } | null;
}

interface Version {
  id: number;
  kind: string;
  round: number | null;
  campaign_id: number | null;
  model_id: number | null;
  created_at: string;
}

export const COLOURS = { tp: [46, 204, 64], fp: [255, 65, 54], fn: [255, 220, 0] } as const;

export interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export function confusion(pred: Mask, truth: Mask): Confusion {
  const c = { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (let i = 0; i < pred.data.length; i++) {
    const p = pred.data[i];
    const t = truth.data[i];
    if (p && t) c.tp++;
    else if (p) c.fp++;
    else if (t) c.fn++;
    else c.tn++;
  }
  return c;
}

const f1 = (c: Confusion) => (2 * c.tp) / Math.max(1, 2 * c.tp + c.fp + c.fn);

function overlayCanvas(image: ImageBitmap, pred: Mask, truth: Mask): HTMLCanvasElement {
  const canvas = h("canvas", { width: image.width, height: image.height });
  const ctx = canvas.getContext("2d")!;
  ctx.filter = "brightness(0.6)";
  ctx.drawImage(image, 0, 0);
  ctx.filter = "none";
  const img = ctx.getImageData(0, 0, image.width, image.height);
  const d = img.data;
  for (let i = 0; i < pred.data.length; i++) {
    const p = pred.data[i];
    const t = truth.data[i];
    const col = p && t ? COLOURS.tp : p ? COLOURS.fp : t ? COLOURS.fn : null;
    if (col) {
      d[i * 4] = col[0];
      d[i * 4 + 1] = col[1];
      d[i * 4 + 2] = col[2];
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function flatMetrics(m: Record<string, unknown>): Array<[string, number]> {
  return Object.entries(m).filter((e): e is [string, number] => typeof e[1] === "number");
}

function perImage(m: Record<string, unknown>): Array<Record<string, unknown>> {
  const p = m.per_image ?? (m.test as Record<string, unknown> | undefined)?.per_image;
  return Array.isArray(p) ? (p as Array<Record<string, unknown>>) : [];
}

export const evaluationPage: Page = async (root, [cid]) => {
  const campaignId = Number(cid);
  const campaign = await api.get<Campaign>(`/campaigns/${campaignId}`);
  const rounds = asList<Round>(await api.get(`/campaigns/${campaignId}/rounds`));
  root.append(h("p", {}, h("a", { href: `#/campaigns/${campaignId}` }, "← Campaign")), h("h1", {}, `Evaluation: ${campaign.name}`));

  // Metrics per round (the model's test metrics as recorded).
  const keys = [...new Set(rounds.flatMap((r) => flatMetrics({ ...(r.model?.metrics ?? {}), ...r.metrics }).map(([k]) => k)))];
  root.appendChild(h("h2", {}, "Metrics per round"));
  root.appendChild(
    rounds.length
      ? h(
          "table",
          { class: "grid", "data-testid": "round-metrics" },
          h("thead", {}, h("tr", {}, h("th", {}, "Round"), keys.map((k) => h("th", { class: "num" }, k)))),
          h(
            "tbody",
            {},
            rounds.map((r) => {
              const all = { ...(r.model?.metrics ?? {}), ...r.metrics };
              return h("tr", {}, h("td", {}, r.round), keys.map((k) => h("td", { class: "num" }, typeof all[k] === "number" ? (all[k] as number).toFixed(3) : "—")));
            }),
          ),
        )
      : h("p", { class: "muted" }, "No round recorded yet."),
  );

  // Metrics per image, when the rounds carry them.
  const imageRows: Array<Record<string, unknown>> = rounds.flatMap((r) =>
    perImage({ ...(r.model?.metrics ?? {}), ...r.metrics }).map((p) => ({ round: r.round, ...p })),
  );
  root.appendChild(h("h2", {}, "Metrics per image"));
  if (imageRows.length) {
    const cols = [...new Set(imageRows.flatMap((r) => Object.keys(r)))];
    root.appendChild(
      h(
        "table",
        { class: "grid", "data-testid": "image-metrics" },
        h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
        h("tbody", {}, imageRows.map((r) => h("tr", {}, cols.map((c) => h("td", { class: "num" }, typeof r[c] === "number" ? (r[c] as number).toFixed(3) : String(r[c] ?? "—")))))),
      ),
    );
  } else {
    root.appendChild(h("p", { class: "muted" }, "The rounds' records carry no per-image metrics; the overlay viewer below computes them for any image with a reference mask."));
  }

  // Overlay viewer.
  root.appendChild(h("h2", {}, "Overlay viewer"));
  root.appendChild(
    h(
      "p",
      { class: "legend" },
      h("span", {}, h("i", { style: { background: "rgb(46,204,64)" } }), "true positive"),
      h("span", {}, h("i", { style: { background: "rgb(255,65,54)" } }), "false positive"),
      h("span", {}, h("i", { style: { background: "rgb(255,220,0)" } }), "false negative"),
    ),
  );
  const images = asList<ImageRow>(await api.get(`/projects/${campaign.project_id}/images`)).filter((i) => i.has_mask);
  const imageSelect = h("select", { "data-testid": "eval-image" }, images.map((i) => h("option", { value: i.id }, `${i.name} (${i.role})`)));
  const leftSelect = h("select", { "data-testid": "eval-left" });
  const rightSelect = h("select", { "data-testid": "eval-right" });
  const view = h("div", { class: "side-by-side", "data-testid": "overlays" });
  root.append(h("div", { class: "toolbar" }, h("label", { class: "check" }, "Image", imageSelect), h("label", { class: "check" }, "Left", leftSelect), h("label", { class: "check" }, "Right", rightSelect)), view);
  if (!images.length) {
    view.replaceChildren(h("p", { class: "muted" }, "No image of this project has a reference mask."));
    return;
  }

  let cache: { imageId: number; image: ImageBitmap; truth: Mask } | null = null;
  const masks = new Map<number, Mask>();

  async function loadVersions(): Promise<void> {
    const imageId = Number(imageSelect.value);
    const versions = asList<Version>(await api.get(`/images/${imageId}/versions`)).filter((v) => v.campaign_id === null || v.campaign_id === campaignId);
    if (Number(imageSelect.value) !== imageId) return; // another image was chosen meanwhile; its load fills the lists
    const label = (v: Version) => `${v.kind}${v.round !== null ? `, round ${v.round}` : ""} (#${v.id})`;
    for (const sel of [leftSelect, rightSelect]) sel.replaceChildren(...versions.map((v) => h("option", { value: v.id }, label(v))));
    const preds = versions.filter((v) => v.kind === "prediction");
    if (preds.length) {
      leftSelect.value = String(preds[0]!.id);
      rightSelect.value = String(preds[preds.length - 1]!.id);
    }
    await show();
  }

  async function maskOf(versionId: number, w: number, hgt: number): Promise<Mask> {
    if (!masks.has(versionId)) masks.set(versionId, await decodeMaskPng(await fetchBlob(`/versions/${versionId}/mask`), w, hgt));
    return masks.get(versionId)!;
  }

  // Each show() draws what was selected when it started; one started later wins. Without this,
  // the first image's drawing, still loading when another image was chosen, could land last
  // and show the old image's numbers under the new selection's labels.
  let generation = 0;

  async function show(): Promise<void> {
    const mine = ++generation;
    const imageId = Number(imageSelect.value);
    const chosen = [leftSelect, rightSelect].map((sel) => ({ id: sel.value, label: sel.selectedOptions[0]?.textContent ?? "" }));
    if (!cache || cache.imageId !== imageId) {
      const image = await decodeImage(await fetchBlob(`/images/${imageId}/image`));
      const truth = await decodeMaskPng(await fetchBlob(`/images/${imageId}/mask`), image.width, image.height);
      cache = { imageId, image, truth };
    }
    const { image, truth } = cache;
    const panes: HTMLElement[] = [];
    for (const { id, label } of chosen) {
      if (!id) {
        panes.push(h("p", { class: "muted" }, "No mask of this image yet."));
        continue;
      }
      const pred = await maskOf(Number(id), image.width, image.height);
      const c = confusion(pred, truth);
      panes.push(
        h(
          "figure",
          { style: { margin: 0 } },
          overlayCanvas(image, pred, truth),
          h("figcaption", { "data-testid": "overlay-caption" }, `${label}: F1 ${f1(c).toFixed(3)} over the whole image · TP ${c.tp} · FP ${c.fp} · FN ${c.fn}`),
        ),
      );
    }
    if (mine === generation) view.replaceChildren(...panes);
  }

  imageSelect.addEventListener("change", () => void loadVersions());
  leftSelect.addEventListener("change", () => void show());
  rightSelect.addEventListener("change", () => void show());
  await loadVersions();
};
