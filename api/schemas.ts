// zod schemas of what the API answers and accepts. They document the API (OpenAPI) and, with
// `checkResponses`, every JSON answer is checked against them.
import { z } from "zod";
import { ASSISTED_TOOLS, MANUAL_TOOLS, MAX_ACTION_MS, MAX_ACTIONS } from "../services/correction/effort.js";

const ts = z.iso.datetime();
const id = z.int().positive();


// ------------------------------------------------------------------------- ids and text input

/**
 * Every id column is a PostgreSQL `integer` (32-bit). A larger number given to the database is a
 * server error (22003 out of range) instead of "no such row", so every id the API takes is
 * bounded here; api/openapi.ts refuses, when the app starts, a path or query integer or a body id
 * without such a bound.
 */
export const PG_INT_MAX = 2 ** 31 - 1;

/** An id in a JSON body (or another integer stored in an `integer` column, e.g. a round). */
export const idInput = z.int().positive().max(PG_INT_MAX);
/** An id in a path or query string ("12" → 12), within the database's integer range. */
export const idQuery = z.coerce.number().int().positive().max(PG_INT_MAX);
/** A count stored in an `integer` column (edits, a round number): 0 … 2^31 − 1. */
export const countInput = z.int().min(0).max(PG_INT_MAX);

export const idParam = z.object({ id: idQuery.meta({ description: "numeric id" }) });

export const NUL_MESSAGE = "must not contain NUL (U+0000) characters";
/** Deeper JSON is refused: no API input needs more than a few levels, and PostgreSQL's jsonb has its own limit. */
export const MAX_INPUT_DEPTH = 64;

/**
 * The first problem of a request's parsed input that no schema may let through, as
 * "where.path: reason", or null: a NUL character (U+0000) in any string or object key, or nesting
 * deeper than MAX_INPUT_DEPTH. PostgreSQL cannot store NUL in text or jsonb, so one that reached a
 * query would be a server error (after part of the work, e.g. a workflow told, its audit row
 * lost); api/app.ts checks every path, query and JSON body with this before any handler runs,
 * readUpload (api/present.ts) the multipart fields. Keys count: they are stored in jsonb (a
 * campaign's config). Iterative, so no input can exhaust the stack.
 */
export function inputTextProblem(value: unknown, where: string): string | null {
  // Containers only are pushed, and each remembers its parent and key: the path is spelled out
  // only for the one problem named, so a body of millions of numbers costs no strings.
  interface Node {
    value: object;
    parent: Node | null;
    key: string;
    depth: number;
  }
  const pathOf = (node: Node | null, key?: string): string => {
    const keys: string[] = key === undefined ? [] : [key];
    for (let n = node; n?.parent; n = n.parent) keys.push(n.key);
    return [where, ...keys.reverse()].join(".");
  };
  /** The problem of one child value, or null; a container child is queued instead. */
  const visit = (child: unknown, parent: Node | null, key: string, depth: number, queue: Node[]): string | null => {
    if (typeof child === "string") return child.includes("\0") ? `${pathOf(parent, key)}: ${NUL_MESSAGE}` : null;
    if (!child || typeof child !== "object" || Buffer.isBuffer(child)) return null;
    if (depth > MAX_INPUT_DEPTH) return `${pathOf(parent, key)}: nested deeper than ${MAX_INPUT_DEPTH} levels`;
    queue.push({ value: child, parent, key, depth });
    return null;
  };
  if (typeof value === "string") return value.includes("\0") ? `${where}: ${NUL_MESSAGE}` : null;
  if (!value || typeof value !== "object" || Buffer.isBuffer(value)) return null;
  const stack: Node[] = [{ value, parent: null, key: "", depth: 0 }];
  while (stack.length > 0) {
    const node = stack.pop()!;
    const children: Node[] = [];
    if (Array.isArray(node.value)) {
      for (let i = 0; i < node.value.length; i++) {
        const problem = visit(node.value[i], node, String(i), node.depth + 1, children);
        if (problem) return problem;
      }
    } else {
      for (const [key, child] of Object.entries(node.value)) {
        const label = /^[\w-]+$/.test(key) ? key : JSON.stringify(key);
        if (key.includes("\0")) return `${pathOf(node, label)}: ${NUL_MESSAGE}`;
        const problem = visit(child, node, label, node.depth + 1, children);
        if (problem) return problem;
      }
    }
    // A node's own strings first, then its containers, first to last.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return null;
}

export const roleSchema = z.enum(["lab_lead", "doctor", "auditor", "admin", "reviewer"]);

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: "machine-readable code, e.g. not_found, stale_version" }),
      message: z.string().meta({ description: "one line naming the problem" }),
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: "Error" });

