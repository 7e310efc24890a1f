// Store activities: the workflows' only way to the database. Each one is a thin,
// idempotent call into the domain services (services/), so that an activity retried
// after a crash does not create a second task, model or round.
// Ids cross the workflow boundary as strings (the database uses integers).
import { ApplicationFailure } from "@temporalio/common";
import type { Pool } from "../db/pool.js";
import { recordPredictions } from "../services/annotations.js";
import type { BlobStore } from "../services/blobs.js";
import { loadCampaignImages, recordRound, setCampaignState } from "../services/campaigns.js";
import { recordConsensus } from "../services/consensus.js";
import { AppError } from "../services/errors.js";
import { scoreHoneypot } from "../services/honeypots.js";
import type { Image } from "../services/images.js";
import { approveModel, recordModel } from "../services/models.js";
import { recordReviewReminder, reopenReturnedTask, requestReview, storedDecision } from "../services/reviews.js";
import * as tasks from "../services/tasks.js";
import { getUser, type User } from "../services/users.js";
import type { CampaignImages, CampaignPhase, Doctor, ImageRef, ReviewDecision, RoundSummary, TaskKind } from "../workflows/types.js";

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
  /**
   * The doctor picked by an earlier `pickDoctor` call (histories from before the
   * "assign-in-create-task" patch); null: the activity picks the least-loaded doctor itself,
   * under the same lock as the insert, so concurrently created tasks are spread evenly.
   */
  assigneeId: string | null;
  dueAt: string;
  /** A honeypot task (scored against the image's reference mask); absent: false. */
  honeypot?: boolean;
}

export interface PredictionRecord {
  imageId: string;
  maskUri: string;
  probUri: string;
  uncertainty: number | null;
}

export type CampaignState = "running" | "paused" | "stopped" | "completed" | "failed";

/** The contract between the workflows and the database side. */
export interface StoreActivities {
  loadCampaignImages(input: { campaignId: string; projectId: string }): Promise<CampaignImages>;
  /**
   * Records the campaign's state (a final `stopped` or `completed` with the phase of the same
   * name). A write arriving after a final state, or a non-final one on a `stopping` row, changes
   * nothing and succeeds: activities land out of order (retries, one a stop cancelled still
   * running after its workflow closed), and the row keeps the final state (services/campaigns.ts
   * setCampaignState).
   */
  setCampaignStatus(input: { campaignId: string; status: CampaignState; reason?: string }): Promise<void>;
  /** Mirrors the workflow's phase and round into the campaign's row, so lists and reports need no query; ignored once the row is final. */
  recordCampaignPhase(input: { campaignId: string; phase: CampaignPhase; round: number }): Promise<void>;
  /** A doctor of the project not in `exclude`, least loaded first; null when all are excluded; fails when the project has none. */
  pickDoctor(input: { projectId: string; exclude: string[]; imageId?: string; campaignId?: string }): Promise<Doctor | null>;
  /** Creates the task (idempotent by workflow id) and returns it with its doctor; retried while there is no doctor. */
  createTask(input: CreateTaskInput): Promise<{ taskId: string; assignee: Doctor }>;
  /** Moves the task to another doctor; `assigned: false` when that doctor holds another task on the image (several annotators). */
  reassignTask(input: { taskId: string; fromDoctorId: string; toDoctorId: string; dueAt: string }): Promise<{ assigned: boolean } | void>;
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
  /** Stores several annotators' consensus of an image as a `consensus` version with each annotator's figures; idempotent. */
  recordConsensus(input: ConsensusRecord): Promise<{ versionId: string }>;
  /**
   * The task's submitted version waits for review (task state `in_review`); idempotent per
   * version. `decision`: one already stored (a reviewer decided while this activity was retried).
   */
  requestReview(input: { taskId: string; versionId: string }): Promise<{ reviewId: string; decision?: ReviewDecision | null }>;
  /**
   * Counts a review reminder; returns whom to e-mail (reviewers; lab leads too once escalated) and
   * the stored decision if there is one (whose Update never arrived: then nobody is reminded).
   */
  recordReviewReminder(input: { reviewId: string; escalate: boolean }): Promise<{ to: Doctor[]; decision?: ReviewDecision | null }>;
  /** A returned task reopens for its doctor from the returned version (only while `in_review`). */
  reopenTask(input: { taskId: string; versionId: string }): Promise<void>;
  /** Scores a honeypot task's accepted version against the image's reference mask; idempotent. */
  scoreHoneypot(input: { taskId: string; versionId: string }): Promise<{ dice: number; cldice: number | null }>;
}

