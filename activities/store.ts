// Store activities: the workflows' only way to the database. Each one is a thin,
// idempotent call into the domain services (services/), so that an activity retried
// after a crash does not create a second task, model or round.
// Ids cross the workflow boundary as strings (the database uses integers).
import type { CampaignImages, Doctor, RoundSummary, TaskKind } from "../workflows/types.js";

export interface CreateTaskInput {
  /** The task's workflow id: the idempotency key of task creation. */
  workflowId: string;
  campaignId: string;
  projectId: string;
  imageId: string;
  round: number;
  kind: TaskKind;
  /** The version the doctor starts from (the prediction of a correction task). */
  startVersionId: string | null;
  assigneeId: string;
  dueAt: string;
}

export interface PredictionRecord {
  imageId: string;
  maskUri: string;
  probUri: string;
  uncertainty: number | null;
}

export type CampaignState = "running" | "paused" | "stopped" | "completed";

/** The contract between the workflows and the database side. */
export interface StoreActivities {
  loadCampaignImages(input: { campaignId: string; projectId: string }): Promise<CampaignImages>;
  setCampaignStatus(input: { campaignId: string; status: CampaignState; reason?: string }): Promise<void>;
  /** A doctor of the project not in `exclude`, least loaded first; null when all are excluded; fails when the project has none. */
  pickDoctor(input: { projectId: string; exclude: string[] }): Promise<Doctor | null>;
  createTask(input: CreateTaskInput): Promise<{ taskId: string }>;
  reassignTask(input: { taskId: string; fromDoctorId: string; toDoctorId: string; dueAt: string }): Promise<void>;
  recordReminder(input: { taskId: string }): Promise<void>;
  /** Marks the task done with its accepted version; returns that version's mask. */
  completeTask(input: { taskId: string; versionId: string; submissionId: string; activeMs: number }): Promise<{
    maskUri: string;
  }>;
  cancelTask(input: { taskId: string; reason: string }): Promise<void>;
  recordModel(input: {
    campaignId: string;
    round: number;
    modelUri: string;
    onnxUri: string | null;
    metrics: Record<string, number>;
    datasetUri: string;
  }): Promise<{ modelId: string }>;
  /** Stores the pool predictions as `prediction` versions; returns version ids by image id. */
  recordPredictions(input: {
    campaignId: string;
    round: number;
    modelId: string;
    items: PredictionRecord[];
  }): Promise<{ versions: Record<string, string> }>;
  /** Upserts the round's row (metrics, selected images). */
  recordRound(input: { campaignId: string; summary: RoundSummary }): Promise<void>;
  approveModel(input: { campaignId: string; round: number; modelId: string; by: string | null }): Promise<void>;
}
