// The task page: the editor with its toolbar, the local draft, active-time tracking and
// the submission. A correction task starts from the model's prediction (the task's start
// mask); an annotation task from an empty mask. A task a reviewer returned starts from the
// doctor's returned mask and shows the reviewer's comment, with the marked region outlined over
// the image (an overlay canvas above the editor's, redrawn whenever the view changes).

import { ApiError, api, fetchBlob } from "../api/client.js";
import type { Region, SubmissionResult, TaskDetail, TaskReview } from "../api/types.js";
import { ActiveTimer, attachActiveTimer } from "../editor/activeTime.js";
import { DraftKeeper, defaultDraftBackend, newSubmissionId, type Draft } from "../editor/draft.js";
import { Editor, PROBABILITY_TOOLS, type EditorState, type Tool } from "../editor/editor.js";
import { decodeImage, decodeMaskPng, encodeMaskPng } from "../editor/png.js";
import { imageToScreen } from "../editor/view.js";
import { probabilityFromUint16LE, type ProbabilityMap } from "../../../services/correction/assist.js";
import { cloneMask, createMask, type Mask } from "../../../services/correction/raster.js";
import { formatDate, formatDuration, h, toast } from "../ui/dom.js";
import type { Page } from "./page.js";

const TOOLS: Array<{ tool: Tool; key: string; label: string }> = [
  { tool: "brush", key: "B", label: "Brush" },
  { tool: "eraser", key: "E", label: "Eraser" },
  { tool: "polygon", key: "P", label: "Polygon" },
  { tool: "polyline", key: "L", label: "Polyline" },
  { tool: "fill", key: "F", label: "Fill" },
  { tool: "trace", key: "T", label: "Trace" },
  { tool: "grow", key: "G", label: "Grow" },
  { tool: "remove", key: "D", label: "Remove" },
  { tool: "rethreshold", key: "K", label: "Re-threshold" },
];

const SHORTCUTS: Array<[string, string]> = [
  ["B / E", "brush / eraser"],
  ["P", "polygon: click the corners, Enter or double-click fills"],
  ["L", "polyline: click the points, Enter or double-click draws (thin vessels)"],
  ["F", "flood fill (4-connected)"],
  ["T", "trace: click points along a missed vessel, Enter or double-click draws the path the prediction suggests between them"],
  ["G", "grow: click a faint vessel to add what the prediction saw there (above the grow threshold, 0.1 unless set, within 60 px)"],
  ["D", "remove: click a wrong piece of the mask to erase it (within 80 px of the click)"],
  ["K", "re-threshold brush: paint to apply the threshold slider to the prediction under the brush"],
  ["X", "polygon, polyline and fill: add ↔ remove"],
  ["[ / ]", "smaller / larger brush (line width with the polyline)"],
  ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"],
  ["Wheel", "zoom towards the pointer"],
  ["Space+drag, right or middle drag", "pan"],
  ["0 / 1 / + / −", "fit / actual size / zoom in / zoom out"],
  ["M / R / I", "show mask / prediction / image"],
  ["Esc", "cancel the shape being drawn"],
  ["Ctrl+Enter", "submit"],
  ["?", "this help"],
];

interface Loaded {
  detail: TaskDetail;
  image: ImageBitmap;
  start: Mask | null;
  probability: ProbabilityMap | null;
}

/** GET /tasks/:id/probability: uint16 little-endian samples → probabilities in [0, 1]. */
async function loadProbability(taskId: string, width: number, height: number): Promise<ProbabilityMap> {
  return probabilityFromUint16LE(await (await fetchBlob(`/tasks/${taskId}/probability`)).arrayBuffer(), width, height);
}

async function load(taskId: string): Promise<Loaded> {
  const detail = await api.get<TaskDetail>(`/tasks/${taskId}`);
  const image = await decodeImage(await fetchBlob(`/tasks/${taskId}/image`));
  if (image.width !== detail.image.width || image.height !== detail.image.height) {
    throw new Error(`the image is ${image.width}×${image.height}, the task says ${detail.image.width}×${detail.image.height}`);
  }
  const start = detail.start_mask_url ? await decodeMaskPng(await fetchBlob(`/tasks/${taskId}/start-mask`), image.width, image.height) : null;
  const probability = detail.probability_url ? await loadProbability(taskId, image.width, image.height) : null;
  return { detail, image, start, probability };
}

