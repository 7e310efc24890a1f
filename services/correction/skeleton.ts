// Binary-mask geometry the simulated doctor needs to see errors as a doctor does (as vessel
// segments with a course and a width, not as pixel counts): thinning to a one-pixel skeleton,
// distance to the background, 8-connected components, and the longest path through a component.
//
// Written here because no maintained JavaScript library offers them on plain typed arrays (the
// Python side would use scikit-image); they are short, classic algorithms:
// - thinning: Zhang & Suen, "A fast parallel algorithm for thinning digital patterns",
//   Communications of the ACM 27(3), 1984;
// - distance: the two-pass chamfer transform with weights 1 and √2 (Borgefors, "Distance
//   transformations in digital images", CVGIP 34, 1986), within 8% of the Euclidean distance.

/** A binary image: `data[y * width + x]` is 0 or 1. */
export interface Binary {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

const N8: ReadonlyArray<readonly [number, number]> = [
  [0, -1], [1, -1], [1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0], [-1, -1],
];

/**
 * Zhang–Suen thinning: a one-pixel-wide, 8-connected skeleton of the foreground.
 *
 * Only pixels next to the background can be removed, so each pass looks at the current border
 * (the pixels next to one removed in the pass before, and those kept so far) rather than the
 * whole image: the work grows with the foreground's area, not with area × thickness, and a mask
 * that is one large blob costs about as much as a thin one of the same area. The result is the
 * classic parallel algorithm's: every pass decides on the state before it.
 */
export function thin(image: Binary): Uint8Array {
  const { width: w, height: h } = image;
  const s = image.data.slice();
  const at = (x: number, y: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : s[y * w + x]!);
  const queued = new Uint8Array(s.length);
  let candidates: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (!s[i]) continue;
    const x = i % w;
    const y = (i - x) / w;
    if (at(x, y - 1) && at(x + 1, y - 1) && at(x + 1, y) && at(x + 1, y + 1) && at(x, y + 1) && at(x - 1, y + 1) && at(x - 1, y) && at(x - 1, y - 1)) continue;
    candidates.push(i);
    queued[i] = 1;
  }
  const drop: number[] = [];
  for (let changed = true; changed; ) {
    changed = false;
    for (const pass of [0, 1]) {
      drop.length = 0;
      for (const i of candidates) {
        if (!s[i]) continue;
        const x = i % w;
        const y = (i - x) / w;
        // P2..P9 clockwise from north.
        const p2 = at(x, y - 1);
        const p3 = at(x + 1, y - 1);
        const p4 = at(x + 1, y);
        const p5 = at(x + 1, y + 1);
        const p6 = at(x, y + 1);
        const p7 = at(x - 1, y + 1);
        const p8 = at(x - 1, y);
        const p9 = at(x - 1, y - 1);
        const b = p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9;
        if (b < 2 || b > 6) continue;
        const a =
          (p2 === 0 && p3 === 1 ? 1 : 0) + (p3 === 0 && p4 === 1 ? 1 : 0) + (p4 === 0 && p5 === 1 ? 1 : 0) + (p5 === 0 && p6 === 1 ? 1 : 0) +
          (p6 === 0 && p7 === 1 ? 1 : 0) + (p7 === 0 && p8 === 1 ? 1 : 0) + (p8 === 0 && p9 === 1 ? 1 : 0) + (p9 === 0 && p2 === 1 ? 1 : 0);
        if (a !== 1) continue;
        if (pass === 0 ? p2 * p4 * p6 === 0 && p4 * p6 * p8 === 0 : p2 * p4 * p8 === 0 && p2 * p6 * p8 === 0) drop.push(i);
      }
      if (drop.length === 0) continue;
      changed = true;
      for (const i of drop) s[i] = 0;
      // The kept candidates stay; the neighbours of removed pixels join them.
      const next = candidates.filter((i) => s[i]);
      for (const i of drop) {
        queued[i] = 0;
        const x = i % w;
        const y = (i - x) / w;
        for (const [dx, dy] of N8) {
          const u = x + dx;
          const v = y + dy;
          if (u < 0 || v < 0 || u >= w || v >= h) continue;
          const j = v * w + u;
          if (s[j] && !queued[j]) {
            queued[j] = 1;
            next.push(j);
          }
        }
      }
      candidates = next;
    }
  }
  return s;
}

