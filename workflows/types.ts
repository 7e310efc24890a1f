// Shared input/output types and the signal/update/query definitions of the
// medloop workflows. Imported by the workflows (inside the sandbox), by the
// activities, by the worker and by the client helpers in services/temporal.ts,
// so this file holds only types and `define*` calls: no I/O, no Node APIs.
import { defineQuery, defineSignal, defineUpdate } from "@temporalio/workflow";

/** Task queue of the TypeScript worker (workflows and TypeScript activities). */
export const TASK_QUEUE = "medloop";
/** Task queue of the Python worker (ml/src/medloop_ml/worker.py). */
export const GPU_TASK_QUEUE = "gpu";

// ---------------------------------------------------------------- images

/** An image of a project, by URI only (never pixels). */
export interface ImageRef {
  imageId: string;
  imageUri: string;
  /** Reference mask (the truth for test images; absent for unlabelled pool images). */
  maskUri?: string;
  /** Field-of-view mask imported with the image; absent: the engine derives the FOV. */
  fovUri?: string;
  width?: number;
  height?: number;
}

/** An image with a mask a doctor accepted (a seed annotation or a correction). */
export interface LabelledImage {
  imageId: string;
  imageUri: string;
  maskUri: string;
  versionId: string;
  /** Its imported FOV mask, if any. */
  fovUri?: string;
}

export interface CampaignImages {
  seed: ImageRef[];
  pool: ImageRef[];
  test: ImageRef[];
}

// ---------------------------------------------------------------- augmentation

/** One step of the declarative augmentation pipeline (docs/architecture.md). */
export type AugmentStep =
  | { op: "flip"; modes: Array<"none" | "h" | "v" | "hv"> }
  | { op: "random_crop"; size: [number, number]; count: number }
  | { op: "rotate90"; ks: number[] }
  | { op: "intensity"; brightness: number; contrast: number; p?: number }
  | { op: "elastic"; alpha: number; sigma: number; p?: number };

export interface AugmentPipeline {
  seed: number;
  steps: AugmentStep[];
}

// ---------------------------------------------------------------- annotation task

export type TaskKind = "annotate" | "correct";

export interface TaskTiming {
  /** Milliseconds after an assignment before the doctor is reminded. */
  remindAfterMs: number;
  /** Milliseconds after an assignment before the task is escalated and reassigned. */
  escalateAfterMs: number;
  /** How many times the task may be reassigned; afterwards only reminders are sent. */
  maxReassignments: number;
}

export const DEFAULT_TASK_TIMING: TaskTiming = {
  remindAfterMs: 2 * 24 * 3600_000,
  escalateAfterMs: 5 * 24 * 3600_000,
  maxReassignments: 3,
};

export interface AnnotationTaskInput {
  campaignId: string;
  projectId: string;
  round: number;
  kind: TaskKind;
  image: ImageRef;
  /** The version a submission must build on (the prediction for a correction). */
  parentVersionId?: string;
  /** The prediction's mask for a correction task, shown to the doctor as the start. */
  predictionUri?: string;
  timing?: Partial<TaskTiming>;
  /** The doctor who pulled the image (continuous campaigns); absent: the least-loaded doctor. */
  assigneeId?: string;
  /**
   * A reviewer accepts the submitted mask or returns it to the doctor before the task completes
   * (campaign config `review`); absent: the submission completes the task.
   */
  review?: boolean;
  /** The image has a reference mask; the accepted mask is scored against it (campaign config `honeypotsPerRound`). */
  honeypot?: boolean;
}

export interface Doctor {
  userId: string;
  email: string;
  name: string;
}

/** Arguments of the `submit` update; the mask is already stored as `versionId`. */
export interface SubmitInput {
  submissionId: string;
  versionId: string;
  /** The parent version the doctor started from (checked against the task's). */
  parentVersionId?: string | null;
  activeMs: number;
  pixelsChanged?: number;
  /** Mask size, checked against the image size when both are known. */
  width?: number;
  height?: number;
}

export interface SubmitResult {
  taskId: string;
  submissionId: string;
  versionId: string;
  activeMs: number;
  pixelsChanged: number | null;
  /** Workflow time from the first assignment to the accepted submission. */
  waitedMs: number;
  doctorId: string;
}

export interface AnnotationTaskResult extends SubmitResult {
  imageId: string;
  kind: TaskKind;
  round: number;
  maskUri: string;
  reminders: number;
  reassignments: number;
}

export type TaskPhase = "creating" | "assigned" | "in_review" | "completing" | "completed" | "cancelled";

