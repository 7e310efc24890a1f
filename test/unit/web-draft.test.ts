import { describe, expect, it } from "vitest";
import { DraftKeeper, MemoryDraftBackend, type Draft } from "../../web/src/editor/draft.js";

function draft(taskId: string, fill: number): Draft {
  return {
    taskId,
    width: 4,
    height: 2,
    mask: new Uint8Array(8).fill(fill),
    activeMs: 1234,
    edits: 3,
    startedAt: "2026-01-01T00:00:00.000Z",
    submissionId: "00000000-0000-4000-8000-000000000001",
    savedAt: new Date().toISOString(),
  };
}

describe("local draft", () => {
  it("keeps the latest snapshot and drops it only on confirmation", async () => {
    const backend = new MemoryDraftBackend();
    const keeper = new DraftKeeper(backend, 10_000);
    keeper.schedule(() => draft("t1", 0));
    keeper.schedule(() => draft("t1", 1));
    expect(await backend.get("t1")).toBeNull(); // not written before the delay or a flush
    await keeper.flush();
    const saved = await backend.get("t1");
    expect(Array.from(saved!.mask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(saved!.submissionId).toBe("00000000-0000-4000-8000-000000000001");
    await keeper.confirm("t1");
    expect(await backend.get("t1")).toBeNull();
    keeper.schedule(() => draft("t1", 0));
    await keeper.flush();
    expect(await backend.get("t1")).toBeNull(); // nothing is saved after confirmation
  });

  it("saves on its own after the delay", async () => {
    const backend = new MemoryDraftBackend();
    const keeper = new DraftKeeper(backend, 5);
    keeper.schedule(() => draft("t2", 1));
    await new Promise((r) => setTimeout(r, 50));
    expect((await backend.get("t2"))?.edits).toBe(3);
  });
});