/** Chamfer distance (1, √2) of every foreground pixel to the nearest background pixel; 0 on background. */
export function distanceToBackground(image: Binary): Float32Array {
  const { width: w, height: h, data } = image;
  const d = new Float32Array(w * h);
  const big = w + h;
  for (let i = 0; i < d.length; i++) d[i] = data[i] ? big : 0;
  const get = (x: number, y: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : d[y * w + x]!);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!d[i]) continue;
      d[i] = Math.min(d[i]!, get(x - 1, y) + 1, get(x, y - 1) + 1, get(x - 1, y - 1) + Math.SQRT2, get(x + 1, y - 1) + Math.SQRT2);
    }
  }
  for (let y = h - 1; y >= 0; y--) {
    for (let x = w - 1; x >= 0; x--) {
      const i = y * w + x;
      if (!d[i]) continue;
      d[i] = Math.min(d[i]!, get(x + 1, y) + 1, get(x, y + 1) + 1, get(x + 1, y + 1) + Math.SQRT2, get(x - 1, y + 1) + Math.SQRT2);
    }
  }
  return d;
}

/** 8-connected components of the pixels where `inside(i)` holds; each a list of pixel indices. */
export function components(width: number, height: number, inside: (i: number) => boolean, seeds?: Iterable<number>): number[][] {
  const seen = new Uint8Array(width * height);
  const out: number[][] = [];
  const starts = seeds ?? Array.from({ length: width * height }, (_, i) => i);
  for (const start of starts) {
    if (seen[start] || !inside(start)) continue;
    seen[start] = 1;
    const comp = [start];
    for (let q = 0; q < comp.length; q++) {
      const u = comp[q]!;
      const ux = u % width;
      const uy = (u - ux) / width;
      for (const [dx, dy] of N8) {
        const x = ux + dx;
        const y = uy + dy;
        if (x < 0 || y < 0 || x >= width || y >= height) continue;
        const v = y * width + x;
        if (seen[v] || !inside(v)) continue;
        seen[v] = 1;
        comp.push(v);
      }
    }
    out.push(comp);
  }
  return out;
}

/** Breadth-first distances (in steps) from `start` over `pixels`; returns [farthest, parents]. */
function sweep(pixels: Set<number>, width: number, start: number): [number, Map<number, number>] {
  const parent = new Map<number, number>([[start, -1]]);
  const queue = [start];
  let last = start;
  for (let q = 0; q < queue.length; q++) {
    const u = queue[q]!;
    last = u;
    const ux = u % width;
    const uy = (u - ux) / width;
    for (const [dx, dy] of N8) {
      const v = (uy + dy) * width + ux + dx;
      if (ux + dx < 0 || ux + dx >= width || !pixels.has(v) || parent.has(v)) continue;
      parent.set(v, u);
      queue.push(v);
    }
  }
  return [last, parent];
}

/**
 * The longest (in steps, by two breadth-first sweeps: exact on a tree, a good approximation on a
 * skeleton with small loops) path through an 8-connected set of pixels, as ordered indices.
 */
export function longestPath(pixels: readonly number[], width: number): number[] {
  if (pixels.length === 0) return [];
  const set = new Set(pixels);
  const [a] = sweep(set, width, pixels[0]!);
  const [b, parent] = sweep(set, width, a);
  const path: number[] = [];
  for (let v = b; v !== -1; v = parent.get(v)!) path.push(v);
  return path;
}

/** Number of skeleton neighbours of each skeleton pixel; 3 or more marks a branch point. */
export function isBranchPoint(skeleton: Uint8Array, width: number, height: number, i: number): boolean {
  const x = i % width;
  const y = (i - x) / width;
  let n = 0;
  for (const [dx, dy] of N8) {
    const u = x + dx;
    const v = y + dy;
    if (u >= 0 && v >= 0 && u < width && v < height && skeleton[v * width + u]) n++;
  }
  return n >= 3;
}

/** Length in pixels of a path of pixel indices (1 per straight step, √2 per diagonal one). */
export function pathLength(path: readonly number[], width: number): number {
  let length = 0;
  for (let k = 1; k < path.length; k++) {
    const a = path[k - 1]!;
    const b = path[k]!;
    length += (a % width !== b % width) && Math.floor(a / width) !== Math.floor(b / width) ? Math.SQRT2 : 1;
  }
  return length;
}
