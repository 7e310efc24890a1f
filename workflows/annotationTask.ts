// One doctor's task: create it, assign a doctor, e-mail a signed link, remind
// after `remindAfterMs`, escalate and reassign after `escalateAfterMs`, and
// accept the submission through the `submit` update. The mask is stored by the
// API (services/) before the update is sent, so the update carries its version id.
// Where the campaign asks for review, the submission then waits for a reviewer's `review`
// update: accepted, the task completes; returned, it reopens for the doctor from the submitted
// mask (the reviewer's comment and region are in the review's row) and waits again. A honeypot
// task's accepted mask is scored against the image's reference mask.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from "@temporalio/workflow";
import type { StoreActivities } from "../activities/store.js";
import type { NotifyActivities } from "../activities/notify.js";
import {
  DEFAULT_TASK_TIMING,
  REVIEW_NOT_RECORDED_YET,
  TASK_NOT_ASSIGNED_YET,
  restartFromUpdate,
  reviewUpdate,
  submitUpdate,
  taskStatusQuery,
  type AnnotationTaskInput,
  type AnnotationTaskResult,
  type Doctor,
  type ReviewDecision,
  type SubmitInput,
  type SubmitResult,
  type TaskStatus,
  type TaskTiming,
} from "./types.js";

/**
 * The task's activities run to their end even when the task is cancelled (the campaign was
 * stopped): a half-made assignment or an e-mail cut off helps nobody. Cancellation takes
 * effect at the next durable wait instead, and the task is then marked cancelled.
 */
function runToEnd<T extends object>(activities: T): T {
  return new Proxy(activities, {
    get(target, name) {
      const fn = Reflect.get(target, name) as (...args: unknown[]) => Promise<unknown>;
      return (...args: unknown[]) => CancellationScope.nonCancellable(() => fn(...args));
    },
  });
}

/**
 * The same activities for the waits that last as long as their cause: no doctor in the project
 * yet (createTask), the mail server down (notify). Retried by Temporal without end, a stop could
 * never reach a task held there, and a campaign whose open tasks were all held never finished
 * stopping. Here Temporal retries an activity a few times only, and the workflow waits between
 * such rounds on a timer, where a stop reaches the task: the timer is cancelled and the task
 * ends cancelled. Each attempt still runs to its end and its result is kept. No activity is
 * cancelled (a cancel request racing the activity's completion left the task's workflow task
 * unanswered on Temporal's test server). Histories from before (no marker) replay as before.
 */
function untilStopped<T extends object>(toEnd: T, bounded: T): T {
  return new Proxy(toEnd, {
    get(_target, name) {
      return (...args: unknown[]) => {
        const call = (activities: T) => (Reflect.get(activities, name) as (...args: unknown[]) => Promise<unknown>)(...args);
        return patched("stop-ends-retries") ? retryUntilStopped(() => call(bounded)) : call(toEnd);
      };
    },
  });
}

/** Between rounds of attempts: 20 s at first, doubling up to 30 minutes (where Temporal's own retries stood). */
const ROUND_WAIT_MS = { first: 20_000, max: 30 * 60_000 };

/** Calls `attempt` until it succeeds or fails for good (a non-retryable failure), waiting on a cancellable timer in between. */
async function retryUntilStopped<R>(attempt: () => Promise<R>): Promise<R> {
  for (let waitMs = ROUND_WAIT_MS.first; ; waitMs = Math.min(2 * waitMs, ROUND_WAIT_MS.max)) {
    try {
      return await attempt();
    } catch (err) {
      const final = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable;
      if (!(err instanceof ActivityFailure) || final) throw err;
    }
    await sleep(waitMs); // a stop cancels the timer: the task ends here, cancelled
  }
}

// Without `round`, retried without end: what histories from before `stop-ends-retries` replay.
const STORE_OPTIONS = {
  startToCloseTimeout: "1 minute",
  retry: { initialInterval: "5 seconds", maximumInterval: "30 minutes" },
} as const;
const NOTIFY_OPTIONS = {
  startToCloseTimeout: "2 minutes",
  retry: { initialInterval: "10 seconds", maximumInterval: "30 minutes" },
} as const;

/** Three attempts per round (5 and 10 s apart for the store, 10 and 20 s for e-mail), then the workflow's wait. */
function round<O extends typeof STORE_OPTIONS | typeof NOTIFY_OPTIONS>(options: O): O {
  return { ...options, retry: { ...options.retry, maximumAttempts: 3 } };
}