export const userSchema = z
  .object({ id, email: z.string(), name: z.string(), role: roleSchema, active: z.boolean(), created_at: ts })
  .meta({ id: "User" });

export const loginResultSchema = z.object({ token: z.string(), expires_at: ts, user: userSchema }).meta({ id: "LoginResult" });

export const projectSchema = z
  .object({
    id,
    name: z.string(),
    description: z.string(),
    created_by: id.nullable(),
    created_at: ts,
    image_count: z.int(),
  })
  .meta({ id: "Project" });

export const imageRoleSchema = z.enum(["seed", "pool", "test"]);

export const imageSchema = z
  .object({
    id,
    project_id: id,
    name: z.string(),
    role: imageRoleSchema,
    format: z.enum(["png", "jpeg", "tiff", "gif", "bmp", "pnm", "webp"]).meta({ description: "format of the uploaded file" }),
    width: z.int(),
    height: z.int(),
    bytes: z.int(),
    sha256: z.string(),
    has_mask: z.boolean(),
    mask_lossy: z.boolean().meta({ description: "the reference mask came from a lossy file (JPEG, WebP) and was thresholded at half scale" }),
    has_fov: z.boolean(),
    created_at: ts,
    image_url: z.string().meta({ description: "normalised PNG" }),
    thumbnail_url: z.string(),
    mask_url: z.string().nullable(),
    fov_url: z.string().nullable(),
  })
  .meta({ id: "Image" });

/** Clock oddities corrected instead of refused (services/tasks.ts normaliseTiming). */
export const versionFlagSchema = z
  .enum(["active_ms_clamped", "ended_before_started", "started_at_in_future", "ended_at_in_future"])
  .meta({ id: "VersionFlag" });

/** One editor action (services/correction/effort.ts `Action`); sizes in image pixels. */
export const actionSchema = z
  .object({
    tool: z.enum([...MANUAL_TOOLS, ...ASSISTED_TOOLS]),
    clicks: z.int().min(0).max(100_000).meta({ description: "button presses: a dragged stroke is one, a trace one per point" }),
    travel_px: z.number().min(0).max(1e9).meta({ description: "pointer travel to the action's clicks, image pixels" }),
    path_px: z.number().min(0).max(1e9).meta({ description: "length dragged with the button down, image pixels (0 for clicks)" }),
    width_px: z.number().min(0).max(10_000).meta({ description: "brush size or the width the tool drew with, image pixels" }),
    ms: z.int().min(0).max(MAX_ACTION_MS).optional().meta({ description: "measured duration in milliseconds" }),
  })
  .meta({ id: "EditorAction" });

export const versionSchema = z
  .object({
    id,
    image_id: id,
    task_id: id.nullable(),
    kind: z.enum(["manual", "prediction", "correction", "consensus"]),
    author_id: id.nullable(),
    model_id: id.nullable(),
    campaign_id: id.nullable(),
    round: z.int().nullable(),
    parent_id: id.nullable(),
    uncertainty: z.number().nullable(),
    width: z.int(),
    height: z.int(),
    foreground_pixels: z.int(),
    pixels_changed: z.int(),
    active_ms: z.int().nullable(),
    started_at: ts.nullable(),
    submitted_at: ts.nullable(),
    edits: z.int().nullable(),
    submission_id: z.string().nullable(),
    simulated: z.boolean(),
    flags: z.array(versionFlagSchema).meta({
      description:
        "what the server corrected in the timing sent with this version (empty: stored as sent); the values as sent are in the submission's audit entry",
    }),
    actions: z.array(actionSchema).nullable().meta({ description: "the editor actions sent with the submission; null when none were recorded" }),
    start_f1: z.number().nullable().meta({ description: "live evaluation: F1 of the prediction this correction started from against this mask" }),
    start_cldice: z.number().nullable().meta({ description: "live evaluation: clDice of that prediction against this mask" }),
    effort_minutes: z.number().nullable().meta({
      description: "modelled minutes of the actions by the action-level effort model (docs/effort-model.md); null without actions",
    }),
    created_at: ts,
    mask_url: z.string(),
  })
  .meta({ id: "AnnotationVersion" });