export interface TaskStatus {
  taskId: string | null;
  phase: TaskPhase;
  doctorId: string | null;
  reminders: number;
  reassignments: number;
  submission: SubmitResult | null;
  /** The review the submission waits for (phase `in_review`); null otherwise. */
  reviewId?: string | null;
  /** Submissions a reviewer returned so far. */
  returned?: number;
}

/** Arguments of the `review` update; the decision is already stored in the review's row (services/reviews.ts). */
export interface ReviewInput {
  reviewId: string;
  decision: ReviewDecision;
}
export type ReviewDecision = "accept" | "return";
export interface ReviewResult {
  reviewId: string;
  decision: ReviewDecision;
}

// ---------------------------------------------------------------- campaign

/**
 * `uncertainty`: the K least certain images; `diverse`: uncertainty with a diversity term, so
 * near-duplicates are not picked together (activities/select.ts); `random`: the control.
 */
export type Strategy = "uncertainty" | "diverse" | "random";

/**
 * `rounds`: train, predict the pool, send K corrections, wait for all of them, train again.
 * `continuous`: a trainer child workflow fine-tunes whenever new labels exist while doctors pull
 * the next most useful image one at a time (workflows/trainer.ts, `pull`).
 */
export type CampaignMode = "rounds" | "continuous";

export interface CampaignConfig {
  /** Images sent out for correction per round. */
  k: number;
  strategy: Strategy;
  /** Seed of the random strategy (and of augmentation unless the pipeline names one). */
  seed: number;
  /** Number of trained models, the first one included. */
  maxRounds: number;
  /** Stop once the mean F1 on the test images reaches this. */
  targetF1: number;
  /** Wait for the lab lead's `approveModel` after every evaluation. */
  requireApproval: boolean;
  augmentation: AugmentPipeline;
  /** `TrainConfig` keys of the Python engine (minutes, epochs, …). */
  train: Record<string, unknown>;
  threshold?: number;
  taskTiming: TaskTiming;
  /** Activity timeouts of the gpu work, in milliseconds. */
  trainTimeoutMs: number;
  heartbeatTimeoutMs: number;
  predictTimeoutMs: number;
  /** Absent in campaigns started before continuous mode existed: `rounds`. */
  mode?: CampaignMode;
  /** Continuous mode: the most images doctors may pull (corrections after the seeds); absent: the whole pool. */
  labelBudget?: number;
  /**
   * Continuous mode's cold start: the first this many pulls cover the pool (farthest-first on the
   * predictions' embeddings, `coverage` in activities/select.ts) instead of following the young
   * model's uncertainty; absent: 0.
   */
  coldStartPulls?: number;
  /** Quality control (issue 14): doctors who annotate each seed image, each a different doctor; absent: 1. */
  annotatorsPerSeed?: number;
  /** Rounds mode: the fraction of each round's corrections (rounded up) also corrected by a second doctor; absent: 0. */
  doubleCorrectionFraction?: number;
  /** How several annotators' masks of one image become the training mask; absent: `staple`. */
  consensus?: "staple" | "majority";
  /** Every submission waits for a reviewer's accept or return (`review` update); absent: false. */
  review?: boolean;
  /** Rounds mode: honeypot tasks per correction round, on test images, scored against their reference masks; absent: 0. */
  honeypotsPerRound?: number;
}

export interface RoundSummary {
  round: number;
  modelUri: string;
  modelId: string;
  metrics: Record<string, number>;
  trainSeconds: number | null;
  /** Images sent out for correction after this round's model (empty on the last round). */
  selected: string[];
  corrected: number;
  correctionActiveMs: number;
  approved: boolean;
}

/** What a campaign carries from one run to the next across continue-as-new. */
export interface CampaignCarry {
  round: number;
  k: number;
  strategy: Strategy;
  paused: boolean;
  labelled: LabelledImage[];
  pool: ImageRef[];
  test: ImageRef[];
  rounds: RoundSummary[];
  /** Corrections of the previous round, to be recorded against that round's summary. */
  previousModelUri: string | null;
  seedActiveMs: number;
  /** Test images already sent out as honeypots (campaign config `honeypotsPerRound`). */
  honeypotsUsed?: string[];
}

export interface CampaignInput {
  campaignId: string;
  projectId: string;
  config: CampaignConfig;
  /** Present from round 1 on (continue-as-new). */
  carry?: CampaignCarry;
}

export type CampaignPhase =
  | "starting"
  | "seeding"
  | "augmenting"
  | "training"
  | "evaluating"
  | "predicting"
  | "awaiting_approval"
  | "selecting"
  | "correcting"
  | "completed"
  | "stopped";

export interface OpenTask {
  workflowId: string;
  imageId: string;
  kind: TaskKind;
}

