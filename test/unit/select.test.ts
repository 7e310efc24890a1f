import { describe, expect, it } from "vitest";
import { selectImages, type Candidate } from "../../activities/select.js";

const candidates: Candidate[] = [
  { imageId: "a", uncertainty: 0.2 },
  { imageId: "b", uncertainty: 0.9 },
  { imageId: "c", uncertainty: null },
  { imageId: "d", uncertainty: 0.9 },
  { imageId: "e", uncertainty: 0.5 },
  { imageId: "f", uncertainty: 0.1 },
];

describe("selectImages", () => {
  it("takes the most uncertain first, ties by image id, unscored images last", async () => {
    const { imageIds } = await selectImages({ strategy: "uncertainty", k: 6, seed: 1, round: 0, candidates });
    expect(imageIds).toEqual(["b", "d", "e", "a", "f", "c"]);
    expect((await selectImages({ strategy: "uncertainty", k: 2, seed: 1, round: 0, candidates })).imageIds).toEqual(["b", "d"]);
  });

  it("random is a deterministic function of seed and round, whatever the candidates' order", async () => {
    const pick = async (seed: number, round: number, list = candidates) =>
      (await selectImages({ strategy: "random", k: 3, seed, round, candidates: list })).imageIds;
    const first = await pick(7, 1);
    expect(first).toHaveLength(3);
    expect(new Set(first).size).toBe(3);
    expect(await pick(7, 1)).toEqual(first);
    expect(await pick(7, 1, [...candidates].reverse())).toEqual(first);
    // Over several seeds and rounds the picks differ (a constant choice would be no control at all).
    const variants = new Set<string>();
    for (let seed = 0; seed < 10; seed++) for (let round = 0; round < 3; round++) variants.add((await pick(seed, round)).join());
    expect(variants.size).toBeGreaterThan(5);
  });

  it("diverse keeps a near-duplicate of a picked image out of the batch and takes an unlike one", async () => {
    const grid = (v: number) => Array.from({ length: 64 }, (_, i) => (i < 32 ? v : 0));
    const pool = [
      { imageId: "a", uncertainty: 0.9, embedding: grid(0.8) },
      { imageId: "a-copy", uncertainty: 0.89, embedding: grid(0.79) }, // nearly the same image
      { imageId: "b", uncertainty: 0.7, embedding: Array.from({ length: 64 }, (_, i) => (i < 32 ? 0 : 0.8)) },
      { imageId: "c", uncertainty: 0.2, embedding: grid(0.1) },
    ];
    const pick = async (strategy: "uncertainty" | "diverse", list: Candidate[] = pool, k = 2) =>
      (await selectImages({ strategy, k, seed: 1, round: 0, candidates: list })).imageIds;
    expect(await pick("uncertainty")).toEqual(["a", "a-copy"]);
    expect(await pick("diverse")).toEqual(["a", "b"]);
    expect(await pick("diverse", [...pool].reverse())).toEqual(["a", "b"]); // whatever the order
    expect(await pick("diverse", pool, 1)).toEqual(["a"]); // the first pick is the most uncertain
    // Without embeddings (an engine that sends none) it is the uncertainty order.
    expect(await pick("diverse", pool.map(({ embedding: _e, ...c }) => c))).toEqual(["a", "a-copy"]);
  });

  it("diverse keeps a pull away from the images other doctors hold open (chosen), which it never returns", async () => {
    const grid = (v: number) => Array.from({ length: 64 }, (_, i) => (i < 32 ? v : 0));
    const open = { imageId: "a", uncertainty: 0.9, embedding: grid(0.8) }; // being corrected by another doctor
    const free = [
      { imageId: "a-copy", uncertainty: 0.89, embedding: grid(0.79) },
      { imageId: "b", uncertainty: 0.7, embedding: Array.from({ length: 64 }, (_, i) => (i < 32 ? 0 : 0.8)) },
    ];
    const next = (strategy: "uncertainty" | "diverse", chosen: Candidate[]) =>
      selectImages({ strategy, k: 1, seed: 1, round: 0, candidates: free, chosen }).then((r) => r.imageIds);
    expect(await next("diverse", [open])).toEqual(["b"]);
    expect(await next("diverse", [])).toEqual(["a-copy"]); // nothing open: the most uncertain
    expect(await next("uncertainty", [open])).toEqual(["a-copy"]); // uncertainty alone ignores what is open
  });

  it("returns every candidate when k exceeds the pool", async () => {
    const { imageIds } = await selectImages({ strategy: "random", k: 50, seed: 3, round: 2, candidates });
    expect([...imageIds].sort()).toEqual(["a", "b", "c", "d", "e", "f"]);
  });

  it("refuses bad input with a clear, non-retryable error", async () => {
    const base = { strategy: "uncertainty" as const, k: 1, seed: 1, round: 0, candidates };
    await expect(selectImages({ ...base, k: 0 })).rejects.toThrow("k must be an integer >= 1");
    await expect(selectImages({ ...base, strategy: "greedy" as never })).rejects.toThrow('unknown strategy "greedy"');
    await expect(selectImages({ ...base, candidates: [...candidates, candidates[0]!] })).rejects.toThrow("duplicate image id");
    await expect(selectImages({ ...base, k: 1.5 })).rejects.toMatchObject({ nonRetryable: true });
  });
});

describe("coverage (the cold start of a continuous campaign)", () => {
  const at = (x: number, y: number) => Array.from({ length: 64 }, (_, i) => (i === 0 ? x : i === 1 ? y : 0));
  const pool: Candidate[] = [
    { imageId: "centre", uncertainty: 0.1, embedding: at(0.5, 0.5) },
    { imageId: "near-centre", uncertainty: 0.9, embedding: at(0.55, 0.5) },
    { imageId: "left", uncertainty: 0.2, embedding: at(0, 0.5) },
    { imageId: "right", uncertainty: 0.3, embedding: at(1, 0.5) },
  ];
  const cover = (k: number, chosen: Candidate[] = [], list = pool) =>
    selectImages({ strategy: "coverage", k, seed: 1, round: 0, candidates: list, chosen }).then((r) => r.imageIds);

  it("starts from the most typical image and then takes the farthest, whatever the uncertainty", async () => {
    expect(await cover(3)).toEqual(["centre", "left", "right"]); // the mean is (0.51, 0.5): centre is closest
    // With an image already taken near the left, the farthest free one comes first.
    expect(await cover(1, [{ imageId: "open", uncertainty: null, embedding: at(0.05, 0.5) }])).toEqual(["right"]);
  });

  it("falls back to the uncertainty order without embeddings", async () => {
    expect(await cover(2, [], pool.map(({ embedding: _e, ...c }) => c))).toEqual(["near-centre", "right"]);
  });
});