export const taskStateSchema = z.enum(["pending", "open", "submitted", "in_review", "done", "cancelled"]);

export const taskSchema = z
  .object({
    id,
    project_id: id,
    image_id: id,
    image_name: z.string(),
    campaign_id: id.nullable(),
    round: z.int().nullable(),
    kind: z.enum(["annotate", "correct"]),
    assignee_id: id.nullable(),
    state: taskStateSchema,
    due_at: ts.nullable(),
    workflow_id: z.string().nullable(),
    start_version_id: id.nullable(),
    result_version_id: id.nullable(),
    reminders_sent: z.int(),
    reassignments: z.int(),
    cancel_reason: z.string().nullable(),
    created_at: ts,
    updated_at: ts,
  })
  .meta({ id: "Task" });

/** A marked region of an image, in image pixels (x, y: the top-left corner). */
export const regionSchema = z
  .object({ x: z.int().min(0), y: z.int().min(0), width: z.int().min(1), height: z.int().min(1) })
  .strict()
  .meta({ id: "Region" });

export const taskDetailSchema = z
  .object({
    task: taskSchema,
    image: z.object({
      id,
      name: z.string(),
      width: z.int(),
      height: z.int(),
      role: imageRoleSchema.nullable().meta({ description: "null for doctors (a honeypot looks like any other task)" }),
    }),
    image_url: z.string().meta({ description: "the image as PNG" }),
    start_mask_url: z.string().nullable().meta({ description: "the mask to start from (the prediction); null: start empty" }),
    probability_url: z
      .string()
      .nullable()
      .meta({ description: "the start prediction's probability map for the assisted tools (GET /tasks/{id}/probability); null: none" }),
    start_version: versionSchema.nullable(),
    result_version: versionSchema.nullable(),
    newer_prediction: z
      .object({ version_id: id, round: z.int() })
      .nullable()
      .meta({ description: "an open correction task's image predicted since by a newer model of its campaign: POST /tasks/{id}/restart starts from it" }),
    review: z
      .object({
        id,
        state: z.enum(["pending", "accepted", "returned", "cancelled"]),
        comment: z.string().nullable(),
        region: regionSchema.nullable(),
        reviewer_name: z.string().nullable(),
        decided_at: ts.nullable(),
      })
      .nullable()
      .meta({ description: "the task's latest review: a returned task shows the reviewer's comment and marked region" }),
  })
  .meta({ id: "TaskDetail" });

export const reviewStateSchema = z.enum(["pending", "accepted", "returned", "cancelled"]);

export const reviewSchema = z
  .object({
    id,
    task_id: id,
    version_id: id.meta({ description: "the submitted version under review" }),
    doctor_id: id,
    doctor_name: z.string(),
    state: reviewStateSchema,
    reviewer_id: id.nullable(),
    reviewer_name: z.string().nullable(),
    comment: z.string().nullable(),
    region: regionSchema.nullable(),
    active_ms: z.number().nullable().meta({ description: "the reviewer's active time, ms" }),
    reminders_sent: z.int(),
    image_id: id,
    image_name: z.string(),
    width: z.int(),
    height: z.int(),
    campaign_id: id.nullable(),
    round: z.int().nullable(),
    task_kind: z.enum(["annotate", "correct"]),
    created_at: ts,
    decided_at: ts.nullable(),
    image_url: z.string().meta({ description: "the image as PNG" }),
    mask_url: z.string().meta({ description: "the submitted mask as PNG" }),
  })
  .meta({ id: "Review" });

