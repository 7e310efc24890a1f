// Shared pieces of the workflow tests: the time-skipping test server, a tiny image set in
// a temporary blob store, an in-memory store and stand-in gpu activities.
//
// Test-specific activities (and why):
// - MemoryStore stands in for activities/store.ts, whose real implementation needs
//   PostgreSQL with DATA's services and a whole project of imported images; it keeps the
//   same contract (StoreActivities) and the same idempotency. test/unit/store.test.ts runs
//   the real store activities against PostgreSQL.
// - fakeGpu stands in for the Python worker (task queue `gpu`), which trains for minutes;
//   it writes real (tiny) files for the URIs it returns. The integration tests run the real one.
// select, augment, report and notify are the real implementations (augment on real PNGs,
// notify writing real .eml files into an outbox folder).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Context } from "@temporalio/activity";
import { Client } from "@temporalio/client";
import { ApplicationFailure } from "@temporalio/common";
import { temporal } from "@temporalio/proto";
import { TestWorkflowEnvironment } from "@temporalio/testing";
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from "@temporalio/worker";
import sharp from "sharp";
import type { ConsensusRecord, CreateTaskInput, PredictionRecord, StoreActivities } from "../../activities/store.js";
import { BlobStore } from "../../services/blobs.js";
import { repoRoot } from "../../services/config.js";
import { listOutbox, Mailer, type OutboxEntry } from "../../services/mail.js";
import { buildActivities, workflowsPath } from "../../worker/main.js";
import { memoryTaskLinkStore } from "../helpers/taskLinks.js";
import type {
  CampaignImages,
  Doctor,
  EvaluateInput,
  ConsensusInput,
  GpuActivities,
  GpuConsensusActivities,
  ImageRef,
  PredictInput,
  RoundSummary,
  TrainInput,
} from "../../workflows/types.js";

export const testServerPath = path.join(repoRoot, ".venv", "bin", "temporal-test-server");

// Worker logs at WARN: the test output shows failures, not every state change.
Runtime.install({ logger: new DefaultLogger("WARN") });

let bundle: Promise<WorkflowBundleWithSourceMap> | null = null;
/** The workflow bundle, built once per test file (webpack takes seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger("WARN") });
  return bundle;
}

/**
 * A workflow's result, awaited with the test server's clock locked. env.client's result() unlocks
 * time skipping, and the test server moves its clock on while activities are in flight: work that
 * takes real time (a held activity, a loaded machine) then sees timers fire early, up to the run's
 * default 10-year timeout ("Workflow execution timed out").
 */
export function resultWithClockLocked<T>(env: TestWorkflowEnvironment, workflowId: string): Promise<T> {
  return new Client({ connection: env.connection }).workflow.getHandle(workflowId).result() as Promise<T>;
}

export function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: "existing-path", path: testServerPath } },
  });
}

export interface Sandbox {
  dir: string;
  blobs: BlobStore;
  outboxDir: string;
  mailer: Mailer;
  outbox(): Promise<OutboxEntry[]>;
  cleanup(): Promise<void>;
}

export async function createSandbox(): Promise<Sandbox> {
  const dir = await mkdtemp(path.join(tmpdir(), "medloop-wf-"));
  const outboxDir = path.join(dir, "outbox");
  const mailer = new Mailer({ smtpUrl: null, outboxDir });
  return {
    dir,
    blobs: new BlobStore(path.join(dir, "blobs")),
    outboxDir,
    mailer,
    outbox: () => listOutbox(outboxDir),
    async cleanup() {
      mailer.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A small RGB image with a diagonal "vessel" and its mask, written to the blob store. */
export async function makeImage(blobs: BlobStore, name: string, size = 48): Promise<{ imageUri: string; maskUri: string }> {
  const rgb = Buffer.alloc(size * size * 3);
  const mask = Buffer.alloc(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const vessel = Math.abs(x - y) < 3 || Math.abs(x + y - size) < 2;
      const o = y * size + x;
      rgb[o * 3] = vessel ? 60 : 180;
      rgb[o * 3 + 1] = (x * 5) % 256;
      rgb[o * 3 + 2] = (y * 5) % 256;
      mask[o] = vessel ? 255 : 0;
    }
  }
  const imageUri = await blobs.put(`images/${name}.png`, await sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer());
  const maskUri = await blobs.put(`images/${name}_mask.png`, await sharp(mask, { raw: { width: size, height: size, channels: 1 } }).png().toBuffer());
  return { imageUri, maskUri };
}

/** seed/pool/test images named s1…, p1…, t1… (image ids are their names). */
export async function makeCampaignImages(blobs: BlobStore, counts: { seed: number; pool: number; test: number }): Promise<CampaignImages> {
  const make = async (prefix: string, n: number, truth: boolean): Promise<ImageRef[]> =>
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const id = `${prefix}${i + 1}`;
        const { imageUri, maskUri } = await makeImage(blobs, id);
        // The first image of each role comes with a FOV mask, as `medloop import --fov` stores it.
        const fov = i === 0 ? { fovUri: maskUri } : {};
        return { imageId: id, imageUri, ...(truth ? { maskUri } : {}), ...fov, width: 48, height: 48 };
      }),
    );
  return { seed: await make("s", counts.seed, false), pool: await make("p", counts.pool, false), test: await make("t", counts.test, true) };
}