export interface ConsensusRecord {
  campaignId: string;
  round: number;
  imageId: string;
  method: "staple" | "majority";
  maskUri: string;
  probUri: string | null;
  /** The annotators' versions with STAPLE's sensitivity and specificity for each. */
  sources: Array<{ versionId: string; sensitivity: number | null; specificity: number | null }>;
}

export interface StoreDeps {
  pool: Pool;
  blobs: BlobStore;
}

/** A database id from the workflow's string; a malformed one is a bug, not worth retrying. */
function id(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw ApplicationFailure.nonRetryable(`invalid ${what} id "${value}"`);
  return n;
}

/** Bad requests and missing rows will not heal on retry: fail the activity for good. */
async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError && ["bad_request", "validation_failed", "not_found", "conflict"].includes(err.code)) {
      throw ApplicationFailure.nonRetryable(err.message, err.code);
    }
    throw err;
  }
}

function imageRef(image: Image): ImageRef {
  return {
    imageId: String(image.id),
    imageUri: image.png_uri,
    ...(image.mask_uri ? { maskUri: image.mask_uri } : {}),
    ...(image.fov_uri ? { fovUri: image.fov_uri } : {}),
    width: image.width,
    height: image.height,
  };
}

function doctorOf(user: User): Doctor {
  return { userId: String(user.id), email: user.email, name: user.name };
}