export const reviewDecisionSchema = z
  .object({
    decision: z.enum(["accept", "return"]),
    comment: z.string().max(2000).nullable().optional().meta({ description: "required to return: what the doctor should change" }),
    region: regionSchema.nullable().optional(),
    active_ms: z.int().min(0).meta({ description: "the reviewer's active time on the review, ms" }),
    decision_id: z.string().min(1).max(200).meta({ description: "idempotency key: a retry with the same id is answered again" }),
  })
  .strict()
  .meta({ id: "ReviewDecision" });

export const submissionBodySchema = z
  .object({
    submission_id: z.string().min(1).max(200).meta({ description: "client-made id; a retry with the same id is not stored twice" }),
    parent_version_id: idInput.nullable().meta({ description: "the task's start_version_id (null when starting from an empty mask)" }),
    mask_png_base64: z
      .string()
      .min(1)
      .meta({ description: "the mask of the image's size, base64: a 0/255 PNG (any mask the ingest contract reads is accepted)" }),
    active_ms: z.int().min(0).meta({
      description: "active milliseconds; longer than ended_at − started_at is stored clamped to that span and flagged `active_ms_clamped`",
    }),
    started_at: ts.meta({ description: "later than the server's clock plus 2 minutes: stored as the server's time, flagged" }),
    ended_at: ts.meta({ description: "before started_at or in the future: stored corrected and flagged, never refused" }),
    edits: countInput,
    simulated: z.boolean().optional().meta({ description: "times from the simulated doctors (reports flag them)" }),
    actions: z.array(actionSchema).max(MAX_ACTIONS).optional().meta({
      description: `the editor actions that made the mask, in order (at most ${MAX_ACTIONS}); stored with the version for the effort model`,
    }),
  })
  .meta({ id: "SubmissionInput" });

export const submissionResultSchema = z
  .object({ version: versionSchema, task: taskSchema, duplicate: z.boolean(), workflow_notified: z.boolean() })
  .meta({ id: "SubmissionResult" });

export const campaignSchema = z
  .object({
    id,
    project_id: id,
    name: z.string(),
    config: z.record(z.string(), z.unknown()),
    state: z.enum(["created", "running", "paused", "stopping", "stopped", "completed", "failed"]),
    phase: z.string().nullable(),
    round: z.int(),
    k: z.int(),
    workflow_id: z.string().nullable(),
    created_by: id.nullable(),
    created_at: ts,
    updated_at: ts,
  })
  .meta({ id: "Campaign" });

export const modelSchema = z
  .object({
    id,
    campaign_id: id.nullable(),
    round: z.int().nullable(),
    run_id: z.string().nullable(),
    uri: z.string(),
    onnx_uri: z.string().nullable(),
    dataset_uri: z.string().nullable(),
    metrics: z.record(z.string(), z.unknown()),
    approved: z.boolean(),
    approved_by: id.nullable(),
    approved_at: ts.nullable(),
    created_at: ts,
  })
  .meta({ id: "Model" });

export const roundSchema = z
  .object({
    id,
    campaign_id: id,
    round: z.int(),
    phase: z.string(),
    model_id: id.nullable(),
    metrics: z.record(z.string(), z.unknown()),
    selected_image_ids: z.array(z.int()),
    strategy: z.string().nullable(),
    dataset_uri: z.string().nullable(),
    started_at: ts,
    finished_at: ts.nullable(),
    model: modelSchema.nullable(),
    tasks: z.object({ total: z.int(), done: z.int() }),
  })
  .meta({ id: "Round" });

