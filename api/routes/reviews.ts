// Review of submitted masks (issue 14): the reviewers' queue, one review, and the decision.
// Thin over services/reviews.ts; the decision is stored before the task workflow hears of it.
import { z } from "zod";
import { decideReview, getReview, listReviews, type ReviewDecision, type ReviewRegion, type ReviewState, type ReviewView } from "../../services/reviews.js";
import type { Role } from "../../services/users.js";
import { defineRoute } from "../route.js";
import { idParam, idQuery, reviewDecisionSchema, reviewSchema, reviewStateSchema } from "../schemas.js";

/** Who sees reviews: reviewers and lab leads (who decide them), auditors and admins (who read them). */
const REVIEW_READERS: readonly Role[] = ["reviewer", "lab_lead", "auditor", "admin"];

function presentReview(r: ReviewView) {
  // The decision id is the reviewer's client's idempotency key: nothing for other readers.
  const { decision_id: _decisionId, ...rest } = r;
  return { ...rest, image_url: `/api/tasks/${r.task_id}/image`, mask_url: `/api/versions/${r.version_id}/mask` };
}

export const reviewRoutes = [
  defineRoute({
    method: "get",
    path: "/reviews",
    operationId: "listReviews",
    summary: "Reviews by state (default pending: the reviewers' queue), oldest first",
    tag: "reviews",
    access: REVIEW_READERS,
    query: z.object({ state: reviewStateSchema.optional(), campaign_id: idQuery.optional() }),
    responses: { 200: { description: "reviews", schema: z.array(reviewSchema) } },
    async handler({ deps, query }) {
      const q = query as { state?: ReviewState; campaign_id?: number };
      return (await listReviews(deps.pool, { state: q.state, campaignId: q.campaign_id })).map(presentReview);
    },
  }),
  defineRoute({
    method: "get",
    path: "/reviews/:id",
    operationId: "getReview",
    summary: "One review with its task, image and submitted mask",
    tag: "reviews",
    access: REVIEW_READERS,
    params: idParam,
    responses: { 200: { description: "the review", schema: reviewSchema } },
    async handler({ deps, params }) {
      return presentReview(await getReview(deps.pool, params.id));
    },
  }),
  defineRoute({
    method: "post",
    path: "/reviews/:id/decision",
    operationId: "decideReview",
    summary: "Accept the submitted mask, or return it to the doctor with a comment and a marked region",
    tag: "reviews",
    access: ["reviewer", "lab_lead"],
    params: idParam,
    body: { kind: "json", schema: reviewDecisionSchema },
    responses: {
      200: { description: "the decided review", schema: reviewSchema },
      400: { description: "a return without a comment, a region outside the image, a bad time" },
      403: { description: "the caller's own mask" },
      409: { description: "already decided (another decision_id) or cancelled" },
      503: { description: "stored, but the task workflow was not told: retry with the same decision_id" },
    },
    async handler({ deps, user, params, body }) {
      const b = body as { decision: ReviewDecision; comment?: string | null; region?: ReviewRegion | null; active_ms: number; decision_id: string };
      const decided = await decideReview({ pool: deps.pool, notify: deps.notifyReview ?? null }, user!, {
        reviewId: params.id,
        decision: b.decision,
        comment: b.comment ?? null,
        region: b.region ?? null,
        activeMs: b.active_ms,
        decisionId: b.decision_id,
      });
      return presentReview(decided);
    },
  }),
];
