// Where a workflow's time went, read from its Temporal history: activity execution intervals,
// their union over a span, and the model updates of a continuous campaign's trainer. Used by the
// benchmarks (benchmarks/orchestration.ts) and `medloop simulate` to measure the orchestration
// overhead: the part of a span in which no activity ran (workflow tasks, scheduling latency,
// signals), i.e. what Temporal and the workflow code cost on top of the real work.
import type { WorkflowHandle } from "@temporalio/client";

type History = Awaited<ReturnType<WorkflowHandle["fetchHistory"]>>;
export type HistoryEvent = NonNullable<History["events"]>[number];
/** [start, end] in epoch milliseconds. */
export type Interval = [number, number];

/** An event time (protobuf Timestamp) in epoch milliseconds. */
export const toMs = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  Number(ts?.seconds ?? 0) * 1000 + (ts?.nanos ?? 0) / 1e6;

export interface ActivityRun {
  type: string;
  scheduled: number;
  /** Start of the last attempt. */
  started: number;
  closed: number;
}

/** The activities of one run that started and closed: scheduled, started (last attempt) and closed times. */
export function activityRuns(events: HistoryEvent[]): ActivityRun[] {
  const byScheduled = new Map<string, ActivityRun>();
  for (const e of events) {
    const t = toMs(e.eventTime);
    if (e.activityTaskScheduledEventAttributes) {
      byScheduled.set(String(e.eventId), { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? "?", scheduled: t, started: NaN, closed: NaN });
    }
    const started = e.activityTaskStartedEventAttributes;
    const run = started ? byScheduled.get(String(started.scheduledEventId)) : undefined;
    if (run) run.started = t;
    const closed =
      e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
    const done = closed ? byScheduled.get(String(closed.scheduledEventId)) : undefined;
    if (done) done.closed = t;
  }
  return [...byScheduled.values()].filter((a) => Number.isFinite(a.started) && Number.isFinite(a.closed));
}

/** Length of the union of the intervals, clipped to [from, to]. */
export function unionMs(intervals: Interval[], from: number, to: number): number {
  const sorted = intervals
    .map(([a, b]): Interval => [Math.max(a, from), Math.min(b, to)])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let cur: Interval | null = null;
  for (const iv of sorted) {
    if (cur && iv[0] <= cur[1]) cur[1] = Math.max(cur[1], iv[1]);
    else {
      if (cur) total += cur[1] - cur[0];
      cur = [iv[0], iv[1]];
    }
  }
  return total + (cur ? cur[1] - cur[0] : 0);
}

export interface UpdateOverhead {
  /** The update's index in this history (the first update of the run is 0). */
  index: number;
  span_s: number;
  activities_s: number;
  overhead_s: number;
  overhead_percent: number;
}

/**
 * The model updates of a trainer history (workflows/trainer.ts): an update starts when the
 * workflow starts, when labels arrive while it is idle, or at the end of the previous update when
 * labels arrived during it; it ends when the trainer signals the published model. Per update:
 * its span, the union of the activities that ran in it, and the rest (the overhead).
 */
export function trainerUpdateOverheads(events: HistoryEvent[]): UpdateOverhead[] {
  const runs = activityRuns(events).map((a): Interval => [a.started, a.closed]);
  const out: UpdateOverhead[] = [];
  let spanStart: number | null = null;
  let labelsDuringUpdate = false;
  const round2 = (v: number) => Math.round(v * 100) / 100;
  for (const e of [...events].sort((a, b) => Number(a.eventId) - Number(b.eventId))) {
    const t = toMs(e.eventTime);
    if (e.workflowExecutionStartedEventAttributes) spanStart = t;
    else if (e.workflowExecutionSignaledEventAttributes) {
      if (spanStart === null) spanStart = t;
      else labelsDuringUpdate = true;
    } else if (e.signalExternalWorkflowExecutionInitiatedEventAttributes && spanStart !== null) {
      const span = t - spanStart;
      const busy = unionMs(runs, spanStart, t);
      out.push({
        index: out.length,
        span_s: round2(span / 1000),
        activities_s: round2(busy / 1000),
        overhead_s: round2((span - busy) / 1000),
        overhead_percent: span > 0 ? round2((100 * (span - busy)) / span) : 0,
      });
      spanStart = labelsDuringUpdate ? t : null;
      labelsDuringUpdate = false;
    }
  }
  return out;
}