/** The campaign workflow's `status` query (workflows/types.ts CampaignStatus). */
export const campaignStatusSchema = z
  .looseObject({
    campaignId: z.string(),
    round: z.int(),
    phase: z.string(),
    paused: z.boolean(),
    stopRequested: z.boolean(),
    k: z.int(),
    strategy: z.string(),
    progress: z.object({ done: z.number(), total: z.number() }),
    rounds: z.array(z.looseObject({ round: z.int(), metrics: z.record(z.string(), z.number()) })),
    openTasks: z.array(z.looseObject({ workflowId: z.string(), imageId: z.string(), kind: z.string() })),
    labelled: z.int(),
    pool: z.int(),
    test: z.int(),
    finishedReason: z.string().nullable(),
    mode: z.enum(["rounds", "continuous"]).optional().meta({ description: "absent: rounds (campaigns started before continuous mode)" }),
    continuous: z
      .object({
        modelVersion: z.int().nullable().meta({ description: "the newest published model's version (its round); null before the first" }),
        pulled: z.int(),
        labelBudget: z.int(),
        pullable: z.int().meta({ description: "images a doctor can pull now" }),
      })
      .optional(),
    trainer: z
      .object({ training: z.boolean(), pendingLabels: z.int(), nextVersion: z.int(), trainedOn: z.int() })
      .nullable()
      .optional()
      .meta({ description: "continuous mode: the trainer workflow's status; null when it is not running" }),
  })
  .meta({ id: "CampaignStatus" });

export const pulledTaskSchema = z
  .object({
    task: taskSchema,
    image_id: id,
    model_version: z.int().meta({ description: "the model version whose prediction the task starts from" }),
    existing: z.boolean().meta({ description: "the doctor's pulled task still open, given back instead of a new one" }),
  })
  .meta({ id: "PulledTask" });

export const pullableCampaignSchema = z
  .object({ id, name: z.string(), project_id: id, project_name: z.string() })
  .meta({ id: "PullableCampaign" });

const kindSummary = z.object({
  n: z.int(),
  simulated_n: z.int(),
  flagged_n: z.int().meta({ description: "versions whose timing the server corrected (see AnnotationVersion.flags)" }),
  mean_minutes: z.number().nullable(),
  sd_minutes: z.number().nullable(),
  median_minutes: z.number().nullable(),
  mean_pixels_changed: z.number().nullable(),
  total_minutes: z.number(),
  with_actions_n: z.int().meta({ description: "versions submitted with their editor actions" }),
  mean_actions: z.number().nullable().meta({ description: "editor actions per image (versions with actions)" }),
  mean_clicks: z.number().nullable(),
  mean_effort_minutes: z.number().nullable().meta({ description: "minutes per image by the action-level effort model (docs/effort-model.md)" }),
  tools: z.record(z.string(), z.object({ actions: z.int(), clicks: z.int() })).meta({ description: "actions and clicks per tool" }),
  mean_start_f1: z.number().nullable().meta({ description: "live evaluation: mean F1 of the start predictions against the final masks" }),
  mean_start_cldice: z.number().nullable(),
});

const savingsFields = {
  scratch: kindSummary,
  correction: kindSummary,
  savings_minutes_per_image: z.number().nullable(),
  savings_ci95: z.object({ low: z.number(), high: z.number(), df: z.number() }).nullable(),
  savings_fraction: z.number().nullable(),
  simulated: z.boolean().meta({ description: "true when any time came from the simulated doctors" }),
  flagged_n: z.int().meta({ description: "versions in this summary whose timing the server corrected (clamped)" }),
  method: z.literal("welch_t"),
};
export const savingsSchema = z.object(savingsFields).meta({ id: "Savings" });
export const doctorSavingsSchema = z
  .object({ doctor_id: id, doctor_email: z.string(), ...savingsFields })
  .meta({ id: "DoctorSavings" });
export const roundSavingsSchema = z
  .object({ campaign_id: id.nullable(), round: z.int().nullable(), ...savingsFields })
  .meta({ id: "RoundSavings" });
export const reportQuerySchema = z.object({
  project_id: idQuery.optional(),
  campaign_id: idQuery.optional(),
  simulated: z.enum(["include", "exclude", "only"]).optional().meta({ description: "simulated times (default include)" }),
  flagged: z
    .enum(["include", "exclude", "only"])
    .optional()
    .meta({ description: "versions whose timing the server corrected (default include)" }),
});

