import { describe, expect, it } from "vitest";
import { History } from "../../web/src/editor/history.js";
import { cloneMask, createMask, floodFill, stroke } from "../../services/correction/raster.js";

// Byte-for-byte copies compared as Buffers: whole 999×960 masks as arrays are slow to diff.
function snapshot(data: Uint8Array): Buffer {
  return Buffer.from(data);
}

describe("undo history", () => {
  it("undoes and redoes 60 strokes step by step on a 999×960 mask", () => {
    const mask = createMask(999, 960);
    const h = new History(mask, 100);
    const states: Buffer[] = [snapshot(mask.data)];
    for (let i = 0; i < 60; i++) {
      const y = 10 + i * 15;
      // Every seventh step erases across the strokes drawn so far.
      const dirty =
        i % 7 === 6
          ? stroke(mask, [{ x: 30 + i, y: 0 }, { x: 30 + i, y }], 6, 0)
          : stroke(mask, [{ x: 20 + i, y }, { x: 200 + i * 5, y: y + 7 }], 4 + (i % 5), 1);
      expect(h.commit(dirty)).toBe(true);
      states.push(snapshot(mask.data));
    }
    expect(h.undoDepth).toBeGreaterThanOrEqual(50);
    for (let i = states.length - 2; i >= 0; i--) {
      expect(h.undo()).not.toBeNull();
      expect(snapshot(mask.data).equals(states[i]!)).toBe(true);
    }
    expect(snapshot(mask.data).equals(states[0]!)).toBe(true);
    expect(h.undo()).toBeNull();
    for (let i = 1; i < states.length; i++) h.redo();
    expect(snapshot(mask.data).equals(states[states.length - 1]!)).toBe(true);
    expect(h.canRedo).toBe(false);
  });

  it("stores changed regions, not whole masks", () => {
    const mask = createMask(999, 960);
    const h = new History(mask);
    for (let i = 0; i < 60; i++) h.commit(stroke(mask, [{ x: 100 + i * 10, y: 100 }, { x: 100 + i * 10, y: 130 }], 5, 1));
    // 60 short strokes: far less than even one whole mask (959 040 bytes).
    expect(h.storedBytes).toBeLessThan(999 * 960 / 4);
    expect(h.storedBytes).toBeGreaterThan(0);
  });

  it("keeps at most `limit` steps, dropping the oldest", () => {
    const mask = createMask(100, 100);
    const h = new History(mask, 50);
    for (let i = 0; i < 60; i++) h.commit(stroke(mask, [{ x: i + 0.5, y: 50.5 }], 1, 1));
    expect(h.undoDepth).toBe(50);
    while (h.undo()) {
      /* undo everything kept */
    }
    // The ten oldest dots can no longer be undone.
    for (let i = 0; i < 60; i++) expect(mask.data[50 * 100 + i]).toBe(i < 10 ? 1 : 0);
  });

  it("records nothing when an edit changed no pixel", () => {
    const mask = createMask(20, 20);
    const h = new History(mask);
    expect(h.commit(stroke(mask, [{ x: 5, y: 5 }], 3, 0))).toBe(false);
    expect(h.commit(null)).toBe(false);
    expect(h.canUndo).toBe(false);
  });

  it("a new edit after an undo clears the redo steps", () => {
    const mask = createMask(20, 20);
    const h = new History(mask);
    h.commit(stroke(mask, [{ x: 5, y: 5 }], 3, 1));
    h.commit(stroke(mask, [{ x: 15, y: 15 }], 3, 1));
    h.undo();
    expect(h.canRedo).toBe(true);
    h.commit(stroke(mask, [{ x: 5, y: 15 }], 3, 1));
    expect(h.canRedo).toBe(false);
    expect(h.redo()).toBeNull();
  });

  it("undoes a flood fill back to the exact previous mask", () => {
    const mask = createMask(50, 50);
    const h = new History(mask);
    h.commit(stroke(mask, [{ x: 10, y: 10 }, { x: 40, y: 10 }, { x: 40, y: 40 }, { x: 10, y: 40 }, { x: 10, y: 10 }], 3, 1));
    const before = cloneMask(mask);
    h.commit(floodFill(mask, 25, 25, 1));
    expect(snapshot(mask.data).equals(snapshot(before.data))).toBe(false);
    const rect = h.undo();
    expect(rect).not.toBeNull();
    expect(snapshot(mask.data).equals(snapshot(before.data))).toBe(true);
  });
});