export const DOCTORS: Doctor[] = [
  { userId: "11", email: "ada@example.org", name: "Ada" },
  { userId: "12", email: "ben@example.org", name: "Ben" },
];

interface MemoryTask extends CreateTaskInput {
  taskId: string;
  state: "open" | "done" | "cancelled";
  reminders: number;
  cancelReason?: string;
}

/** The store contract in memory, with the same idempotency as the real one. */
export class MemoryStore {
  readonly tasks = new Map<string, MemoryTask>();
  readonly versions = new Map<string, { taskId: string; maskUri: string }>();
  readonly models: Array<{ campaignId: string; round: number; modelUri: string }> = [];
  readonly rounds = new Map<string, RoundSummary>();
  readonly predictions: PredictionRecord[] = [];
  readonly campaignStates: string[] = [];
  /** Phases the workflow recorded, as `round:phase`. */
  readonly campaignPhases: string[] = [];
  readonly approvals: number[] = [];
  readonly reassignments: Array<{ taskId: string; from: string; to: string }> = [];
  /** Per createTask call: whether the activity picked the doctor or was given one. */
  readonly createdWith: Array<"assign-in-create" | "picked-before"> = [];
  /** When set, createTask waits for it: holds a task workflow in its "creating" phase. */
  createTaskGate: Promise<void> | null = null;
  /** createTask attempts, failed ones included. */
  createTaskCalls = 0;
  /** Every setCampaignStatus call as it starts (campaignStates records them as they end). */
  readonly statusCalls: string[] = [];
  /**
   * When set, the next setCampaignStatus of that status waits for `until` before it records: a
   * slow database holding, e.g., a pause handler's state write while a stop comes in.
   */
  statusGate: { status: string; until: Promise<void> } | null = null;
  /** When set, that task's cancelTask waits for `until` before it records: a slow database under a stop. */
  cancelTaskGate: { taskId: string; until: Promise<void> } | null = null;
  /** Task cancellations and campaign states in the order they were recorded. */
  readonly writes: string[] = [];
  readonly consensus: ConsensusRecord[] = [];
  readonly reviews: Array<{ reviewId: string; taskId: string; versionId: string }> = [];
  readonly reviewReminders: string[] = [];
  /** Decisions "stored in the review's row" whose Update never arrives (a test sets them). */
  readonly storedDecisions = new Map<string, "accept" | "return">();
  readonly reopened: Array<{ taskId: string; versionId: string }> = [];
  readonly honeypotScores: Array<{ taskId: string; versionId: string }> = [];
  private nextId = 100;

  constructor(
    private readonly images: CampaignImages,
    private readonly doctors: Doctor[] = DOCTORS,
  ) {}

  private leastLoaded(exclude: string[], sameImage?: { imageId: string; campaignId: string }): Doctor | null {
    if (this.doctors.length === 0) throw ApplicationFailure.retryable("no doctor");
    const open = (d: Doctor) => [...this.tasks.values()].filter((t) => t.assigneeId === d.userId && t.state === "open").length;
    // As the real store: doctors holding a task on the same image of the campaign are passed over.
    const holds = (d: Doctor) =>
      sameImage !== undefined &&
      [...this.tasks.values()].some((t) => t.assigneeId === d.userId && t.imageId === sameImage.imageId && t.campaignId === sameImage.campaignId && t.state !== "cancelled");
    return this.doctors.filter((d) => !exclude.includes(d.userId) && !holds(d)).sort((a, b) => open(a) - open(b))[0] ?? null;
  }

  /** A doctor joins the project (an admin added one). */
  addDoctor(doctor: Doctor): void {
    this.doctors.push(doctor);
  }

  private doctor(userId: string): Doctor {
    return this.doctors.find((d) => d.userId === userId) ?? { userId, email: `${userId}@example.org`, name: userId };
  }

