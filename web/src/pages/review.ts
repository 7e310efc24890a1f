// One review: the image with the submitted mask over it (a semi-transparent colour), a region the
// reviewer drags on the image (kept in image pixels), a comment, and the decision: accept, or
// return to the doctor (a comment is required to return). The reviewer's active time is measured
// as on the task page (editor/activeTime.ts). The decision carries one id per page view, so a
// retry (the server stored it but could not tell the task's workflow: 503) is not taken twice.

import { ApiError, api, fetchBlob } from "../api/client.js";
import type { Region, Review, ReviewDecision } from "../api/types.js";
import { ActiveTimer, attachActiveTimer } from "../editor/activeTime.js";
import { decodeImage, decodeMaskPng } from "../editor/png.js";
import { newSubmissionId } from "../editor/draft.js";
import { paintLayer, rgba } from "../editor/renderer.js";
import type { Mask } from "../../../services/correction/raster.js";
import { fill, formatDate, formatDuration, h, toast } from "../ui/dom.js";
import type { Page } from "./page.js";

/** The mask's colour over the image (RGB). */
const MASK_COLOUR = rgba(0, 230, 118);
/** Attempts of one decision while the server answers 503 or the network fails, and the pause growing per attempt. */
const ATTEMPTS = 5;
const RETRY_MS = 1000;
/** A drag smaller than this in both directions (image pixels) is a click: it clears the region. */
const MIN_DRAG_PX = 2;

export interface Point {
  x: number;
  y: number;
}

/**
 * The region between two image points: whole pixels covering both, clipped to the image; null
 * for a drag too small to mean a region.
 */
export function regionBetween(a: Point, b: Point, width: number, height: number): Region | null {
  const clampX = (v: number) => Math.min(width, Math.max(0, v));
  const clampY = (v: number) => Math.min(height, Math.max(0, v));
  const x0 = Math.floor(clampX(Math.min(a.x, b.x)));
  const x1 = Math.ceil(clampX(Math.max(a.x, b.x)));
  const y0 = Math.floor(clampY(Math.min(a.y, b.y)));
  const y1 = Math.ceil(clampY(Math.max(a.y, b.y)));
  if (x1 - x0 < MIN_DRAG_PX && y1 - y0 < MIN_DRAG_PX) return null;
  return { x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0) };
}

export function describeRegion(r: Region): string {
  return `x ${r.x}, y ${r.y}, ${r.width}×${r.height} px`;
}

/** The mask as a canvas: its colour where the mask is set, transparent elsewhere. */
function maskLayer(mask: Mask): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = mask.width;
  canvas.height = mask.height;
  const ctx = canvas.getContext("2d")!;
  paintLayer(ctx, ctx.createImageData(mask.width, mask.height), mask, MASK_COLOUR, { x0: 0, y0: 0, x1: mask.width, y1: mask.height });
  return canvas;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