const store = runToEnd(proxyActivities<StoreActivities>(STORE_OPTIONS));
const storeUntilStopped = untilStopped(store, runToEnd(proxyActivities<StoreActivities>(round(STORE_OPTIONS))));
const notify = untilStopped(
  runToEnd(proxyActivities<NotifyActivities>(NOTIFY_OPTIONS)),
  runToEnd(proxyActivities<NotifyActivities>(round(NOTIFY_OPTIONS))),
);

/** Why a submission is refused, or null when it is acceptable. Pure, for the validator. */
export function submissionProblem(
  input: AnnotationTaskInput,
  accepted: SubmitResult | null,
  s: SubmitInput,
  restarts: readonly string[] = [],
): string | null {
  if (typeof s?.submissionId !== "string" || s.submissionId.length === 0) return "submissionId is missing";
  if (typeof s.versionId !== "string" || s.versionId.length === 0) return "versionId is missing";
  if (accepted) {
    return accepted.submissionId === s.submissionId ? null : "task is already completed";
  }
  if (!Number.isFinite(s.activeMs) || s.activeMs < 0) return "activeMs must be a number >= 0";
  if (s.pixelsChanged != null && (!Number.isInteger(s.pixelsChanged) || s.pixelsChanged < 0)) {
    return "pixelsChanged must be an integer >= 0";
  }
  // A doctor may start from the expected parent (or a newer prediction the task restarted from)
  // or from scratch (null), never from another version.
  const expected = input.parentVersionId ?? null;
  if (s.parentVersionId != null && s.parentVersionId !== expected && !restarts.includes(s.parentVersionId)) {
    return `stale version: expected parent ${[expected ?? "none", ...restarts].join(" or ")}, got ${s.parentVersionId ?? "none"}`;
  }
  const { width, height } = input.image;
  if (width != null && s.width != null && (s.width !== width || s.height !== height)) {
    return `mask is ${s.width}x${s.height}, image is ${width}x${height}`;
  }
  return null;
}