  /** What the API does before the `submit` update: store the doctor's mask as a version. */
  storeVersion(taskId: string, maskUri: string): string {
    const versionId = String(this.nextId++);
    this.versions.set(versionId, { taskId, maskUri });
    return versionId;
  }

  taskByWorkflow(workflowId: string): MemoryTask | undefined {
    return [...this.tasks.values()].find((t) => t.workflowId === workflowId);
  }

  activities(): StoreActivities {
    return {
      loadCampaignImages: async () => this.images,
      setCampaignStatus: async ({ status }) => {
        this.statusCalls.push(status);
        const gate = this.statusGate;
        if (gate?.status === status) {
          this.statusGate = null; // one write held, the next ones pass
          await gate.until;
        }
        this.campaignStates.push(status);
        this.writes.push(`state:${status}`);
      },
      recordCampaignPhase: async ({ phase, round }) => {
        this.campaignPhases.push(`${round}:${phase}`);
      },
      pickDoctor: async ({ exclude }) => this.leastLoaded(exclude),
      createTask: async (input) => {
        this.createTaskCalls += 1;
        await this.createTaskGate;
        const existing = this.taskByWorkflow(input.workflowId);
        if (existing) return { taskId: existing.taskId, assignee: this.doctor(existing.assigneeId!) };
        // Picked and stored in one synchronous step: the in-memory twin of the real lock.
        const assignee = input.assigneeId === null ? this.leastLoaded([], input) : this.doctor(input.assigneeId);
        if (!assignee) throw ApplicationFailure.retryable("no doctor");
        const taskId = String(this.nextId++);
        this.tasks.set(taskId, { ...input, assigneeId: assignee.userId, taskId, state: "open", reminders: 0 });
        this.createdWith.push(input.assigneeId === null ? "assign-in-create" : "picked-before");
        return { taskId, assignee };
      },
      reassignTask: async ({ taskId, fromDoctorId, toDoctorId }) => {
        const task = this.tasks.get(taskId);
        if (!task) throw ApplicationFailure.nonRetryable(`task ${taskId} not found`);
        task.assigneeId = toDoctorId;
        this.reassignments.push({ taskId, from: fromDoctorId, to: toDoctorId });
      },
      recordReminder: async ({ taskId }) => {
        const task = this.tasks.get(taskId);
        if (task) task.reminders += 1;
      },
      completeTask: async ({ taskId, versionId }) => {
        const task = this.tasks.get(taskId);
        const version = this.versions.get(versionId);
        if (!task || !version) throw ApplicationFailure.nonRetryable(`task ${taskId} or version ${versionId} not found`);
        task.state = "done";
        return { maskUri: version.maskUri };
      },
      cancelTask: async ({ taskId, reason }) => {
        if (this.cancelTaskGate?.taskId === taskId) await this.cancelTaskGate.until;
        this.writes.push(`cancel:${taskId}`);
        const task = this.tasks.get(taskId);
        if (task && task.state === "open") {
          task.state = "cancelled";
          task.cancelReason = reason;
        }
      },
      recordModel: async ({ campaignId, round, modelUri }) => {
        this.models.push({ campaignId, round, modelUri });
        return { modelId: `m${round}` };
      },
      recordPredictions: async ({ items }) => {
        this.predictions.push(...items);
        return { versions: Object.fromEntries(items.map((i) => [i.imageId, `pred-${i.imageId}-${this.nextId++}`])) };
      },
      recordRound: async ({ summary }) => {
        this.rounds.set(String(summary.round), structuredClone(summary));
      },
      approveModel: async ({ round }) => {
        this.approvals.push(round);
      },
      recordConsensus: async (input) => {
        this.consensus.push(input);
        return { versionId: `consensus-${input.imageId}` };
      },
      requestReview: async ({ taskId, versionId }) => {
        const reviewId = `review-${versionId}`;
        if (!this.reviews.some((r) => r.reviewId === reviewId)) this.reviews.push({ reviewId, taskId, versionId });
        return { reviewId, decision: this.storedDecisions.get(reviewId) ?? null };
      },
      recordReviewReminder: async ({ reviewId }) => {
        this.reviewReminders.push(reviewId);
        return { to: [], decision: this.storedDecisions.get(reviewId) ?? null };
      },
      reopenTask: async ({ taskId, versionId }) => {
        this.reopened.push({ taskId, versionId });
      },
      scoreHoneypot: async ({ taskId, versionId }) => {
        this.honeypotScores.push({ taskId, versionId });
        return { dice: 1, cldice: 1 };
      },
    };
  }
}

