// Reading a trainer's history for its model updates and their orchestration overhead
// (services/workflowTiming.ts), on a hand-made history with known times.
import { describe, expect, it } from "vitest";
import { trainerUpdateOverheads, unionMs, type HistoryEvent } from "../../services/workflowTiming.js";

let nextId = 1;
const at = (s: number) => ({ seconds: String(Math.floor(s)), nanos: Math.round((s % 1) * 1e9) });
const ev = (s: number, fields: Record<string, unknown>): HistoryEvent => ({ eventId: String(nextId++), eventTime: at(s), ...fields }) as unknown as HistoryEvent;

/** An activity scheduled at `from`, started at from + 0.1 s and completed at `to`. */
function activity(from: number, to: number): HistoryEvent[] {
  const scheduled = ev(from, { activityTaskScheduledEventAttributes: { activityType: { name: "train_segmentation" } } });
  return [
    scheduled,
    ev(from + 0.1, { activityTaskStartedEventAttributes: { scheduledEventId: scheduled.eventId } }),
    ev(to, { activityTaskCompletedEventAttributes: { scheduledEventId: scheduled.eventId } }),
  ];
}

describe("trainer update overheads", () => {
  it("splits the history into updates and measures the time no activity ran", () => {
    nextId = 1;
    const events = [
      ev(0, { workflowExecutionStartedEventAttributes: {} }),
      ...activity(0.5, 50),
      ...activity(50.2, 60),
      ev(60.5, { signalExternalWorkflowExecutionInitiatedEventAttributes: {} }), // v0 published: 60.5 s, 59.1 s of activities (each started 0.1 s after it was scheduled)
      ev(100, { workflowExecutionSignaledEventAttributes: {} }), // labels while idle: update 1 starts
      ...activity(100.4, 150),
      ev(120, { workflowExecutionSignaledEventAttributes: {} }), // labels during update 1: update 2 follows at once
      ev(151, { signalExternalWorkflowExecutionInitiatedEventAttributes: {} }),
      ...activity(151.5, 171),
      ev(172, { signalExternalWorkflowExecutionInitiatedEventAttributes: {} }),
    ];
    const updates = trainerUpdateOverheads(events);
    expect(updates.map((u) => u.span_s)).toEqual([60.5, 51, 21]);
    expect(updates.map((u) => u.activities_s)).toEqual([59.1, 49.5, 19.4]);
    expect(updates.map((u) => u.overhead_s)).toEqual([1.4, 1.5, 1.6]);
    expect(updates[0]!.overhead_percent).toBeCloseTo((100 * 1.4) / 60.5, 1);
  });

  it("unions overlapping intervals inside the span only", () => {
    expect(unionMs([[0, 10], [5, 15], [20, 30]], 2, 25)).toBe(13 + 5);
    expect(unionMs([], 0, 10)).toBe(0);
  });
});
