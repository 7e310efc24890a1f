// The mask editor: tools, pointer and keyboard input, zoom and pan, undo/redo. Drawing goes
// through the pure functions of services/correction/raster.ts (manual tools) and
// services/correction/assist.ts (assisted tools, which the simulated doctor uses too), repainting
// through Renderer, history through History; this file only wires input to them and records
// each action (services/correction/effort.ts) for the submission.

import { History } from "./history.js";
import { GROW_DEFAULTS, applyEdit, grow, remove, rethreshold, trace, type Edit, type ProbabilityMap } from "../../../services/correction/assist.js";
import { CLICK_TARGET_PX, MAX_ACTION_MS, MAX_ACTIONS, type Action } from "../../../services/correction/effort.js";
import { floodFill, fillPolygon, polyline, stroke, unionRect, type Mask, type Point, type Rect } from "../../../services/correction/raster.js";
import { Renderer } from "./renderer.js";
import { fit, imageToScreen, pan, screenToImage, wheelFactor, zoomAt, type View } from "./view.js";

export type Tool = "brush" | "eraser" | "polygon" | "polyline" | "fill" | "trace" | "grow" | "remove" | "rethreshold";

export const TOOL_KEYS: Record<string, Tool> = {
  b: "brush",
  e: "eraser",
  p: "polygon",
  l: "polyline",
  f: "fill",
  t: "trace",
  g: "grow",
  d: "remove",
  k: "rethreshold",
};

/** Tools that need the prediction's probability map (remove works on the mask alone). */
export const PROBABILITY_TOOLS: ReadonlySet<Tool> = new Set(["trace", "grow", "rethreshold"]);

/** One finished edit, as geometry: what the editor rasterised (tests and benchmarks read it). */
export interface EditRecord {
  tool: Tool;
  points: Point[];
  size: number;
  value: number;
}

export interface EditorState {
  tool: Tool;
  brushSize: number;
  lineWidth: number;
  /** Value polygon, polyline and fill write: 1 adds to the mask, 0 removes. */
  shapeValue: number;
  /** The re-threshold brush's threshold, and grow's lower threshold (probabilities). */
  threshold: number;
  growLow: number;
  /** Whether the assisted tools that need a probability map can be used. */
  hasProbability: boolean;
  canUndo: boolean;
  canRedo: boolean;
  zoom: number;
}

export interface EditorOptions {
  mask: Mask;
  image: CanvasImageSource;
  prediction?: Mask | null;
  /** The prediction's probability map, for trace, grow and the re-threshold brush. */
  probability?: ProbabilityMap | null;
  /** Called after every edit, undo and redo (the page saves a draft, counts an edit). */
  onEdit?: () => void;
  /** Called when tool, size, zoom or history availability changed. */
  onState?: (s: EditorState) => void;
}

const MIN_SIZE = 1;
const MAX_SIZE = 200;

export class Editor {
  readonly root: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  readonly overlay: HTMLCanvasElement;
  readonly renderer: Renderer;
  readonly history: History;
  readonly mask: Mask;
  readonly edits: EditRecord[] = [];
  /** Every action that changed the mask, in order, as the submission sends it. */
  readonly actions: Action[] = [];
  tool: Tool = "brush";
  brushSize = 8;
  lineWidth = 2;
  shapeValue = 1;
  threshold = 0.3;
  growLow: number = GROW_DEFAULTS.low;
  readonly probability: ProbabilityMap | null;
  private vertices: Point[] = [];
  /** The edit the assisted tool would make at the pointer (drawn by the overlay). */
  private preview: Edit | null = null;
  private previewKey = "";
  /** Counts every change of the mask (edits, undo, redo, a loaded draft): previews are keyed by it. */
  private maskVersion = 0;
  /** The trace path through the points clicked so far, computed once per point (the preview adds the last leg). */
  private fixedTrace: Edit | null = null;
  /** Pointer travel (image pixels) with no button down since the last action, and its start. */
  private travel = 0;
  private lastImagePoint: Point | null = null;
  private actionStart = 0;
  private strokePoints: Point[] | null = null;
  private strokeDirty: Rect | null = null;
  private strokeValue = 1;
  private panning: { x: number; y: number } | null = null;
  private spaceDown = false;
  private pointer: { x: number; y: number } | null = null;
  private overlayFrame = 0;
  private readonly resizeObserver: ResizeObserver;
  private cssSize = { width: 1, height: 1 };
  private fitted = false;