export async function annotationTask(input: AnnotationTaskInput): Promise<AnnotationTaskResult> {
  const timing: TaskTiming = { ...DEFAULT_TASK_TIMING, ...input.timing };
  const status: TaskStatus = {
    taskId: null,
    phase: "creating",
    doctorId: null,
    reminders: 0,
    reassignments: 0,
    submission: null,
    reviewId: null,
    returned: 0,
  };
  let firstAssignedAt = Date.now(); // workflow time: deterministic
  const restarts: string[] = [];
  // Submissions a reviewer returned, by submission id: a retry of one gets its first answer back
  // instead of being taken as a new submission.
  const returnedSubmissions = new Map<string, SubmitResult>();
  const decisions = new Map<string, ReviewDecision>();
  setHandler(
    reviewUpdate,
    ({ reviewId, decision }) => {
      if (!decisions.has(reviewId)) decisions.set(reviewId, decision);
      return { reviewId, decision: decisions.get(reviewId) as ReviewDecision };
    },
    {
      validator: (arg) => {
        if (typeof arg?.reviewId !== "string" || !["accept", "return"].includes(arg?.decision)) throw new Error("reviewId and decision (accept or return) are required");
        if (decisions.has(arg.reviewId)) return; // a retried decision: answered again
        if (status.phase === "in_review" && status.reviewId === null) throw new Error(REVIEW_NOT_RECORDED_YET);
        if (status.phase !== "in_review" || status.reviewId !== arg.reviewId) throw new Error(`review ${arg.reviewId} is not the one task ${status.taskId ?? ""} waits for`);
      },
    },
  );
  setHandler(taskStatusQuery, () => status);
  setHandler(
    restartFromUpdate,
    ({ versionId }) => {
      if (!restarts.includes(versionId)) restarts.push(versionId);
      return { startVersionIds: [...(input.parentVersionId ? [input.parentVersionId] : []), ...restarts] };
    },
    {
      validator: (arg) => {
        if (typeof arg?.versionId !== "string" || arg.versionId.length === 0) throw new Error("versionId is missing");
        if (input.kind !== "correct") throw new Error("only a correction task starts from a prediction");
        if (status.phase === "creating" || status.taskId === null) throw new Error(TASK_NOT_ASSIGNED_YET);
        if (status.phase !== "assigned" || status.submission) throw new Error(`task is ${status.submission ? "submitted" : status.phase}`);
      },
    },
  );
  setHandler(
    submitUpdate,
    (s: SubmitInput): SubmitResult => {
      // A repeated submission id gets the first answer back (idempotent retries).
      const earlier = returnedSubmissions.get(s.submissionId);
      if (earlier) return earlier;
      if (status.submission) return status.submission;
      status.submission = {
        taskId: status.taskId ?? "",
        submissionId: s.submissionId,
        versionId: s.versionId,
        activeMs: s.activeMs,
        pixelsChanged: s.pixelsChanged ?? null,
        waitedMs: Date.now() - firstAssignedAt,
        doctorId: status.doctorId ?? "",
      };
      return status.submission;
    },
    {
      validator: (s: SubmitInput) => {
        if (status.phase === "creating" || status.taskId === null) throw new Error(TASK_NOT_ASSIGNED_YET);
        if (status.phase === "cancelled") throw new Error("task was cancelled");
        if (returnedSubmissions.has(s?.submissionId)) return;
        if (status.phase === "in_review" && status.submission?.submissionId !== s?.submissionId) throw new Error("task is in review");
        const problem = submissionProblem(input, status.submission, s, restarts);
        if (problem) throw new Error(problem);
      },
    },
  );

  // A task always has an assignee. The createTask activity picks the least-loaded doctor and
  // stores the task under one lock, so tasks started together (a campaign's seed tasks) are
  // spread evenly. Histories from before that change picked the doctor in a separate activity
  // first, and concurrent picks saw the same loads (six seed tasks once went 5:1).
  const newTask = {
    workflowId: workflowInfo().workflowId,
    campaignId: input.campaignId,
    projectId: input.projectId,
    imageId: input.image.imageId,
    round: input.round,
    kind: input.kind,
    startVersionId: input.parentVersionId ?? null,
    ...(input.honeypot ? { honeypot: true } : {}),
  };
  let first: Doctor;
  let taskId: string;
  let dueAt: string;
  if (patched("assign-in-create-task")) {
    dueAt = new Date(Date.now() + timing.escalateAfterMs).toISOString();
    // A pulled image goes to the doctor who pulled it (continuous campaigns).
    const created = await storeUntilStopped.createTask({ ...newTask, assigneeId: input.assigneeId ?? null, dueAt });
    taskId = created.taskId;
    first = created.assignee;
  } else {
    first = await pickDoctor(input, null);
    dueAt = new Date(Date.now() + timing.escalateAfterMs).toISOString();
    ({ taskId } = await store.createTask({ ...newTask, assigneeId: first.userId, dueAt }));
  }
  status.taskId = taskId;
  status.doctorId = first.userId;
  status.phase = "assigned";
  firstAssignedAt = Date.now();
  try {
    await notifyDoctor(input, taskId, first, "assigned", dueAt);
    let doctor = await awaitSubmission(input, taskId, status, timing, first);
    while (input.review && (await awaitReview(taskId, status, timing, decisions)) === "return") {
      // Returned: the task reopens from the submitted mask and waits for the doctor again.
      const returned = status.submission as SubmitResult;
      returnedSubmissions.set(returned.submissionId, returned);
      if (!restarts.includes(returned.versionId)) restarts.push(returned.versionId);
      status.submission = null;
      status.reviewId = null;
      status.returned = (status.returned ?? 0) + 1;
      status.phase = "assigned";
      // The task row reopens only now that the workflow takes submissions again.
      await store.reopenTask({ taskId, versionId: returned.versionId });
      await notifyDoctor(input, taskId, doctor, "returned", null);
      doctor = await awaitSubmission(input, taskId, status, timing, doctor);
    }
  } catch (err) {
    if (isCancellation(err)) {
      status.phase = "cancelled";
      // The campaign was stopped: record it even though this scope is cancelled.
      await store.cancelTask({ taskId, reason: "campaign stopped" });
    }
    throw err;
  }
  const submission = status.submission as SubmitResult | null;
  if (!submission) throw new Error("unreachable: no submission");
  status.phase = "completing";
  const { maskUri } = await store.completeTask({
    taskId,
    versionId: submission.versionId,
    submissionId: submission.submissionId,
    activeMs: submission.activeMs,
  });
  if (input.honeypot) await store.scoreHoneypot({ taskId, versionId: submission.versionId });
  status.phase = "completed";
  return {
    ...submission,
    taskId,
    imageId: input.image.imageId,
    kind: input.kind,
    round: input.round,
    maskUri,
    reminders: status.reminders,
    reassignments: status.reassignments,
  };
}

