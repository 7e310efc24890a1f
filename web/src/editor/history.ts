// Undo/redo for the mask editor. Each step stores only the changed region: the tight
// bounding box of the pixels an edit changed, with the bytes before and after. A
// shadow copy of the mask as of the last step is kept to find that change, so a
// step costs two times its region, never a whole mask.

import type { Mask, Rect } from "../../../services/correction/raster.js";

interface Step {
  rect: Rect;
  before: Uint8Array;
  after: Uint8Array;
  label: string;
}

export const DEFAULT_HISTORY_LIMIT = 100;

export class History {
  private shadow: Uint8Array;
  private readonly undoStack: Step[] = [];
  private readonly redoStack: Step[] = [];

  constructor(
    private mask: Mask,
    readonly limit = DEFAULT_HISTORY_LIMIT,
  ) {
    if (limit < 1) throw new Error("history limit must be at least 1");
    this.shadow = mask.data.slice();
  }

  /** Forgets every step and takes the mask's current content as the starting point. */
  reset(mask: Mask = this.mask): void {
    this.mask = mask;
    this.shadow = mask.data.slice();
    this.undoStack.length = 0;
    this.redoStack.length = 0;
  }

  /**
   * Records the edit made to the mask inside `area` since the last step.
   * Returns false (and records nothing) when no pixel changed.
   */
  commit(area: Rect | null, label = "edit"): boolean {
    if (!area) return false;
    const rect = this.changedBox(area);
    if (!rect) return false;
    const before = this.copyRegion(this.shadow, rect);
    const after = this.copyRegion(this.mask.data, rect);
    this.writeRegion(this.shadow, rect, after);
    this.undoStack.push({ rect, before, after, label });
    if (this.undoStack.length > this.limit) this.undoStack.shift();
    this.redoStack.length = 0;
    return true;
  }

  /** Undoes the last step; returns the region to repaint, or null when there is none. */
  undo(): Rect | null {
    const step = this.undoStack.pop();
    if (!step) return null;
    this.writeRegion(this.mask.data, step.rect, step.before);
    this.writeRegion(this.shadow, step.rect, step.before);
    this.redoStack.push(step);
    return { ...step.rect };
  }

  redo(): Rect | null {
    const step = this.redoStack.pop();
    if (!step) return null;
    this.writeRegion(this.mask.data, step.rect, step.after);
    this.writeRegion(this.shadow, step.rect, step.after);
    this.undoStack.push(step);
    return { ...step.rect };
  }

  get canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  get canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  get undoDepth(): number {
    return this.undoStack.length;
  }

  get redoDepth(): number {
    return this.redoStack.length;
  }

  /** Bytes held by the stored steps (not counting the shadow copy). */
  get storedBytes(): number {
    let n = 0;
    for (const s of this.undoStack) n += s.before.length + s.after.length;
    for (const s of this.redoStack) n += s.before.length + s.after.length;
    return n;
  }

  // Tight box of the pixels that differ between mask and shadow inside `area`.
  private changedBox(area: Rect): Rect | null {
    const { width, height, data } = this.mask;
    const x0c = Math.max(0, area.x0);
    const y0c = Math.max(0, area.y0);
    const x1c = Math.min(width, area.x1);
    const y1c = Math.min(height, area.y1);
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (let y = y0c; y < y1c; y++) {
      const row = y * width;
      for (let x = x0c; x < x1c; x++) {
        if (data[row + x] !== this.shadow[row + x]) {
          if (x < x0) x0 = x;
          if (x >= x1) x1 = x + 1;
          if (y < y0) y0 = y;
          y1 = y + 1;
        }
      }
    }
    return x0 === Infinity ? null : { x0, y0, x1, y1 };
  }

  private copyRegion(src: Uint8Array, r: Rect): Uint8Array {
    const w = r.x1 - r.x0;
    const out = new Uint8Array(w * (r.y1 - r.y0));
    for (let y = r.y0; y < r.y1; y++) {
      const start = y * this.mask.width + r.x0;
      out.set(src.subarray(start, start + w), (y - r.y0) * w);
    }
    return out;
  }

  private writeRegion(dst: Uint8Array, r: Rect, bytes: Uint8Array): void {
    const w = r.x1 - r.x0;
    for (let y = r.y0; y < r.y1; y++) {
      dst.set(bytes.subarray((y - r.y0) * w, (y - r.y0 + 1) * w), y * this.mask.width + r.x0);
    }
  }
}