  constructor(private readonly opts: EditorOptions) {
    this.mask = opts.mask;
    this.probability = opts.probability ?? null;
    if (this.probability && (this.probability.width !== this.mask.width || this.probability.height !== this.mask.height)) {
      throw new Error(`the probability map is ${this.probability.width}×${this.probability.height}, the mask ${this.mask.width}×${this.mask.height}`);
    }
    this.canvas = document.createElement("canvas");
    this.canvas.className = "editor-canvas";
    this.canvas.setAttribute("data-testid", "editor-canvas");
    this.overlay = document.createElement("canvas");
    this.overlay.className = "editor-overlay";
    this.root = document.createElement("div");
    this.root.className = "editor-stage";
    this.root.append(this.canvas, this.overlay);
    this.renderer = new Renderer(this.canvas, opts.image, this.mask);
    this.renderer.setPrediction(opts.prediction ?? null);
    this.history = new History(this.mask, 100);
    this.root.addEventListener("pointerdown", this.onPointerDown);
    this.root.addEventListener("pointermove", this.onPointerMove);
    this.root.addEventListener("pointerup", this.onPointerUp);
    this.root.addEventListener("pointercancel", this.onPointerUp);
    this.root.addEventListener("pointerleave", this.onPointerLeave);
    this.root.addEventListener("dblclick", this.onDoubleClick);
    this.root.addEventListener("wheel", this.onWheel, { passive: false });
    this.root.addEventListener("contextmenu", (e) => e.preventDefault());
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.root);
  }

  get view(): View {
    return this.renderer.view;
  }

  set view(v: View) {
    this.renderer.view = v;
    this.renderer.invalidate();
    this.drawOverlay();
    this.emitState();
  }

  state(): EditorState {
    return {
      tool: this.tool,
      brushSize: this.brushSize,
      lineWidth: this.lineWidth,
      shapeValue: this.shapeValue,
      threshold: this.threshold,
      growLow: this.growLow,
      hasProbability: this.probability !== null,
      canUndo: this.history.canUndo,
      canRedo: this.history.canRedo,
      zoom: this.view.scale,
    };
  }

  resize(): void {
    this.cssSize = this.renderer.resize();
    const dpr = window.devicePixelRatio || 1;
    this.overlay.width = Math.round(this.cssSize.width * dpr);
    this.overlay.height = Math.round(this.cssSize.height * dpr);
    if (!this.fitted && this.cssSize.width > 1) {
      this.fitted = true;
      this.fitView();
    }
    this.drawOverlay();
  }

  fitView(): void {
    this.view = fit(this.mask.width, this.mask.height, this.cssSize.width, this.cssSize.height);
  }

  /** One image pixel per CSS pixel, the image's top-left corner at the stage's. */
  actualSize(): void {
    this.view = { scale: 1, tx: 0, ty: 0 };
  }

  setTool(tool: Tool): void {
    if (PROBABILITY_TOOLS.has(tool) && !this.probability) return;
    this.cancelShape();
    this.tool = tool;
    this.preview = null;
    this.previewKey = "";
    this.drawOverlay();
    this.emitState();
  }

  /** `[` and `]`: the brush size, or the line width with the polyline tool. */
  changeSize(delta: number): void {
    const step = (v: number) => Math.min(MAX_SIZE, Math.max(MIN_SIZE, v + delta * (v >= 20 ? 4 : v >= 8 ? 2 : 1)));
    if (this.tool === "polyline") this.lineWidth = step(this.lineWidth);
    else this.brushSize = step(this.brushSize);
    this.drawOverlay();
    this.emitState();
  }

  setBrushSize(v: number): void {
    this.brushSize = Math.min(MAX_SIZE, Math.max(MIN_SIZE, Math.round(v)));
    this.emitState();
  }

  setLineWidth(v: number): void {
    this.lineWidth = Math.min(MAX_SIZE, Math.max(MIN_SIZE, Math.round(v)));
    this.emitState();
  }

  /** The re-threshold brush's threshold, in (0, 1). */
  setThreshold(v: number): void {
    this.threshold = Math.min(0.99, Math.max(0.01, v));
    this.emitState();
  }

  /** Grow's lower threshold, in (0, 1). */
  setGrowLow(v: number): void {
    this.growLow = Math.min(0.99, Math.max(0.01, v));
    this.previewKey = "";
    this.drawOverlay();
    this.emitState();
  }

  toggleShapeValue(): void {
    this.shapeValue = this.shapeValue ? 0 : 1;
    this.emitState();
  }

  undo(): void {
    this.cancelShape();
    const r = this.history.undo();
    if (r) this.afterEdit(r);
  }

  redo(): void {
    this.cancelShape();
    const r = this.history.redo();
    if (r) this.afterEdit(r);
  }

  /** Replaces the whole mask (a restored draft), forgetting the history. */
  load(data: Uint8Array): void {
    this.mask.data.set(data);
    this.history.reset(this.mask);
    this.maskVersion++;
    this.renderer.maskChanged({ x0: 0, y0: 0, x1: this.mask.width, y1: this.mask.height });
    this.emitState();
  }

  /** Finishes the polygon, polyline or trace being drawn (Enter, double-click). */
  finishShape(): void {
    const pts = this.vertices;
    this.vertices = [];
    this.fixedTrace = null;
    if (this.tool === "polygon" && pts.length >= 3) {
      this.commit({ tool: "polygon", points: pts, size: 0, value: this.shapeValue }, fillPolygon(this.mask, pts, this.shapeValue), true, {
        clicks: pts.length,
        width_px: CLICK_TARGET_PX,
      });
    } else if (this.tool === "polyline" && pts.length >= 2) {
      this.commit(
        { tool: "polyline", points: pts, size: this.lineWidth, value: this.shapeValue },
        polyline(this.mask, pts, this.lineWidth, this.shapeValue),
        true,
        { clicks: pts.length, width_px: this.lineWidth },
      );
    } else if (this.tool === "trace" && pts.length >= 2 && this.probability) {
      this.applyAssisted(trace(this.mask, this.probability, pts), pts);
    }
    this.preview = null;
    this.drawOverlay();
  }

  /** The edit the assisted tool would make at the pointer now (null: none), as the overlay shows it. */
  get pendingPreview(): Edit | null {
    return this.preview;
  }

  /**
   * Uses an assisted tool at image points, as clicks would (trace: two or more points, then
   * finished; grow and remove: one point). The browser tests and the replay of a simulated
   * doctor's actions drive the editor through pointer events; this is what those events call.
   */
  useAssisted(tool: "trace" | "grow" | "remove", points: readonly Point[]): Edit | null {
    const prob = this.probability;
    if (tool !== "remove" && !prob) return null;
    const edit =
      tool === "trace" ? trace(this.mask, prob!, points) : tool === "grow" ? grow(this.mask, prob!, points[0]!, { low: this.growLow }) : remove(this.mask, points[0]!);
    this.applyAssisted(edit, points);
    return edit;
  }

  private applyAssisted(edit: Edit, clicks: readonly Point[]): void {
    const rect = applyEdit(this.mask, edit);
    this.commit({ tool: edit.tool as Tool, points: [...clicks], size: edit.width, value: edit.tool === "remove" ? 0 : 1 }, rect, true, {
      clicks: clicks.length,
      width_px: edit.width || CLICK_TARGET_PX,
    });
  }

  cancelShape(): void {
    if (this.vertices.length) {
      this.vertices = [];
      this.fixedTrace = null;
      this.preview = null;
      this.previewKey = "";
      this.drawOverlay();
    }
  }

  /** Keyboard shortcuts; returns true when the key was handled. */
  handleKey(e: KeyboardEvent): boolean {
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (mod && key === "z") {
      if (e.shiftKey) this.redo();
      else this.undo();
      return true;
    }
    if (mod && key === "y") {
      this.redo();
      return true;
    }
    if (mod || e.altKey) return false;
    if (e.key === "[") this.changeSize(-1);
    else if (e.key === "]") this.changeSize(1);
    else if (e.key === "Enter") this.finishShape();
    else if (e.key === "Escape") this.cancelShape();
    else if (e.key === " ") this.spaceDown = true;
    else if (key === "x") this.toggleShapeValue();
    else if (key === "0") this.fitView();
    else if (key === "1") this.actualSize();
    else if (key === "+" || key === "=") this.zoomBy(1.25);
    else if (key === "-") this.zoomBy(0.8);
    else if (TOOL_KEYS[key]) this.setTool(TOOL_KEYS[key]!);
    else return false;
    return true;
  }

  handleKeyUp(e: KeyboardEvent): void {
    if (e.key === " ") this.spaceDown = false;
  }

  zoomBy(factor: number): void {
    this.view = zoomAt(this.view, this.cssSize.width / 2, this.cssSize.height / 2, factor);
  }

  destroy(): void {
    this.resizeObserver.disconnect();
    this.renderer.destroy();
    if (this.overlayFrame) cancelAnimationFrame(this.overlayFrame);
  }

  // ------------------------------------------------------------------ input

  private local(e: { clientX: number; clientY: number }): { x: number; y: number } {
    const box = this.canvas.getBoundingClientRect();
    return { x: e.clientX - box.left, y: e.clientY - box.top };
  }

  private toImage(e: { clientX: number; clientY: number }): Point {
    const s = this.local(e);
    return screenToImage(this.view, s.x, s.y);
  }

  private onPointerDown = (e: PointerEvent): void => {
    this.root.setPointerCapture(e.pointerId);
    const s = this.local(e);
    if (e.button === 1 || e.button === 2 || this.spaceDown) {
      this.panning = s;
      return;
    }
    if (e.button !== 0) return;
    const p = this.toImage(e);
    this.moveTo(p);
    if (this.vertices.length === 0 && !this.strokePoints) this.actionStart = performance.now();
    switch (this.tool) {
      case "brush":
      case "eraser": {
        this.strokeValue = this.tool === "brush" ? 1 : 0;
        this.strokePoints = [p];
        this.strokeDirty = stroke(this.mask, [p], this.brushSize, this.strokeValue);
        this.renderer.maskChanged(this.strokeDirty);
        break;
      }
      case "rethreshold":
        // Applied when the stroke ends: the preview shows where it goes meanwhile.
        this.strokePoints = [p];
        this.drawOverlay();
        break;
      case "polygon":
      case "polyline":
      case "trace":
        this.vertices.push(p);
        this.fixedTrace = null;
        this.drawOverlay();
        break;
      case "fill":
        this.commit({ tool: "fill", points: [p], size: 0, value: this.shapeValue }, floodFill(this.mask, p.x, p.y, this.shapeValue), true, {
          clicks: 1,
          width_px: CLICK_TARGET_PX,
        });
        break;
      case "grow":
      case "remove":
        this.useAssisted(this.tool, [p]);
        this.preview = null;
        this.previewKey = "";
        this.drawOverlay();
        break;
    }
  };

  /** Follows the pointer in image coordinates: travel with no button down counts as pointing. */
  private moveTo(p: Point): void {
    const last = this.lastImagePoint;
    if (last && !this.strokePoints) this.travel += Math.hypot(p.x - last.x, p.y - last.y);
    this.lastImagePoint = p;
  }

  private onPointerMove = (e: PointerEvent): void => {
    const s = this.local(e);
    this.pointer = s;
    if (this.panning) {
      this.view = pan(this.view, s.x - this.panning.x, s.y - this.panning.y);
      this.panning = s;
      return;
    }
    if (this.strokePoints) {
      // Every sampled position counts, not just one per frame, so fast strokes stay exact.
      const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
      for (const ev of events.length ? events : [e]) this.extendStroke(this.toImage(ev));
    } else {
      this.moveTo(this.toImage(e));
    }
    this.drawOverlay();
  };

  private extendStroke(p: Point): void {
    const pts = this.strokePoints!;
    const last = pts[pts.length - 1]!;
    if (last.x === p.x && last.y === p.y) return;
    pts.push(p);
    this.lastImagePoint = p;
    if (this.tool === "rethreshold") return;
    const r = stroke(this.mask, [last, p], this.brushSize, this.strokeValue);
    this.strokeDirty = unionRect(this.strokeDirty, r);
    this.renderer.maskChanged(r);
  }

  private onPointerUp = (e: PointerEvent): void => {
    if (this.root.hasPointerCapture(e.pointerId)) this.root.releasePointerCapture(e.pointerId);
    this.panning = null;
    if (this.strokePoints && this.tool === "rethreshold") {
      const points = this.strokePoints;
      this.strokePoints = null;
      if (this.probability) {
        const edit = rethreshold(this.mask, this.probability, points, this.brushSize, this.threshold);
        const rect = applyEdit(this.mask, edit);
        this.commit({ tool: "rethreshold", points, size: this.brushSize, value: 1 }, rect, true, {
          clicks: 1,
          width_px: this.brushSize,
          path_px: polylineLength(points),
        });
      }
    } else if (this.strokePoints) {
      const record: EditRecord = {
        tool: this.strokeValue ? "brush" : "eraser",
        points: this.strokePoints,
        size: this.brushSize,
        value: this.strokeValue,
      };
      const dirty = this.strokeDirty;
      this.strokePoints = null;
      this.strokeDirty = null;
      this.commit(record, dirty, false, { clicks: 1, width_px: this.brushSize, path_px: polylineLength(record.points) });
    }
  };

  private onPointerLeave = (): void => {
    this.pointer = null;
    this.drawOverlay();
  };

  private onDoubleClick = (e: MouseEvent): void => {
    if (this.tool !== "polygon" && this.tool !== "polyline" && this.tool !== "trace") return;
    e.preventDefault();
    // The double-click's two clicks each added a vertex at the same place: drop one.
    const v = this.vertices;
    if (v.length >= 2) {
      const a = v[v.length - 1]!;
      const b = v[v.length - 2]!;
      if (Math.abs(a.x - b.x) < 1e-9 && Math.abs(a.y - b.y) < 1e-9) v.pop();
    }
    this.finishShape();
  };

  private onWheel = (e: WheelEvent): void => {
    e.preventDefault();
    const s = this.local(e);
    this.view = zoomAt(this.view, s.x, s.y, wheelFactor(e.deltaY, e.deltaMode));
  };

  // ------------------------------------------------------------------ edits

  /**
   * Records a finished edit: the history step, the geometry, and the action for the effort model
   * (an action that changed nothing is not recorded; its effort was real, but it made no edit).
   */
  private commit(
    record: EditRecord,
    dirty: Rect | null,
    repaint = true,
    action: { clicks: number; width_px: number; path_px?: number } = { clicks: 1, width_px: CLICK_TARGET_PX },
  ): void {
    if (repaint) this.renderer.maskChanged(dirty);
    if (this.history.commit(dirty, record.tool)) {
      this.edits.push(record);
      // Beyond MAX_ACTIONS the first ones are kept: the submission must never be refused for them.
      if (this.actions.length < MAX_ACTIONS) this.actions.push({
        tool: record.tool,
        clicks: action.clicks,
        travel_px: round1(this.travel),
        path_px: round1(action.path_px ?? 0),
        width_px: round1(action.width_px),
        ms: Math.min(MAX_ACTION_MS, Math.max(0, Math.round(performance.now() - this.actionStart))),
      });
      this.afterEdit(null);
    }
    this.travel = 0;
  }

  private afterEdit(repaint: Rect | null): void {
    this.maskVersion++;
    this.fixedTrace = null;
    if (repaint) this.renderer.maskChanged(repaint);
    this.opts.onEdit?.();
    this.emitState();
  }

  private emitState(): void {
    this.opts.onState?.(this.state());
  }

  // ------------------------------------------------------------------ overlay

  private drawOverlay(): void {
    if (this.overlayFrame) return;
    this.overlayFrame = requestAnimationFrame(() => {
      this.overlayFrame = 0;
      this.paintOverlay();
    });
  }

  private paintOverlay(): void {
    const ctx = this.overlay.getContext("2d");
    if (!ctx) return;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const v = this.view;
    if (this.vertices.length && this.tool !== "trace") {
      ctx.strokeStyle = this.shapeValue ? "#ffd400" : "#ff4d4d";
      ctx.lineWidth = this.tool === "polyline" ? Math.max(1, this.lineWidth * v.scale) : 1.5;
      ctx.lineJoin = ctx.lineCap = "round";
      ctx.beginPath();
      this.vertices.forEach((p, i) => {
        const s = imageToScreen(v, p.x, p.y);
        if (i === 0) ctx.moveTo(s.x, s.y);
        else ctx.lineTo(s.x, s.y);
      });
      if (this.pointer) ctx.lineTo(this.pointer.x, this.pointer.y);
      if (this.tool === "polygon") ctx.closePath();
      ctx.globalAlpha = 0.8;
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    this.paintAssistedPreview(ctx);
    if (this.pointer && (this.tool === "brush" || this.tool === "eraser" || this.tool === "rethreshold")) {
      ctx.strokeStyle = this.tool === "brush" ? "#fff" : this.tool === "eraser" ? "#ff6b6b" : "#ffd400";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.arc(this.pointer.x, this.pointer.y, Math.max(1, (this.brushSize / 2) * v.scale), 0, Math.PI * 2);
      ctx.stroke();
    }
  }

  /**
   * The preview of the assisted tool at the pointer, before the click commits it: grow's region
   * (yellow), remove's component (red), trace's path through the points so far and the pointer,
   * at the width it would draw, and the re-threshold stroke in progress.
   */
  private paintAssistedPreview(ctx: CanvasRenderingContext2D): void {
    const v = this.view;
    if (this.tool === "rethreshold" && this.strokePoints && this.strokePoints.length > 1) {
      this.pathOnScreen(ctx, this.strokePoints, this.brushSize * v.scale, "rgba(255, 212, 0, 0.35)");
      return;
    }
    if (!this.pointer || !["trace", "grow", "remove"].includes(this.tool)) return;
    const at = screenToImage(v, this.pointer.x, this.pointer.y);
    const key = `${this.tool}:${Math.floor(at.x)},${Math.floor(at.y)}:${this.vertices.length}:${this.maskVersion}`;
    if (key !== this.previewKey) {
      this.previewKey = key;
      const prob = this.probability;
      const last = this.vertices[this.vertices.length - 1];
      // The trace preview recomputes only the leg from the last point to the pointer; the path
      // through the points already clicked is computed once per point.
      if (this.tool === "trace" && prob && this.vertices.length >= 2 && !this.fixedTrace) this.fixedTrace = trace(this.mask, prob, this.vertices);
      this.preview =
        this.tool === "remove"
          ? remove(this.mask, at)
          : !prob
            ? null
            : this.tool === "grow"
              ? grow(this.mask, prob, at, { low: this.growLow })
              : last
                ? trace(this.mask, prob, [last, at])
                : null;
    }
    const edit = this.preview;
    if (!edit) return;
    if (edit.tool === "trace") {
      if (this.fixedTrace && this.vertices.length >= 2) {
        this.pathOnScreen(ctx, this.fixedTrace.path, Math.max(1, this.fixedTrace.width * v.scale), "rgba(255, 212, 0, 0.7)");
      }
      this.pathOnScreen(ctx, edit.path, Math.max(1, edit.width * v.scale), "rgba(255, 212, 0, 0.7)");
      return;
    }
    ctx.fillStyle = edit.tool === "remove" ? "rgba(255, 77, 77, 0.75)" : "rgba(255, 212, 0, 0.75)";
    const s = Math.max(1, v.scale);
    for (let k = 0; k < edit.indices.length; k++) {
      const i = edit.indices[k]!;
      const x = i % this.mask.width;
      const p = imageToScreen(v, x, (i - x) / this.mask.width);
      ctx.fillRect(p.x, p.y, s, s);
    }
  }

  private pathOnScreen(ctx: CanvasRenderingContext2D, points: readonly Point[], width: number, colour: string): void {
    const v = this.view;
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.lineJoin = ctx.lineCap = "round";
    ctx.beginPath();
    points.forEach((p, i) => {
      const s = imageToScreen(v, p.x, p.y);
      if (i === 0) ctx.moveTo(s.x, s.y);
      else ctx.lineTo(s.x, s.y);
    });
    ctx.stroke();
  }
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/** Length of a polyline in image pixels. */
function polylineLength(points: readonly Point[]): number {
  let length = 0;
  for (let k = 1; k < points.length; k++) length += Math.hypot(points[k]!.x - points[k - 1]!.x, points[k]!.y - points[k - 1]!.y);
  return length;
}