/** A doctor other than `current`; `current` itself when nobody else is there. */
async function pickDoctor(input: AnnotationTaskInput, current: Doctor | null): Promise<Doctor> {
  const doctor = await store.pickDoctor({
    projectId: input.projectId,
    exclude: current ? [current.userId] : [],
    imageId: input.image.imageId,
    campaignId: input.campaignId,
  });
  if (doctor) return doctor;
  if (current) return current;
  // pickDoctor itself fails (and is retried) while the project has no doctor at all.
  throw ApplicationFailure.nonRetryable(`project ${input.projectId} has no doctor to assign`);
}

type Template = "assigned" | "reminder" | "reassigned_away" | "returned";

async function notifyDoctor(
  input: AnnotationTaskInput,
  taskId: string,
  to: Doctor,
  template: Template,
  dueAt: string | null,
): Promise<void> {
  await notify.sendTaskEmail({
    template,
    taskId,
    to,
    taskKind: input.kind,
    imageId: input.image.imageId,
    round: input.round,
    dueAt,
  });
}

/**
 * The review of the submission: records the review (the reviewers' queue shows it), then waits
 * for the decision, reminding the reviewers after `remindAfterMs` and, from `escalateAfterMs`
 * on, the lab leads too (activities/store.ts recordReviewReminder).
 */
async function awaitReview(
  taskId: string,
  status: TaskStatus,
  timing: TaskTiming,
  decisions: ReadonlyMap<string, ReviewDecision>,
): Promise<ReviewDecision> {
  const submission = status.submission as SubmitResult;
  status.phase = "in_review";
  const requested = await store.requestReview({ taskId, versionId: submission.versionId });
  const reviewId = requested.reviewId;
  status.reviewId = reviewId;
  // A decision the Update did not bring (decided while the activity above was retried, or stored
  // while Temporal could not be told) is read from the review's row: at once, and at each reminder.
  let stored: ReviewDecision | null = requested.decision ?? null;
  const decided = () => decisions.has(reviewId) || stored !== null;
  let waitedMs = 0;
  while (!(await condition(decided, timing.remindAfterMs))) {
    waitedMs += timing.remindAfterMs;
    const reminder = await store.recordReviewReminder({ reviewId, escalate: waitedMs >= timing.escalateAfterMs });
    stored = reminder.decision ?? null;
    if (stored === null && reminder.to.length > 0) await notify.sendReviewReminder({ reviewId, taskId, to: reminder.to });
  }
  return decisions.get(reviewId) ?? (stored as ReviewDecision);
}

/** The durable wait: remind, then escalate and reassign, until a submission is accepted; returns the doctor who holds the task. */
async function awaitSubmission(
  input: AnnotationTaskInput,
  taskId: string,
  status: TaskStatus,
  timing: TaskTiming,
  first: Doctor,
): Promise<Doctor> {
  let doctor = first;
  const submitted = () => status.submission !== null;
  for (;;) {
    if (await condition(submitted, timing.remindAfterMs)) return doctor;
    status.reminders += 1;
    await store.recordReminder({ taskId });
    await notifyDoctor(input, taskId, doctor, "reminder", null);
    const untilEscalation = Math.max(0, timing.escalateAfterMs - timing.remindAfterMs);
    if (await condition(submitted, untilEscalation)) return doctor;
    if (status.reassignments >= timing.maxReassignments) continue; // keep reminding the same doctor
    const next = await pickDoctor(input, doctor);
    if (next.userId === doctor.userId) continue; // nobody else: keep reminding
    const dueAt = new Date(Date.now() + timing.escalateAfterMs).toISOString();
    const moved = await store.reassignTask({ taskId, fromDoctorId: doctor.userId, toDoctorId: next.userId, dueAt });
    // Refused when another annotator of the image was given that doctor meanwhile: keep reminding.
    // (Histories from before this answer existed recorded no result: they go on as they did.)
    if (moved && moved.assigned === false) continue;
    status.reassignments += 1;
    status.doctorId = next.userId;
    await notifyDoctor(input, taskId, doctor, "reassigned_away", null);
    await notifyDoctor(input, taskId, next, "assigned", dueAt);
    doctor = next;
  }
}
