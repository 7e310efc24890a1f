// The reviewers' queue: submitted masks waiting for a reviewer (campaigns with `review`), oldest
// first, and the decided ones on request. The list refreshes itself while the page is open, so
// a submission that arrives shows up without a reload.

import { api, ApiError, asList } from "../api/client.js";
import type { Review, ReviewState } from "../api/types.js";
import { fill, formatDate, h } from "../ui/dom.js";
import type { Page } from "./page.js";

const REFRESH_MS = 5000;

const STATE_LABEL: Record<ReviewState, string> = {
  pending: "Waiting for review",
  accepted: "Accepted",
  returned: "Returned to the doctor",
  cancelled: "Cancelled",
};

/** "12 min", "3 h", "2 d": how long ago, roughly. */
export function waitedFor(since: string, now = Date.now()): string {
  const ms = Math.max(0, now - new Date(since).getTime());
  const min = Math.floor(ms / 60_000);
  if (min < 1) return "just now";
  if (min < 60) return `${min} min`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}

export const reviewsPage: Page = async (root) => {
  root.appendChild(h("h1", {}, "Reviews"));
  const stateSelect = h(
    "select",
    { "data-testid": "review-state-filter", title: "Which reviews to list" },
    (Object.keys(STATE_LABEL) as ReviewState[]).map((s) => h("option", { value: s }, STATE_LABEL[s])),
  );
  const box = h("div", { "data-testid": "reviews" });
  const error = h("p", { class: "error", role: "alert" });
  root.append(
    h("p", { class: "muted" }, "Submitted masks wait here until a reviewer accepts them or returns them to their doctor with a comment."),
    h("div", { class: "toolbar" }, h("label", { class: "check" }, "Show", stateSelect)),
    error,
    box,
  );

  async function load(): Promise<void> {
    const state = stateSelect.value as ReviewState;
    let reviews: Review[];
    try {
      reviews = asList<Review>(await api.get("/reviews", { state }), "reviews");
      error.textContent = "";
    } catch (err) {
      error.textContent = `The reviews could not be loaded: ${err instanceof ApiError ? err.message : (err as Error).message}`;
      return;
    }
    if (stateSelect.value !== state) return; // the filter changed while loading
    const pending = state === "pending";
    fill(
      box,
      h("h2", {}, `${STATE_LABEL[state]} (${reviews.length})`),
      reviews.length === 0
        ? h("p", { class: "muted", "data-testid": "reviews-empty" }, pending ? "Nothing to review. Thank you!" : "None.")
        : h(
            "table",
            { class: "grid", "data-testid": `reviews-${state}` },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Review", "Image", "Doctor", "Campaign", "Kind", pending ? "Waiting since" : "Decided", pending ? "" : "Reviewer"].map((c) => h("th", {}, c)),
              ),
            ),
            h(
              "tbody",
              {},
              reviews.map((r) =>
                h(
                  "tr",
                  { "data-review-id": r.id },
                  h("td", {}, `#${r.id}`),
                  h("td", {}, r.image_name),
                  h("td", {}, r.doctor_name),
                  h("td", {}, r.campaign_id ? `#${r.campaign_id}, round ${r.round ?? 0}` : "—"),
                  h("td", {}, h("span", { class: `badge kind-${r.task_kind}` }, r.task_kind === "correct" ? "correction" : "drawn from scratch")),
                  h(
                    "td",
                    { title: formatDate(pending ? r.created_at : r.decided_at) },
                    pending ? `${formatDate(r.created_at)} (${waitedFor(r.created_at)})` : formatDate(r.decided_at),
                  ),
                  h(
                    "td",
                    {},
                    pending
                      ? h("a", { class: "button primary", href: `#/reviews/${r.id}`, "data-testid": `open-review-${r.id}` }, "Review")
                      : h("span", {}, r.reviewer_name ?? "—", " · ", h("a", { href: `#/reviews/${r.id}` }, "view")),
                  ),
                ),
              ),
            ),
          ),
    );
  }

  stateSelect.addEventListener("change", () => void load());
  await load();
  let stopped = false;
  const timer = setInterval(() => {
    if (!stopped && document.visibilityState === "visible") void load();
  }, REFRESH_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
};