async function blobToBase64(blob: Blob): Promise<string> {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** A returned task's notice: who returned it, the comment, and where (the region is outlined on the image). */
function reviewNotice(review: TaskReview): HTMLElement {
  const region = review.region;
  return h(
    "div",
    { class: "warning review-notice", role: "note", "data-testid": "review-notice" },
    h("strong", {}, `Returned by ${review.reviewer_name ?? "a reviewer"}${review.decided_at ? ` on ${formatDate(review.decided_at)}` : ""}: `),
    h("q", { "data-testid": "review-comment" }, review.comment ?? ""),
    region
      ? h(
          "span",
          { "data-testid": "review-region" },
          ` Marked region: x ${region.x}, y ${region.y}, ${region.width}×${region.height} px (outlined in yellow on the image).`,
        )
      : null,
    " Your submitted mask is loaded: correct it and submit again.",
  );
}

/** Outlines `region` (image pixels) on `canvas`, which lies exactly over the editor's stage. */
function drawRegionOutline(canvas: HTMLCanvasElement, stage: HTMLElement, view: { scale: number; tx: number; ty: number }, region: Region): void {
  const dpr = window.devicePixelRatio || 1;
  const w = stage.clientWidth;
  const hgt = stage.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  const a = imageToScreen(view, region.x, region.y);
  const b = imageToScreen(view, region.x + region.width, region.y + region.height);
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#000a";
  ctx.strokeRect(a.x - 1, a.y - 1, b.x - a.x + 2, b.y - a.y + 2);
  ctx.strokeStyle = "#ffd400";
  ctx.setLineDash([6, 4]);
  ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
  ctx.setLineDash([]);
}

const TEXT_INPUTS = new Set(["text", "number", "email", "password", "search", "url", "tel"]);

/** Keys typed into a text field are not shortcuts; on checkboxes, sliders and buttons they are. */
function isTyping(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  if (!t) return false;
  if (t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable) return true;
  return t.tagName === "INPUT" && TEXT_INPUTS.has((t as HTMLInputElement).type);
}

export const taskPage: Page = async (root, [taskId]) => {
  const id = taskId!;
  root.classList.add("task-page");
  let loaded = await load(id);
  const backend = defaultDraftBackend();
  const draft = await backend.get(id).catch(() => null);
  const fits = (d: Draft | null, w: number, hgt: number) => (d && d.width === w && d.height === hgt ? d : null);
  // A newer model predicted this image since the task was made (continuous campaigns): with no
  // work of the doctor's in a draft, the task starts over from that prediction at once.
  let refreshed: number | null = null;
  if (loaded.detail.newer_prediction && loaded.detail.task.state === "open" && !fits(draft, loaded.image.width, loaded.image.height)) {
    const newer = loaded.detail.newer_prediction;
    try {
      await api.post(`/tasks/${id}/restart`, { version_id: newer.version_id });
      loaded = await load(id);
      refreshed = newer.round;
    } catch {
      /* the task moved on meanwhile: keep the prediction it was made with */
    }
  }
  const { detail, image, start, probability } = loaded;
  const { task } = detail;
  const { width, height } = image;
  const usable = fits(draft, width, height);
  // Returned by a reviewer: open again, from the doctor's returned mask, with the reviewer's word.
  const returned = task.state === "open" && detail.review?.state === "returned" ? detail.review : null;
  const regionCanvas = returned?.region
    ? h("canvas", { class: "editor-overlay review-region-overlay", "data-testid": "review-region-overlay" })
    : null;

  const mask = start ? cloneMask(start) : createMask(width, height);
  const timer = new ActiveTimer(undefined, undefined, usable?.activeMs ?? 0);
  // The work starts when the task is opened (or when the restored draft's work started).
  const startedAt = usable?.startedAt ?? new Date().toISOString();
  let submissionId = usable?.submissionId ?? newSubmissionId();
  let attempted = false; // a submission with this id was sent: an edit after it needs a new id
  let edits = usable?.edits ?? 0;
  let submitted = task.state !== "open";
  const keeper = new DraftKeeper(backend);

  const snapshot = (): Draft => ({
    taskId: id,
    width,
    height,
    mask: editor.mask.data.slice(),
    activeMs: timer.activeMs(),
    edits,
    startedAt,
    submissionId,
    savedAt: new Date().toISOString(),
    actions: [...editor.actions],
  });

  const statusLine = h("span", { class: "status", "data-testid": "editor-status" });
  const message = h("div", { class: "task-message", "data-testid": "task-message", role: "status" });
  const toolButtons = new Map<Tool, HTMLButtonElement>();
  const sizeInput = h("input", { type: "range", min: 1, max: 60, value: 8, title: "Brush size ([ and ])" });
  const thresholdInput = h("input", { type: "range", min: 0.05, max: 0.95, step: 0.05, value: 0.3, title: "Re-threshold brush: the threshold applied under it" });
  const growInput = h("input", { type: "range", min: 0.05, max: 0.95, step: 0.05, value: 0.1, title: "Grow: the lower threshold of the region added" });
  const thresholdLabel = h("span", { class: "num" });
  const growLabel = h("span", { class: "num" });
  const widthInput = h("input", { type: "range", min: 1, max: 20, value: 2, title: "Polyline width" });
  const sizeLabel = h("span", { class: "num" });
  const widthLabel = h("span", { class: "num" });
  const valueButton = h("button", { title: "Polygon, polyline and fill add or remove (X)" });
  const undoButton = h("button", { title: "Undo (Ctrl+Z)" }, "↶ Undo");
  const redoButton = h("button", { title: "Redo (Ctrl+Shift+Z)" }, "↷ Redo");
  const submitButton = h("button", { class: "primary", "data-testid": "submit", title: "Submit (Ctrl+Enter)" }, "Submit");

  const onState = (s: EditorState): void => {
    for (const [tool, b] of toolButtons) b.classList.toggle("active", tool === s.tool);
    sizeInput.value = String(s.brushSize);
    sizeLabel.textContent = `${s.brushSize}px`;
    widthInput.value = String(s.lineWidth);
    widthLabel.textContent = `${s.lineWidth}px`;
    thresholdInput.value = String(s.threshold);
    thresholdLabel.textContent = s.threshold.toFixed(2);
    growInput.value = String(s.growLow);
    growLabel.textContent = s.growLow.toFixed(2);
    valueButton.textContent = s.shapeValue ? "Mode: add" : "Mode: remove";
    valueButton.classList.toggle("remove", !s.shapeValue);
    undoButton.disabled = !s.canUndo;
    redoButton.disabled = !s.canRedo;
    updateStatus();
    drawRegion(); // the view may have changed
  };

  const editor = new Editor({
    mask,
    image,
    prediction: start,
    probability,
    onEdit: () => {
      timer.edit();
      edits++;
      if (attempted) {
        submissionId = newSubmissionId();
        attempted = false;
      }
      keeper.schedule(snapshot);
      updateStatus();
    },
    onState,
  });
  if (usable) {
    editor.load(usable.mask);
    editor.actions.push(...(usable.actions ?? []));
    toast(`Restored your unsent work on this task from ${formatDate(usable.savedAt)}.`, "info");
    if (detail.newer_prediction) {
      toast(`Model v${detail.newer_prediction.round} has predicted this image since; your work here builds on the earlier prediction.`, "info");
    }
  } else if (refreshed !== null) {
    toast(`Starting from model v${refreshed}'s prediction, made since this task was created.`, "info");
  }
  (window as unknown as { __medloopEditor?: Editor }).__medloopEditor = editor;

  function drawRegion(): void {
    if (regionCanvas && returned?.region) drawRegionOutline(regionCanvas, editor.root, editor.view, returned.region);
  }
  const regionResize = regionCanvas ? new ResizeObserver(() => drawRegion()) : null;
  if (regionCanvas) {
    editor.root.appendChild(regionCanvas);
    regionResize!.observe(editor.root);
  }

  function updateStatus(): void {
    statusLine.textContent = `active ${formatDuration(timer.activeMs())} · ${edits} edits · zoom ${Math.round(editor.view.scale * 100)}%`;
  }

  // ---------------------------------------------------------------- toolbar
  for (const t of TOOLS) {
    const needsMap = PROBABILITY_TOOLS.has(t.tool) && !probability;
    const b = h(
      "button",
      {
        title: needsMap ? `${t.label} (${t.key}): needs the prediction's probability map, which this task has none of` : `${t.label} (${t.key})`,
        "data-tool": t.tool,
        disabled: needsMap,
        onclick: () => editor.setTool(t.tool),
      },
      t.label,
    );
    toolButtons.set(t.tool, b);
  }
  thresholdInput.addEventListener("input", () => editor.setThreshold(Number(thresholdInput.value)));
  growInput.addEventListener("input", () => editor.setGrowLow(Number(growInput.value)));
  sizeInput.addEventListener("input", () => editor.setBrushSize(Number(sizeInput.value)));
  widthInput.addEventListener("input", () => editor.setLineWidth(Number(widthInput.value)));
  valueButton.addEventListener("click", () => editor.toggleShapeValue());
  undoButton.addEventListener("click", () => editor.undo());
  redoButton.addEventListener("click", () => editor.redo());
  submitButton.addEventListener("click", () => void submit());

  const layerBox = (key: "image" | "mask" | "prediction", label: string, enabled = true) => {
    const box = h("input", { type: "checkbox", checked: editor.renderer.layers[key], disabled: !enabled, "data-layer": key });
    box.addEventListener("change", () => {
      editor.renderer.layers[key] = box.checked;
      editor.renderer.invalidate();
    });
    return h("label", { class: "check" }, box, label);
  };
  const slider = (label: string, min: number, max: number, step: number, value: number, set: (v: number) => void) => {
    const input = h("input", { type: "range", min, max, step, value });
    input.addEventListener("input", () => {
      set(Number(input.value));
      editor.renderer.invalidate();
    });
    return h("label", { class: "slider" }, label, input);
  };
  const look = editor.renderer.look;
  const layerInputs = {
    image: layerBox("image", "Image"),
    mask: layerBox("mask", "Mask"),
    prediction: layerBox("prediction", "Prediction", start !== null),
  };

  const help = h(
    "div",
    { class: "help-overlay", hidden: true, "data-testid": "help", onclick: () => (help.hidden = true) },
    h(
      "div",
      { class: "card" },
      h("h2", {}, "Keyboard shortcuts"),
      h("table", {}, SHORTCUTS.map(([k, v]) => h("tr", {}, h("td", {}, h("kbd", {}, k)), h("td", {}, v)))),
      h("p", { class: "muted" }, "Active time counts while you work; idle stretches beyond 30 s and hidden tabs do not count."),
    ),
  );

  const header = h(
    "div",
    { class: "task-header" },
    h("a", { href: "#/inbox", class: "link" }, "← Inbox"),
    h("h1", {}, `${task.kind === "correct" ? "Correct" : "Draw"}: ${detail.image.name}`),
    h("span", { class: `badge kind-${task.kind}` }, task.kind === "correct" ? "correction of the model's prediction" : "from scratch"),
    h("span", { class: "muted" }, `due ${formatDate(task.due_at)}`),
    statusLine,
  );
  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("div", { class: "group" }, [...toolButtons.values()].slice(0, 5)),
    h("div", { class: "group", title: "Assisted tools: they use the prediction's probability map" }, [...toolButtons.values()].slice(5)),
    h(
      "div",
      { class: "group" },
      h("label", { class: "slider" }, "Threshold", thresholdInput, thresholdLabel),
      h("label", { class: "slider" }, "Grow", growInput, growLabel),
    ),
    h("div", { class: "group" }, h("label", { class: "slider" }, "Brush", sizeInput, sizeLabel), h("label", { class: "slider" }, "Line", widthInput, widthLabel), valueButton),
    h("div", { class: "group" }, undoButton, redoButton),
    h("div", { class: "group" }, layerInputs.image, layerInputs.mask, layerInputs.prediction),
    h(
      "div",
      { class: "group" },
      slider("Opacity", 0, 1, 0.05, look.opacity, (v) => (look.opacity = v)),
      slider("Brightness", 0.3, 3, 0.05, look.brightness, (v) => (look.brightness = v)),
      slider("Contrast", 0.3, 3, 0.05, look.contrast, (v) => (look.contrast = v)),
    ),
    h("div", { class: "group" }, h("button", { onclick: () => editor.fitView(), title: "Fit (0)" }, "Fit"), h("button", { onclick: () => (help.hidden = !help.hidden), title: "Shortcuts (?)" }, "?")),
    h("div", { class: "group right" }, submitButton),
  );
  // A clicked control gives the focus back, so Enter and Space stay shortcuts of the editor
  // instead of pressing the last clicked button again.
  toolbar.addEventListener("click", () => {
    const el = document.activeElement as HTMLElement | null;
    if (el && el !== document.body && toolbar.contains(el) && el.tagName !== "SELECT") el.blur();
  });
  toolbar.addEventListener("change", () => {
    const el = document.activeElement as HTMLElement | null;
    if (el && el.tagName === "INPUT" && (el as HTMLInputElement).type === "checkbox") el.blur();
  });
  root.append(header, toolbar, ...(returned ? [reviewNotice(returned)] : []), message, editor.root, help);
  editor.resize();
  onState(editor.state());
  if (submitted) showClosed();

  // ---------------------------------------------------------------- submission
  function showClosed(): void {
    submitButton.disabled = true;
    message.className = "task-message ok";
    message.textContent =
      task.state === "in_review"
        ? "This task is submitted and waits for a reviewer; it takes no more submissions unless the reviewer returns it."
        : `This task is ${task.state === "open" ? "submitted" : task.state}; it takes no more submissions.`;
  }

  async function submit(): Promise<void> {
    if (submitted || submitButton.disabled) return;
    // One clock reading is the end of the work and of its active time, taken when Submit is
    // pressed: encoding the mask below takes long on a slow machine, and the timer kept
    // counting through it when it was read afterwards (active_ms longer than the span).
    const endMs = Date.now();
    const activeMs = timer.stopAt(endMs);
    const endedAt = new Date(endMs).toISOString();
    submitButton.disabled = true;
    message.className = "task-message";
    message.textContent = "Sending…";
    attempted = true;
    await keeper.flush();
    await backend.put(snapshot()).catch(() => undefined);
    const body = {
      submission_id: submissionId,
      parent_version_id: task.start_version_id,
      mask_png_base64: await blobToBase64(await encodeMaskPng(editor.mask)),
      active_ms: activeMs,
      started_at: startedAt,
      ended_at: endedAt,
      edits,
      actions: editor.actions,
    };
    try {
      const res = await api.post<SubmissionResult>(`/tasks/${id}/submissions`, body);
      await keeper.confirm(id);
      submitted = true;
      message.className = "task-message ok";
      message.textContent = res.duplicate
        ? `Already received (version ${res.version.id}); nothing was sent twice.`
        : `Submitted: version ${res.version.id}, ${res.version.pixels_changed} pixels changed, ${formatDuration(res.version.active_ms ?? 0)} active.` +
          // Stored all the same; the auditor sees the mark.
          (res.version.flags.length > 0 ? " This computer's clock looked off, so the server corrected the recorded times." : "");
      toast("Thank you, your mask is saved.", "ok");
      submitButton.textContent = "Submitted";
    } catch (err) {
      submitButton.disabled = false;
      message.className = "task-message error";
      if (err instanceof ApiError && err.status === 409) {
        message.textContent = `Not accepted: ${err.message}. Your work stays saved in this browser.`;
        if (err.code !== "stale_version" && /is (submitted|done|cancelled)/.test(err.message)) {
          submitButton.disabled = true;
        }
      } else if (err instanceof ApiError && err.code === "workflow_unavailable") {
        // Stored, but the task workflow did not hear of it: the same submission id retries safely.
        message.textContent = `${err.message}. Press Submit again; it will not be stored twice.`;
        attempted = false;
      } else if (err instanceof ApiError && err.status > 0) {
        message.textContent = `Not accepted: ${err.message}. Your work stays saved in this browser.`;
      } else {
        message.textContent = `Not sent (${(err as Error).message}). Your work stays saved in this browser; try again.`;
      }
    }
  }

  // ---------------------------------------------------------------- keys, time, draft
  const onKey = (e: KeyboardEvent): void => {
    if (isTyping(e)) return;
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      void submit();
      return;
    }
    if (e.key === "?") {
      help.hidden = !help.hidden;
      e.preventDefault();
      return;
    }
    if (e.key === "Escape" && !help.hidden) {
      help.hidden = true;
      return;
    }
    const k = e.key.toLowerCase();
    if (!e.ctrlKey && !e.metaKey && (k === "m" || k === "r" || k === "i")) {
      const key = k === "m" ? "mask" : k === "r" ? "prediction" : "image";
      const box = layerInputs[key].querySelector("input")!;
      if (!box.disabled) {
        box.checked = !box.checked;
        box.dispatchEvent(new Event("change"));
      }
      return;
    }
    if (editor.handleKey(e)) e.preventDefault();
  };
  const onKeyUp = (e: KeyboardEvent): void => editor.handleKeyUp(e);
  const onHide = (): void => {
    if (document.visibilityState === "hidden") void keeper.flush();
  };
  window.addEventListener("keydown", onKey);
  window.addEventListener("keyup", onKeyUp);
  document.addEventListener("visibilitychange", onHide);
  const detach = attachActiveTimer(timer);
  timer.activity(); // opening the task is the start of the work
  const tick = setInterval(updateStatus, 1000);

  return () => {
    void keeper.flush();
    clearInterval(tick);
    regionResize?.disconnect();
    detach();
    window.removeEventListener("keydown", onKey);
    window.removeEventListener("keyup", onKeyUp);
    document.removeEventListener("visibilitychange", onHide);
    editor.destroy();
    delete (window as unknown as { __medloopEditor?: Editor }).__medloopEditor;
  };
};
