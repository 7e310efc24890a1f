// The Temporal client side of medloop: the connection, and the helpers the API and
// the CLI call to start and steer campaigns and to hand a doctor's submission to its
// task workflow. Errors come out as AppError (services/errors.ts) so the API maps them
// to HTTP statuses: a refused update → 409, an unknown workflow → 404, no server → 503.
import {
  Client,
  Connection,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from "@temporalio/client";
import { WorkflowExecutionAlreadyStartedError, defaultPayloadConverter } from "@temporalio/common";
import { z } from "zod";
import type { CampaignWorkflows } from "./campaigns.js";
import { loadConfig } from "./config.js";
import { AppError, conflict, notFound } from "./errors.js";
import type { NotifyReview } from "./reviews.js";
import type { NotifySubmission } from "./tasks.js";
import {
  DEFAULT_CAMPAIGN_CONFIG,
  TASK_QUEUE,
  approveModelUpdate,
  campaignWorkflowId,
  pauseUpdate,
  resumeUpdate,
  pullUpdate,
  restartFromUpdate,
  setKUpdate,
  statusQuery,
  stopUpdate,
  trainerStatusQuery,
  trainerWorkflowId,
  REVIEW_NOT_RECORDED_YET,
  TASK_NOT_ASSIGNED_YET,
  reviewUpdate,
  submitUpdate,
  taskStatusQuery,
  type AnnotationTaskResult,
  type CampaignConfig,
  type CampaignStatus,
  type PullResult,
  type RoundSummary,
  type TrainerStatus,
  type SubmitInput,
  type SubmitResult,
  type TaskStatus,
} from "../workflows/types.js";

export { TASK_QUEUE };

/** Connects to the Temporal frontend of MEDLOOP_TEMPORAL_ADDRESS (or the given one). */
export async function connectTemporal(address?: string, namespace?: string): Promise<Client> {
  const config = loadConfig();
  const target = address ?? config.temporalAddress;
  try {
    const connection = await Connection.connect({ address: target });
    return new Client({ connection, namespace: namespace ?? config.temporalNamespace });
  } catch (err) {
    throw new AppError("workflow_unavailable", `cannot reach Temporal at ${target}: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------- campaign configuration

const ms = z.number().int().positive();
const augmentStep = z.union([
  z.object({ op: z.literal("flip"), modes: z.array(z.enum(["none", "h", "v", "hv"])).min(1) }),
  z.object({ op: z.literal("random_crop"), size: z.tuple([z.number().int().positive(), z.number().int().positive()]), count: z.number().int().min(1) }),
  z.object({ op: z.literal("rotate90"), ks: z.array(z.number().int()).min(1) }),
  z.object({ op: z.literal("intensity"), brightness: z.number().min(0), contrast: z.number().min(0).lt(1), p: z.number().min(0).max(1).optional() }),
  z.object({ op: z.literal("elastic"), alpha: z.number().min(0), sigma: z.number().positive(), p: z.number().min(0).max(1).optional() }),
]);

/** A campaign configuration as the API accepts it: every field optional, defaults filled in. */
export const campaignConfigSchema = z
  .object({
    k: z.number().int().min(1).max(1000),
    strategy: z.enum(["uncertainty", "diverse", "random"]),
    seed: z.number().int(),
    maxRounds: z.number().int().min(1).max(100),
    targetF1: z.number().min(0).max(1),
    requireApproval: z.boolean(),
    augmentation: z.object({ seed: z.number().int(), steps: z.array(augmentStep) }),
    // The engine trains for a budget of either epochs or minutes, never both (TrainConfig).
    train: z
      .record(z.string(), z.unknown())
      .refine((t) => t.epochs === undefined || t.minutes === undefined, "give either epochs or minutes as the training budget, not both"),
    threshold: z.number().gt(0).lt(1),
    taskTiming: z.object({ remindAfterMs: ms, escalateAfterMs: ms, maxReassignments: z.number().int().min(0) }).strict().partial(),
    trainTimeoutMs: ms,
    heartbeatTimeoutMs: ms,
    predictTimeoutMs: ms,
    mode: z.enum(["rounds", "continuous"]),
    labelBudget: z.number().int().min(1).max(1_000_000),
    coldStartPulls: z.number().int().min(0).max(1_000_000),
    annotatorsPerSeed: z.number().int().min(1).max(10),
    doubleCorrectionFraction: z.number().min(0).max(1),
    consensus: z.enum(["staple", "majority"]),
    review: z.boolean(),
    honeypotsPerRound: z.number().int().min(0).max(100),
  })
  .strict()
  .partial();

export function resolveCampaignConfig(raw: unknown): CampaignConfig {
  const parsed = campaignConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join(".") : "config";
    throw new AppError("validation_failed", `campaign config: ${where}: ${issue?.message ?? "invalid"}`);
  }
  const taskTiming = { ...DEFAULT_CAMPAIGN_CONFIG.taskTiming, ...parsed.data.taskTiming };
  if (parsed.data.mode === "continuous" && parsed.data.requireApproval) {
    // Continuous mode publishes each model for pre-annotation as it is trained; approval stays for deployment.
    throw new AppError("validation_failed", "campaign config: requireApproval: a continuous campaign does not wait for approval between models");
  }
  if (parsed.data.mode === "continuous") {
    // Pulled tasks are one image per doctor at a time; review, second corrections and honeypots are rounds-mode steps.
    for (const key of ["review", "doubleCorrectionFraction", "honeypotsPerRound"] as const) {
      if (parsed.data[key]) throw new AppError("validation_failed", `campaign config: ${key}: not available in continuous mode (rounds only)`);
    }
  }
  if (taskTiming.escalateAfterMs < taskTiming.remindAfterMs) {
    throw new AppError("validation_failed", "campaign config: taskTiming: escalateAfterMs must not be shorter than remindAfterMs");
  }
  return { ...DEFAULT_CAMPAIGN_CONFIG, ...parsed.data, taskTiming } as CampaignConfig;
}

// ---------------------------------------------------------------- campaign helpers

export interface StartCampaignInput {
  campaignId: string;
  projectId: string;
  config?: unknown;
}

export async function startCampaignWorkflow(
  client: Client,
  input: StartCampaignInput,
): Promise<{ workflowId: string; runId: string; config: CampaignConfig }> {
  const config = resolveCampaignConfig(input.config);
  const workflowId = campaignWorkflowId(input.campaignId);
  try {
    const handle = await client.workflow.start("campaign", {
      taskQueue: TASK_QUEUE,
      workflowId,
      args: [{ campaignId: input.campaignId, projectId: input.projectId, config }],
    });
    return { workflowId, runId: handle.firstExecutionRunId, config };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw conflict(`campaign ${input.campaignId} is already running`);
    throw err;
  }
}

/** Runs an update; a validator's refusal becomes a 409 naming the reason, an unknown id a 404. */
async function update<R>(run: () => Promise<R>, workflowId: string): Promise<R> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw conflict(updateFailure(err));
    }
    if (err instanceof WorkflowNotFoundError) throw notFound("workflow", workflowId);
    throw err;
  }
}

export function pauseCampaign(client: Client, workflowId: string): Promise<CampaignStatus> {
  return update(() => client.workflow.getHandle(workflowId).executeUpdate(pauseUpdate), workflowId);
}

export function resumeCampaign(client: Client, workflowId: string): Promise<CampaignStatus> {
  return update(() => client.workflow.getHandle(workflowId).executeUpdate(resumeUpdate), workflowId);
}

export function stopCampaign(client: Client, workflowId: string, reason?: string): Promise<CampaignStatus> {
  return update(() => client.workflow.getHandle(workflowId).executeUpdate(stopUpdate, { args: [{ reason }] }), workflowId);
}

export function approveModel(client: Client, workflowId: string, round: number, by?: string): Promise<RoundSummary> {
  return update(
    () => client.workflow.getHandle(workflowId).executeUpdate(approveModelUpdate, { args: [{ round, by }] }),
    workflowId,
  );
}

export function setCampaignK(client: Client, workflowId: string, k: number): Promise<{ previous: number; k: number }> {
  return update(() => client.workflow.getHandle(workflowId).executeUpdate(setKUpdate, { args: [{ k }] }), workflowId);
}

/** Progress of the activity the campaign is waiting on, read from the server (heartbeats). */
/** The `pull` Update of a continuous campaign: the next image for `doctorId` (refusals → 409 naming why). */
export function pullNextImage(client: Client, workflowId: string, doctorId: string): Promise<PullResult> {
  return update(() => client.workflow.getHandle(workflowId).executeUpdate(pullUpdate, { args: [{ doctorId }] }), workflowId);
}

/** The `restartFrom` Update of a correction task: it may now start from `versionId` (refusals → 409). */
export function restartTaskFrom(client: Client, workflowId: string, versionId: string): Promise<{ startVersionIds: string[] }> {
  const handle = client.workflow.getHandle(workflowId);
  return update(() => untilAssigned(() => handle.executeUpdate(restartFromUpdate, { args: [{ versionId }] })), workflowId);
}

export interface PendingActivity {
  activityType: string;
  attempt: number;
  state: string;
  /** The last heartbeat's details, e.g. `{epoch, epochs, loss, val_dice}` while training. */
  heartbeat: unknown;
  lastHeartbeatTime: string | null;
  lastFailure: string | null;
}

export interface CampaignStatusView extends CampaignStatus {
  workflowId: string;
  runId: string;
  workflowStatus: string;
  /** The campaign's pending activities, and in continuous mode its trainer's (the training heartbeat). */
  activities: PendingActivity[];
  /** Continuous mode: the trainer's own status; null when it is not running. */
  trainer?: TrainerStatus | null;
}

// temporal.api.enums.v1.PendingActivityState, without importing the proto package.
const ACTIVITY_STATES = ["UNSPECIFIED", "SCHEDULED", "STARTED", "CANCEL_REQUESTED", "PAUSED", "PAUSE_REQUESTED"];

function activityStateName(state: number | null | undefined): string {
  return ACTIVITY_STATES[state ?? 0] ?? String(state);
}

function decodeHeartbeat(details: { payloads?: unknown[] | null } | null | undefined): unknown {
  const first = details?.payloads?.[0];
  return first ? defaultPayloadConverter.fromPayload(first as never) : null;
}

function timestampToIso(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): string | null {
  if (!ts?.seconds) return null;
  return new Date(Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)).toISOString();
}

function pendingActivities(description: WorkflowExecutionDescription): PendingActivity[] {
  return (description.raw.pendingActivities ?? []).map(
    (a): PendingActivity => ({
      activityType: a.activityType?.name ?? "unknown",
      attempt: a.attempt ?? 1,
      state: activityStateName(a.state),
      heartbeat: decodeHeartbeat(a.heartbeatDetails),
      lastHeartbeatTime: timestampToIso(a.lastHeartbeatTime),
      lastFailure: a.lastFailure?.message ?? null,
    }),
  );
}

/** A continuous campaign's trainer: its status and pending activities; null once it has closed. */
async function trainerView(
  client: Client,
  campaignId: string,
  campaignActivities: PendingActivity[],
): Promise<{ trainer: TrainerStatus | null; activities: PendingActivity[] }> {
  const handle = client.workflow.getHandle(trainerWorkflowId(campaignId));
  try {
    const description = await handle.describe();
    if (description.status.name !== "RUNNING") return { trainer: null, activities: campaignActivities };
    const trainer = await handle.query(trainerStatusQuery);
    return { trainer, activities: [...campaignActivities, ...pendingActivities(description)] };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { trainer: null, activities: campaignActivities }; // still seeding
    throw err;
  }
}

/**
 * The campaign's status query, plus its pending activities as the server sees them. The
 * Python training activity's heartbeats never reach the workflow; describe() shows them.
 */
export async function queryCampaignStatus(client: Client, workflowId: string): Promise<CampaignStatusView> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    const [description, status] = await Promise.all([handle.describe(), handle.query(statusQuery)]);
    const activities = pendingActivities(description);
    const view: CampaignStatusView = { ...status, workflowId, runId: description.runId, workflowStatus: description.status.name, activities };
    if (status.mode === "continuous") Object.assign(view, await trainerView(client, status.campaignId, activities));
    return view;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw notFound("workflow", workflowId);
    throw err;
  }
}

// ---------------------------------------------------------------- tasks

export interface TaskSubmission {
  submissionId: string;
  versionId: string;
  activeMs: number;
  pixelsChanged?: number;
  parentVersionId?: string | null;
  width?: number;
  height?: number;
}

// The createTask activity writes the task row a moment before the workflow records the
// assignment; a submission in between is refused by the validator (refusals leave no history).
// Waiting and asking again, for up to about 6 s, turns that race into a short delay.
const NOT_ASSIGNED_WAITS_MS = [100, 200, 400, 800, 1600, 3200];
// The same race for a review: its row is written by the requestReview activity a moment before
// the workflow records which review it waits for.
const NOT_YET = [TASK_NOT_ASSIGNED_YET, REVIEW_NOT_RECORDED_YET];

async function executeSubmit(handle: WorkflowHandle, args: SubmitInput): Promise<SubmitResult> {
  return untilAssigned(() => handle.executeUpdate(submitUpdate, { args: [args], updateId: args.submissionId }));
}

/** Runs a task workflow's Update, asking again while the task's assignment is not recorded yet. */
async function untilAssigned<R>(run: () => Promise<R>): Promise<R> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const wait = NOT_ASSIGNED_WAITS_MS[attempt];
      if (wait === undefined || !(err instanceof WorkflowUpdateFailedError) || !NOT_YET.includes(updateFailure(err))) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

function updateFailure(err: WorkflowUpdateFailedError): string {
  return (err.cause as Error | undefined)?.message ?? err.message;
}

/**
 * Hands a stored submission to its task workflow (the `submit` update, whose id is the
 * submission id so that the server dedupes retries too). A repeat after the task has
 * completed returns the first result when the submission id matches.
 */
export async function submitTaskUpdate(client: Client, workflowId: string, submission: TaskSubmission): Promise<SubmitResult> {
  const handle = client.workflow.getHandle(workflowId);
  const args: SubmitInput = { ...submission };
  try {
    return await executeSubmit(handle, args);
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw conflict(updateFailure(err));
    }
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  // The workflow is closed (or unknown): a repeated submission of a completed task gets its result.
  const description = await handle.describe().catch((err: unknown) => {
    if (err instanceof WorkflowNotFoundError) throw notFound("task workflow", workflowId);
    throw err;
  });
  if (description.status.name !== "COMPLETED") throw conflict(`task is ${description.status.name.toLowerCase()}`);
  const result = (await handle.result()) as AnnotationTaskResult;
  if (result.submissionId !== submission.submissionId) throw conflict("task is already completed");
  const { taskId, submissionId, versionId, activeMs, pixelsChanged, waitedMs, doctorId } = result;
  return { taskId, submissionId, versionId, activeMs, pixelsChanged, waitedMs, doctorId };
}

export async function queryTaskStatus(client: Client, workflowId: string): Promise<TaskStatus> {
  try {
    return await client.workflow.getHandle(workflowId).query(taskStatusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw notFound("task workflow", workflowId);
    throw err;
  }
}

// ---------------------------------------------------------------- gateways for services/

/** The CampaignWorkflows gateway of services/campaigns.ts, on a connected client. */
export function campaignWorkflows(client: Client): CampaignWorkflows {
  return {
    start: async (input) => ({ workflowId: (await startCampaignWorkflow(client, input)).workflowId }),
    pause: (workflowId) => pauseCampaign(client, workflowId),
    resume: (workflowId) => resumeCampaign(client, workflowId),
    stop: (workflowId, reason) => stopCampaign(client, workflowId, reason),
    approve: (workflowId, round, by) => approveModel(client, workflowId, round, by),
    setK: (workflowId, k) => setCampaignK(client, workflowId, k),
    status: (workflowId) => queryCampaignStatus(client, workflowId),
    pull: (workflowId, doctorId) => pullNextImage(client, workflowId, doctorId),
    restartTask: (workflowId, versionId) => restartTaskFrom(client, workflowId, versionId),
  };
}

/** The NotifySubmission hook of services/tasks.ts: the `submit` update of the task's workflow. */
/**
 * Hands a stored review decision to its task workflow (the `review` update, whose id is derived
 * from the review, so a retried decision is deduplicated by the server as well). Errors: 409 the
 * workflow refused it (not the review it waits for); 404 no such workflow.
 */
export function reviewNotifier(client: Client): NotifyReview {
  return async (workflowId, review) => {
    const handle = client.workflow.getHandle(workflowId);
    try {
      return await untilAssigned(() => handle.executeUpdate(reviewUpdate, { args: [review], updateId: `review-${review.reviewId}` }));
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        // Still not recorded after the waits: the decision is stored; the client retries with the same id.
        if (updateFailure(err) === REVIEW_NOT_RECORDED_YET) throw new AppError("workflow_unavailable", `${REVIEW_NOT_RECORDED_YET}; retry with the same decision_id`);
        throw conflict(updateFailure(err));
      }
      if (err instanceof WorkflowNotFoundError) throw notFound("task workflow", workflowId);
      throw err;
    }
  };
}

export function submissionNotifier(client: Client): NotifySubmission {
  return async (workflowId, notice) => {
    await submitTaskUpdate(client, workflowId, notice);
  };
}