export const reviewPage: Page = async (root, [rid]) => {
  const reviewId = Number(rid);
  let review = await api.get<Review>(`/reviews/${reviewId}`);
  const [image, mask] = await Promise.all([
    fetchBlob(`/tasks/${review.task_id}/image`).then(decodeImage),
    fetchBlob(`/versions/${review.version_id}/mask`).then((b) => decodeMaskPng(b, review.width, review.height)),
  ]);
  const { width, height } = image;
  if (width !== review.width || height !== review.height) {
    throw new Error(`the image is ${width}×${height}, the review says ${review.width}×${review.height}`);
  }
  const overlay = maskLayer(mask);
  root.classList.add("review-page");

  // ---------------------------------------------------------------- state
  let region: Region | null = review.region ?? null;
  let dragFrom: Point | null = null;
  let showMask = true;
  let opacity = 0.5;
  /** One id per page view: a retry of the same decision is answered again, never stored twice. */
  const decisionId = newSubmissionId();
  /** The decision the server may already have stored (a 503): the only one that can be sent now. */
  let locked: ReviewDecision["decision"] | null = null;
  let sending = false;
  const timer = new ActiveTimer();

  // ---------------------------------------------------------------- elements
  const canvas = h("canvas", { class: "review-canvas", width, height, "data-testid": "review-canvas" });
  const ctx = canvas.getContext("2d")!;
  const maskBox = h("input", { type: "checkbox", checked: true, "data-testid": "review-show-mask" });
  const opacityInput = h("input", { type: "range", min: 0, max: 1, step: 0.05, value: opacity, title: "Mask opacity" });
  const regionLine = h("span", { "data-testid": "review-region" });
  const clearRegion = h("button", { class: "link", "data-testid": "review-clear-region" }, "clear");
  const comment = h("textarea", {
    rows: 5,
    maxlength: 2000,
    placeholder: "What should the doctor change? (required to return the mask)",
    "data-testid": "review-comment-input",
  });
  const acceptButton = h("button", { class: "primary", "data-testid": "review-accept" }, "Accept");
  const returnButton = h("button", { class: "danger", "data-testid": "review-return", title: "Needs a comment" }, "Return to doctor");
  const message = h("div", { class: "task-message", role: "status", "data-testid": "review-message" });
  const activeLine = h("span", { class: "muted", "data-testid": "review-active" });
  const stateBadge = h("span", { class: "badge", "data-testid": "review-state" });
  const decidedBox = h("div", { "data-testid": "review-decided" });

  // ---------------------------------------------------------------- drawing
  function draw(): void {
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(image, 0, 0);
    if (showMask && opacity > 0) {
      ctx.globalAlpha = opacity;
      ctx.drawImage(overlay, 0, 0);
      ctx.globalAlpha = 1;
    }
    if (region) {
      // About two screen pixels wide whatever the canvas is scaled to.
      const box = canvas.getBoundingClientRect();
      const px = box.width > 0 ? width / box.width : 1;
      ctx.lineWidth = Math.max(1, 2 * px);
      ctx.strokeStyle = "#ffd400";
      ctx.setLineDash([6 * px, 4 * px]);
      ctx.strokeRect(region.x + ctx.lineWidth / 2, region.y + ctx.lineWidth / 2, Math.max(1, region.width - ctx.lineWidth), Math.max(1, region.height - ctx.lineWidth));
      ctx.setLineDash([]);
    }
  }

  const pending = () => review.state === "pending";

  function update(): void {
    regionLine.textContent = region ? `Region: ${describeRegion(region)}` : pending() ? "Drag on the image to mark a region (optional)." : "No region marked.";
    clearRegion.hidden = !region || !pending();
    const hasComment = comment.value.trim().length > 0;
    const open = pending() && !sending;
    acceptButton.disabled = !open || locked === "return";
    returnButton.disabled = !open || !hasComment || locked === "accept";
    returnButton.title = hasComment ? "Return the mask to its doctor with this comment" : "Write a comment first: it tells the doctor what to change";
    comment.disabled = !pending() || sending || locked !== null;
    stateBadge.textContent = review.state;
    stateBadge.className = `badge review-${review.state}`;
    fill(
      decidedBox,
      pending()
        ? null
        : h(
            "p",
            { class: review.state === "returned" ? "warning" : "muted" },
            `${review.state === "accepted" ? "Accepted" : review.state === "returned" ? "Returned" : "Cancelled"}` +
              `${review.reviewer_name ? ` by ${review.reviewer_name}` : ""}${review.decided_at ? ` on ${formatDate(review.decided_at)}` : ""}.`,
            review.comment ? h("span", {}, " Comment: ", h("q", {}, review.comment)) : null,
          ),
    );
    activeLine.textContent = `active ${formatDuration(timer.activeMs())}`;
  }

  // ---------------------------------------------------------------- region by dragging
  function toImage(e: PointerEvent): Point {
    const box = canvas.getBoundingClientRect();
    return { x: ((e.clientX - box.left) * width) / box.width, y: ((e.clientY - box.top) * height) / box.height };
  }
  canvas.addEventListener("pointerdown", (e) => {
    if (!pending() || e.button !== 0) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    dragFrom = toImage(e);
    region = null;
    draw();
    update();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!dragFrom) return;
    region = regionBetween(dragFrom, toImage(e), width, height);
    draw();
    update();
  });
  const endDrag = (e: PointerEvent) => {
    if (!dragFrom) return;
    region = regionBetween(dragFrom, toImage(e), width, height);
    dragFrom = null;
    if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
    draw();
    update();
  };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  clearRegion.addEventListener("click", () => {
    region = null;
    draw();
    update();
  });
  maskBox.addEventListener("change", () => {
    showMask = maskBox.checked;
    draw();
  });
  opacityInput.addEventListener("input", () => {
    opacity = Number(opacityInput.value);
    draw();
  });
  comment.addEventListener("input", update);

  // ---------------------------------------------------------------- the decision
  async function send(body: ReviewDecision): Promise<Review> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await api.post<Review>(`/reviews/${reviewId}/decision`, body);
      } catch (err) {
        // 503: stored, but the task's workflow was not told; a network failure: maybe stored.
        // Either way the same decision id is safe to send again.
        const retry = err instanceof ApiError ? err.status === 503 || err.status === 0 : true;
        if (!retry || attempt >= ATTEMPTS) throw err;
        locked = body.decision;
        message.className = "task-message";
        message.textContent = `Sent; ${err instanceof ApiError ? err.message : "no answer"}. Trying again (${attempt}/${ATTEMPTS - 1})…`;
        await sleep(RETRY_MS * attempt);
      }
    }
  }

  async function decide(decision: ReviewDecision["decision"]): Promise<void> {
    if (!pending() || sending) return;
    const text = comment.value.trim();
    if (decision === "return" && !text) {
      message.className = "task-message error";
      message.textContent = "Write a comment first: it tells the doctor what to change.";
      comment.focus();
      return;
    }
    const activeMs = timer.stopAt(Date.now());
    sending = true;
    update();
    message.className = "task-message";
    message.textContent = "Sending…";
    try {
      review = await send({ decision, comment: text || null, region, active_ms: activeMs, decision_id: decisionId });
      locked = null;
      message.className = "task-message ok";
      message.textContent =
        decision === "accept" ? `Accepted: the mask of ${review.image_name} is final.` : `Returned to ${review.doctor_name} with your comment.`;
      toast(decision === "accept" ? "Accepted." : "Returned to the doctor.", "ok");
      message.append(" ", h("a", { href: "#/reviews", "data-testid": "review-next" }, "Back to the queue"));
    } catch (err) {
      message.className = "task-message error";
      if (err instanceof ApiError && err.status === 503) {
        locked = decision;
        message.textContent = `${err.message}. Press "${decision === "accept" ? "Accept" : "Return to doctor"}" again; it will not be stored twice.`;
      } else if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
        message.textContent = `Not taken: ${err.message}.`;
        review = await api.get<Review>(`/reviews/${reviewId}`).catch(() => review);
        region = review.region ?? region;
      } else if (err instanceof ApiError && err.status > 0) {
        message.textContent = `Not taken: ${err.message}.`;
      } else {
        locked = decision;
        message.textContent = `Not sent (${(err as Error).message}); press the button again, it will not be stored twice.`;
      }
    } finally {
      sending = false;
      draw();
      update();
    }
  }
  acceptButton.addEventListener("click", () => void decide("accept"));
  returnButton.addEventListener("click", () => void decide("return"));

  // ---------------------------------------------------------------- layout
  root.append(
    h("p", {}, h("a", { href: "#/reviews" }, "← Reviews")),
    h("div", { class: "task-header" }, h("h1", {}, `Review: ${review.image_name}`), stateBadge, activeLine),
    h(
      "p",
      { class: "muted", "data-testid": "review-meta" },
      `${review.doctor_name} · ${review.campaign_id ? `campaign #${review.campaign_id}, round ${review.round ?? 0}` : "no campaign"} · ` +
        `${review.task_kind === "correct" ? "correction of a prediction" : "drawn from scratch"} · submitted ${formatDate(review.created_at)} · ${width}×${height}`,
    ),
    h(
      "div",
      { class: "review-layout" },
      h("div", { class: "review-stage" }, canvas),
      h(
        "div",
        { class: "card review-side" },
        h("div", { class: "toolbar" }, h("label", { class: "check" }, maskBox, "Mask"), h("label", { class: "slider" }, "Opacity", opacityInput)),
        h("p", {}, regionLine, " ", clearRegion),
        h("label", {}, "Comment for the doctor", comment),
        h("div", { class: "toolbar" }, acceptButton, returnButton),
        message,
        decidedBox,
      ),
    ),
  );
  draw();
  update();

  const onResize = () => draw();
  window.addEventListener("resize", onResize);
  const detach = attachActiveTimer(timer);
  timer.activity(); // opening the review is the start of the work
  const tick = setInterval(() => (activeLine.textContent = `active ${formatDuration(timer.activeMs())}`), 1000);
  return () => {
    clearInterval(tick);
    detach();
    window.removeEventListener("resize", onResize);
    image.close();
  };
};