export interface CampaignStatus {
  campaignId: string;
  round: number;
  phase: CampaignPhase;
  paused: boolean;
  stopRequested: boolean;
  k: number;
  strategy: Strategy;
  /** Progress inside the phase: tasks done / total, or activities done / total. */
  progress: { done: number; total: number };
  rounds: RoundSummary[];
  openTasks: OpenTask[];
  labelled: number;
  pool: number;
  test: number;
  finishedReason: string | null;
  /** `rounds` for campaigns started before continuous mode. */
  mode?: CampaignMode;
  /** Continuous mode: what the trainer is doing and how many labels wait for its next update. */
  continuous?: ContinuousStatus;
}

export interface ContinuousStatus {
  /** The newest published model's version (the round number of its summary); null before the first. */
  modelVersion: number | null;
  /** Images pulled so far (corrections after the seeds), and the most that may be pulled. */
  pulled: number;
  labelBudget: number;
  /** Images a doctor can pull now (unlabelled, not taken by an open task, within the budget). */
  pullable: number;
}

/** `label_budget`: a continuous campaign pulled its budget of images and trained on all of them. */
export type CampaignEnd = "target_reached" | "round_limit" | "pool_exhausted" | "label_budget" | "stopped";

export interface CampaignResult {
  campaignId: string;
  reason: CampaignEnd;
  rounds: RoundSummary[];
  reportUri: string | null;
}

// ---------------------------------------------------------------- gpu activity contract

export interface TrainInput {
  run_id: string;
  train: Array<{ image_uri: string; mask_uri: string; fov_uri?: string }>;
  val: Array<{ image_uri: string; mask_uri: string; fov_uri?: string }>;
  config?: Record<string, unknown>;
  init_model_uri?: string;
  out_prefix: string;
}

export interface TrainOutput {
  model_uri: string;
  onnx_uri: string;
  metrics: Record<string, number>;
  epochs: number;
  seconds: number;
  preview_uris: string[];
  curves_uri?: string;
}

/** Heartbeat details of `train_segmentation`, one per epoch. */
export interface TrainHeartbeat {
  epoch: number;
  epochs: number;
  loss: number;
  val_dice: number;
  checkpoint_uri?: string;
  preview_uri?: string;
}

export interface PredictInput {
  model_uri: string;
  items: Array<{ image_id: string; image_uri: string; fov_uri?: string }>;
  out_prefix: string;
  threshold?: number;
  uncertainty?: boolean;
}

export interface PredictedItem {
  image_id: string;
  mask_uri: string;
  prob_uri: string;
  uncertainty: number | null;
  /** The probability map averaged over an 8×8 grid (engines before it: absent). */
  embedding?: number[] | null;
}

export interface EvaluateInput {
  items: Array<{ image_id?: string; pred_uri: string; truth_uri: string; prob_uri?: string; fov_uri?: string }>;
}

export interface EvaluateOutput {
  per_image: Array<Record<string, number | string>>;
  mean: Record<string, number>;
}

export interface ConsensusInput {
  items: Array<{ image_id: string; mask_uris: string[] }>;
  /** `staple` (default; SimpleITK's STAPLE) or `majority` (a tie is background). */
  method?: "staple" | "majority";
  out_prefix: string;
}

export interface ConsensusOutput {
  items: Array<{
    image_id: string;
    method: "staple" | "majority";
    mask_uri: string;
    prob_uri: string;
    /** Each annotator's estimated sensitivity and specificity, in the order of `mask_uris`. */
    annotators: Array<{ sensitivity: number | null; specificity: number | null }>;
  }>;
}

/** The activities the Python worker serves on the `gpu` task queue. */
export interface GpuActivities {
  train_segmentation(input: TrainInput): Promise<TrainOutput>;
  predict_masks(input: PredictInput): Promise<{ items: PredictedItem[] }>;
  evaluate_masks(input: EvaluateInput): Promise<EvaluateOutput>;
}

/** The consensus activity the Python worker also serves on `gpu` (workflows/consensus.ts calls it). */
export interface GpuConsensusActivities {
  consensus_masks(input: ConsensusInput): Promise<ConsensusOutput>;
}

// ---------------------------------------------------------------- updates and queries

export const submitUpdate = defineUpdate<SubmitResult, [SubmitInput]>("submit");
/**
 * A correction task starts over from a newer model's prediction of its image (continuous
 * campaigns: the trainer predicted the image again since the task was made). Submissions may then
 * build on the original start or on any restart version; the answer lists them.
 */