export interface FakeGpuOptions {
  blobs: BlobStore;
  /** Mean F1 on the test images per round (by the training's run id suffix). */
  f1ByRound?: number[];
  /** Called inside train_segmentation; may wait or throw (e.g. to model a slow run). */
  onTrain?: (input: TrainInput) => Promise<void>;
  trainCalls?: TrainInput[];
  predictCalls?: PredictInput[];
  evaluateCalls?: EvaluateInput[];
  consensusCalls?: ConsensusInput[];
}

/** Stand-in gpu activities: they copy real mask files so that every returned URI exists. */
export function fakeGpu(opts: FakeGpuOptions): GpuActivities & GpuConsensusActivities {
  const f1s = opts.f1ByRound ?? [0.5, 0.6, 0.7, 0.8, 0.9];
  return {
    async train_segmentation(input: TrainInput) {
      opts.trainCalls?.push(input);
      if (opts.onTrain) await opts.onTrain(input);
      Context.current().heartbeat({ epoch: 1, epochs: 1, loss: 0.5, val_dice: 0.5 });
      const modelUri = await opts.blobs.put(`${input.out_prefix.slice("blob://".length)}model.json`, Buffer.from("{}"));
      return { model_uri: modelUri.replace(/model\.json$/, ""), onnx_uri: `${input.out_prefix}model.onnx`, metrics: { val_f1: 0.5 }, epochs: 1, seconds: 1, preview_uris: [] };
    },
    async predict_masks(input: PredictInput) {
      opts.predictCalls?.push(input);
      const round = Number(/round-(\d+)/.exec(input.out_prefix)?.[1] ?? 0);
      return {
        items: input.items.map((item) => ({
          image_id: item.image_id,
          mask_uri: `${input.out_prefix}${item.image_id}_mask.png`,
          prob_uri: `${input.out_prefix}${item.image_id}_prob.png`,
          // Deterministic scores: later pool images are "less certain", shifted by round.
          uncertainty: input.uncertainty ? Number(item.image_id.replace(/\D/g, "")) / 10 + round / 100 : null,
        })),
      };
    },
    async consensus_masks(input: ConsensusInput) {
      opts.consensusCalls?.push(input);
      // The first annotator's mask stands in for the consensus; the figures are fixed.
      return {
        items: input.items.map((item) => ({
          image_id: item.image_id,
          method: input.method ?? "staple",
          mask_uri: item.mask_uris[0] as string,
          prob_uri: item.mask_uris[0] as string,
          annotators: item.mask_uris.map((_, i) => ({ sensitivity: 0.9 - i / 10, specificity: 0.99 })),
        })),
      };
    },
    async evaluate_masks(input: EvaluateInput) {
      opts.evaluateCalls?.push(input);
      const round = Number(/round-(\d+)/.exec(input.items[0]?.pred_uri ?? "")?.[1] ?? 0);
      const f1 = f1s[Math.min(round, f1s.length - 1)] as number;
      return { per_image: input.items.map((i) => ({ image_id: i.image_id ?? "", f1 })), mean: { f1, auc: 0.9 } };
    },
  };
}

/** The real TypeScript activities with the in-memory store in place of the database one. */
export function tsActivities(sandbox: Sandbox, store: MemoryStore) {
  const real = buildActivities({
    pool: undefined as never, // replaced by the memory store below
    blobs: sandbox.blobs,
    mailer: sandbox.mailer,
    linkSecret: "test-secret",
    baseUrl: "http://medloop.test",
    taskLinks: memoryTaskLinkStore(), // no PostgreSQL here: links are recorded in memory
  });
  return { ...real, ...store.activities() };
}

// ---------------------------------------------------------------- recorded histories

type History = temporal.api.history.v1.IHistory;
const HistoryType = temporal.api.history.v1.History;

/**
 * Histories are stored as protobuf's object JSON (enum names, 64-bit ints and bytes as
 * strings). The SDK's own historyToJSON/historyFromJSON fail in this install (two copies
 * of protobufjs), so the history's own protobuf class converts both ways.
 */
export function historyToFile(history: History): string {
  const object = HistoryType.toObject(HistoryType.fromObject(history), { longs: String, enums: String, bytes: String });
  return JSON.stringify(object, null, 1);
}

export function historyFromFile(text: string): temporal.api.history.v1.History {
  return HistoryType.fromObject(JSON.parse(text));
}

/** A promise and the function that resolves it: holds an activity until the test lets it go. */
export function gate(): { until: Promise<void>; open: () => void } {
  let open!: () => void;
  const until = new Promise<void>((resolve) => (open = resolve));
  return { until, open };
}