const chainHead = z.object({ chain_seq: z.int(), id: z.int(), hash: z.string() });
export const chainReportSchema = z
  .object({
    ok: z.boolean(),
    rows: z.int().meta({ description: "rows checked (up to the first broken one)" }),
    head: chainHead.nullable().meta({ description: "the last row that holds: export it and keep it elsewhere" }),
    broken: z
      .object({ id: z.int(), chain_seq: z.int().nullable(), reason: z.string() })
      .nullable()
      .meta({ description: "the first row where the chain breaks, and why; null when it holds" }),
  })
  .meta({ id: "AuditChainReport" });

const versionRef = z.object({ version_id: id, author_id: id.nullable() });
export const imageAgreementSchema = z
  .object({
    image_id: id,
    versions: z.array(z.object({ version_id: id, author_id: id.nullable(), kind: z.string() })),
    pairs: z.array(z.object({ a: versionRef, b: versionRef, dice: z.number(), cldice: z.number().nullable() })),
    dice_mean: z.number().nullable(),
    cldice_mean: z.number().nullable(),
  })
  .meta({ id: "ImageAgreement" });

export const livePointSchema = z
  .object({
    model_id: id,
    round: z.int().nullable(),
    corrections: z.int(),
    f1_mean: z.number().meta({ description: "mean F1 of the model's predictions against the doctors' final masks" }),
    cldice_mean: z.number().nullable(),
    pixels_changed_mean: z.number(),
    effort_minutes_mean: z.number().nullable().meta({ description: "action-level effort model minutes (corrections with actions)" }),
    first_at: ts,
    last_at: ts,
  })
  .meta({ id: "LivePoint" });

export const auditRowSchema = z
  .object({
    id: z.int(),
    at: ts,
    actor_id: id.nullable(),
    actor_email: z.string().nullable(),
    action: z.string(),
    entity: z.string(),
    entity_id: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
  })
  .meta({ id: "AuditEntry" });

export const outboxEntrySchema = z
  .object({
    id: z.string(),
    messageId: z.string(),
    to: z.string(),
    from: z.string(),
    subject: z.string(),
    text: z.string(),
    sentAt: z.string(),
    meta: z.record(z.string(), z.unknown()),
  })
  .meta({ id: "OutboxMessage" });

const consensusSourceSchema = z.object({
  version_id: id,
  annotator_id: id,
  annotator_name: z.string(),
  sensitivity: z.number().nullable().meta({ description: "STAPLE's estimate (majority vote: against the consensus), 0–1; null: undefined" }),
  specificity: z.number().nullable(),
});

export const qualityReportSchema = z
  .object({
    campaign_id: id,
    consensus: z.array(
      z.object({
        consensus_id: id,
        image_id: id,
        image_name: z.string(),
        round: z.int(),
        method: z.enum(["staple", "majority"]),
        annotators: z.array(consensusSourceSchema),
        pairs: z.array(z.object({ a_version_id: id, b_version_id: id, dice: z.number(), cldice: z.number().nullable() })),
      }),
    ),
    agreement: z.object({ dice_mean: z.number().nullable(), cldice_mean: z.number().nullable(), pairs: z.int() }),
    reviews: z.array(
      z.object({ doctor_id: id, doctor_name: z.string(), accepted: z.int(), returned: z.int(), pending: z.int(), review_active_ms: z.number() }),
    ),
    honeypots: z.object({
      scores: z.array(
        z.object({
          task_id: id,
          version_id: id,
          doctor_id: id,
          doctor_name: z.string(),
          campaign_id: id.nullable(),
          round: z.int().nullable(),
          image_name: z.string(),
          dice: z.number(),
          cldice: z.number().nullable(),
          scored_at: ts,
        }),
      ),
      by_doctor: z.array(
        z.object({ doctor_id: id, doctor_name: z.string(), honeypots: z.int(), dice_mean: z.number(), cldice_mean: z.number().nullable() }),
      ),
    }),
  })
  .meta({ id: "QualityReport" });