export const restartFromUpdate = defineUpdate<{ startVersionIds: string[] }, [{ versionId: string }]>("restartFrom");
export const taskStatusQuery = defineQuery<TaskStatus>("taskStatus");
/** A reviewer's decision on the submission under review (campaigns with `review`). */
export const reviewUpdate = defineUpdate<ReviewResult, [ReviewInput]>("review");
/** The review validator's refusal while the review row exists but the workflow has not recorded it yet; the caller asks again. */
export const REVIEW_NOT_RECORDED_YET = "review is not recorded yet";

export const pauseUpdate = defineUpdate<CampaignStatus, []>("pause");
export const resumeUpdate = defineUpdate<CampaignStatus, []>("resume");
export const stopUpdate = defineUpdate<CampaignStatus, [{ reason?: string }]>("stop");
export const approveModelUpdate = defineUpdate<RoundSummary, [{ round: number; by?: string }]>("approveModel");
export const setKUpdate = defineUpdate<{ previous: number; k: number }, [{ k: number }]>("setK");
export const statusQuery = defineQuery<CampaignStatus>("status");

/** Continuous mode: a doctor asks for the next most useful image; the answer names the task created for it. */
export interface PullInput {
  doctorId: string;
}
export interface PullResult {
  taskWorkflowId: string;
  imageId: string;
  /** The model version whose prediction the task starts from. */
  modelVersion: number;
  /** The doctor's pulled task still open: given back instead of a new one (one pulled image at a time). */
  existing: boolean;
}
export const pullUpdate = defineUpdate<PullResult, [PullInput]>("pull");

// ---------------------------------------------------------------- trainer (continuous mode)

export interface TrainerInput {
  campaignId: string;
  /** The parent campaign's workflow id, to which each published model is signalled. */
  campaignWorkflowId: string;
  config: CampaignConfig;
  /** Everything labelled so far; the first update trains on it. */
  labelled: LabelledImage[];
  test: ImageRef[];
  /** Unlabelled images to predict after every update. */
  pool: ImageRef[];
  /** The next model version (0 for the first model). */
  nextVersion: number;
  previousModelUri: string | null;
}

/** A published model: its round summary and its predictions of the images still unlabelled. */
export interface ModelPublished {
  summary: RoundSummary;
  /** How many labelled images the model was trained on. */
  trainedOn: number;
  predictions: Array<{
    imageId: string;
    uncertainty: number | null;
    embedding: number[] | null;
    maskUri: string;
    /** The prediction's stored version (the parent of a correction started from it). */
    versionId: string;
  }>;
}

/** Parent → trainer: images newly labelled; they are coalesced into the next update. */
export const labelsAddedSignal = defineSignal<[{ labelled: LabelledImage[] }]>("labelsAdded");
/** Trainer → parent: a model version is published. */
export const modelPublishedSignal = defineSignal<[ModelPublished]>("modelPublished");
export interface TrainerStatus {
  training: boolean;
  /** Labelled images received during the update in progress: they go into the next one. */
  pendingLabels: number;
  /** The version the update in progress (or the next one) publishes. */
  nextVersion: number;
  trainedOn: number;
}
export const trainerStatusQuery = defineQuery<TrainerStatus>("trainerStatus");

/** Workflow id of a continuous campaign's trainer. */
export function trainerWorkflowId(campaignId: string): string {
  return `trainer-${campaignId}`;
}

export const DEFAULT_AUGMENTATION: AugmentPipeline = {
  seed: 7,
  steps: [
    { op: "flip", modes: ["none", "h", "v", "hv"] },
    { op: "random_crop", size: [448, 448], count: 11 },
  ],
};

export const DEFAULT_CAMPAIGN_CONFIG: CampaignConfig = {
  k: 2,
  strategy: "uncertainty",
  seed: 1,
  maxRounds: 3,
  targetF1: 0.8,
  requireApproval: false,
  augmentation: DEFAULT_AUGMENTATION,
  train: {},
  taskTiming: DEFAULT_TASK_TIMING,
  trainTimeoutMs: 6 * 3600_000,
  heartbeatTimeoutMs: 10 * 60_000,
  predictTimeoutMs: 3600_000,
};

/** Workflow id of a campaign, derived from its database id. */
export function campaignWorkflowId(campaignId: string): string {
  return `campaign-${campaignId}`;
}

/** Workflow id of one annotation/correction task of a campaign. */
export function taskWorkflowId(campaignId: string, round: number, imageId: string, annotator = 0): string {
  // The first annotator keeps the id tasks had before several annotators per image existed.
  return `task-${campaignId}-r${round}-${imageId}${annotator > 0 ? `-a${annotator}` : ""}`;
}

/** The submit validator's refusal while the task row exists but the workflow has not yet
 * recorded the assignment; `submitTaskUpdate` waits and asks again rather than failing. */
export const TASK_NOT_ASSIGNED_YET = "task is not assigned yet";