export function createStoreActivities({ pool, blobs }: StoreDeps): StoreActivities {
  return {
    loadCampaignImages: ({ campaignId }) =>
      guarded(async () => {
        const images = await loadCampaignImages(pool, id(campaignId, "campaign"));
        return { seed: images.seed.map(imageRef), pool: images.pool.map(imageRef), test: images.test.map(imageRef) };
      }),
    setCampaignStatus: ({ campaignId, status, reason }) =>
      guarded(async () => {
        await setCampaignState(pool, id(campaignId, "campaign"), { state: status, reason: reason ?? null });
      }),
    recordCampaignPhase: ({ campaignId, phase, round }) =>
      guarded(async () => {
        await setCampaignState(pool, id(campaignId, "campaign"), { phase, round });
      }),
    pickDoctor: ({ exclude, imageId, campaignId }) =>
      guarded(async () => {
        // With the task's image: doctors who hold another task on it in the campaign are passed over (several annotators).
        const sameImage = imageId && campaignId ? { imageId: id(imageId, "image"), campaignId: id(campaignId, "campaign") } : null;
        const doctor = await tasks.pickDoctor(pool, exclude.map((e) => id(e, "user")), sameImage);
        if (doctor) return doctorOf(doctor);
        if (exclude.length > 0 && (await tasks.pickDoctor(pool, []))) return null; // all the others are excluded
        // Retryable on purpose: the task waits until an admin adds a doctor.
        throw ApplicationFailure.retryable("there is no active doctor to assign the task to", "NoDoctor");
      }),
    createTask: (input) =>
      guarded(async () => {
        const fields = {
          projectId: id(input.projectId, "project"),
          imageId: id(input.imageId, "image"),
          kind: input.kind,
          campaignId: id(input.campaignId, "campaign"),
          round: input.round,
          workflowId: input.workflowId,
          parentVersionId: input.startVersionId ? id(input.startVersionId, "version") : null,
          dueAt: input.dueAt,
          ...(input.honeypot ? { honeypot: true } : {}),
        };
        if (input.assigneeId !== null) {
          const task = await tasks.createTask(pool, { ...fields, assigneeId: id(input.assigneeId, "user") });
          return { taskId: String(task.id), assignee: doctorOf(await getUser(pool, task.assignee_id!)) };
        }
        try {
          const { task, assignee } = await tasks.createAssignedTask(pool, fields);
          return { taskId: String(task.id), assignee: doctorOf(assignee) };
        } catch (err) {
          // Retryable on purpose, like pickDoctor: the task waits until an admin adds a doctor.
          if (err instanceof tasks.NoDoctorAvailable) throw ApplicationFailure.retryable(err.message, "NoDoctor");
          throw err;
        }
      }),
    reassignTask: ({ taskId, toDoctorId, dueAt }) =>
      guarded(async () => {
        return { assigned: await tasks.reassignTask(pool, { taskId: id(taskId, "task"), toDoctorId: id(toDoctorId, "user"), dueAt }) };
      }),
    recordReminder: ({ taskId }) =>
      guarded(async () => {
        await tasks.recordReminder(pool, id(taskId, "task"));
      }),
    completeTask: ({ taskId, versionId }) =>
      guarded(async () => {
        const { maskUri } = await tasks.completeTask(pool, { taskId: id(taskId, "task"), versionId: id(versionId, "version") });
        return { maskUri };
      }),
    cancelTask: ({ taskId, reason }) =>
      guarded(async () => {
        await tasks.cancelTask(pool, { taskId: id(taskId, "task"), reason });
      }),
    recordModel: (input) =>
      guarded(async () => {
        const model = await recordModel(pool, {
          campaignId: id(input.campaignId, "campaign"),
          round: input.round,
          uri: input.modelUri,
          onnxUri: input.onnxUri,
          runId: `${input.campaignId}-r${input.round}`,
          datasetUri: input.datasetUri,
          metrics: input.metrics,
        });
        return { modelId: String(model.id) };
      }),
    recordPredictions: (input) =>
      guarded(async () => {
        const byImage = await recordPredictions(
          { pool, blobs },
          {
            campaignId: id(input.campaignId, "campaign"),
            round: input.round,
            modelId: id(input.modelId, "model"),
            items: input.items.map((item) => ({
              imageId: id(item.imageId, "image"),
              maskUri: item.maskUri,
              probUri: item.probUri,
              uncertainty: item.uncertainty,
            })),
          },
        );
        return { versions: Object.fromEntries(Object.entries(byImage).map(([k, v]) => [k, String(v)])) };
      }),
    recordRound: ({ campaignId, summary }) =>
      guarded(async () => {
        await recordRound(pool, {
          campaignId: id(campaignId, "campaign"),
          round: summary.round,
          phase: summary.corrected > 0 ? "corrected" : summary.selected.length > 0 ? "selected" : "evaluated",
          modelId: id(summary.modelId, "model"),
          metrics: summary.metrics,
          selectedImageIds: summary.selected.map((s) => id(s, "image")),
          finished: summary.corrected > 0,
        });
      }),
    recordConsensus: (input) =>
      guarded(async () => {
        const version = await recordConsensus(
          { pool, blobs },
          {
            campaignId: id(input.campaignId, "campaign"),
            round: input.round,
            imageId: id(input.imageId, "image"),
            method: input.method,
            maskUri: input.maskUri,
            probUri: input.probUri,
            sources: input.sources.map((s) => ({ versionId: id(s.versionId, "version"), sensitivity: s.sensitivity, specificity: s.specificity })),
          },
        );
        return { versionId: String(version.id) };
      }),
    requestReview: ({ taskId, versionId }) =>
      guarded(async () => {
        const review = await requestReview(pool, { taskId: id(taskId, "task"), versionId: id(versionId, "version") });
        return { reviewId: String(review.id), decision: storedDecision(review) };
      }),
    recordReviewReminder: ({ reviewId, escalate }) =>
      guarded(async () => {
        const { to, decision } = await recordReviewReminder(pool, { reviewId: id(reviewId, "review"), escalate });
        return { to: to.map(doctorOf), decision };
      }),
    reopenTask: ({ taskId, versionId }) =>
      guarded(() => reopenReturnedTask(pool, { taskId: id(taskId, "task"), versionId: id(versionId, "version") })),
    scoreHoneypot: ({ taskId, versionId }) =>
      guarded(() => scoreHoneypot({ pool, blobs }, { taskId: id(taskId, "task"), versionId: id(versionId, "version") })),
    approveModel: ({ modelId, by }) =>
      guarded(async () => {
        const approver = by !== null && /^[0-9]+$/.test(by) ? Number(by) : null;
        await approveModel(pool, id(modelId, "model"), approver);
      }),
  };
}
