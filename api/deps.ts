// What the HTTP app needs from outside. The Temporal-facing parts are dependencies so that the
// API runs against the real Temporal client (api/server.ts) and tests can leave them out for
// routes that stop before Temporal.
import type { Router } from "express";
import type { Pool } from "../db/pool.js";
import type { BlobStore } from "../services/blobs.js";
import type { CampaignWorkflows } from "../services/campaigns.js";
import type { Config } from "../services/config.js";
import type { NotifyReview } from "../services/reviews.js";
import type { NotifySubmission } from "../services/tasks.js";

export interface AppDeps {
  pool: Pool;
  blobs: BlobStore;
  config: Config;
  /** Null: campaign routes answer 503 once they would need Temporal. */
  campaigns: CampaignWorkflows | null;
  /** Null: submissions to tasks with a workflow answer 503 after storing the version. */
  notifySubmission: NotifySubmission | null;
  /** Null or absent: review decisions on tasks with a workflow answer 503 after storing the decision. */
  notifyReview?: NotifyReview | null;
  /** Secret of the signed task links in e-mails (services/mail.ts); null disables link login. */
  linkSecret: string | null;
  /**
   * The model-serving router (serving/index.ts deploymentServing) mounted at the root: /v2/…,
   * /v1/models/…, /metrics. Absent: createApp builds one over `pool` and `blobs`.
   */
  serving?: { router: Router };
  /** Check every JSON answer against its documented schema (tests turn this on). */
  checkResponses?: boolean;
}
