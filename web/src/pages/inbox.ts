// The doctor's inbox: open tasks first (due date order), then the finished ones.

import { api, ApiError, asList } from "../api/client.js";
import type { PullableCampaign, PulledTask, Task } from "../api/types.js";
import { formatDate, h } from "../ui/dom.js";
import type { Page } from "./page.js";

const KIND_LABEL: Record<string, string> = { annotate: "Draw from scratch", correct: "Correct a prediction" };

function dueClass(t: Task): string {
  if (!t.due_at || t.state !== "open") return "";
  const left = new Date(t.due_at).getTime() - Date.now();
  return left < 0 ? "overdue" : left < 24 * 3600_000 ? "due-soon" : "";
}

/**
 * "Next image" per running continuous campaign: the campaign chooses the most useful image under
 * its newest model, creates the correction task for this doctor, and the task opens.
 */
async function pullSection(): Promise<HTMLElement | null> {
  const campaigns = asList<PullableCampaign>(await api.get("/campaigns/pullable"), "campaigns");
  if (campaigns.length === 0) return null;
  const error = h("p", { class: "error", role: "alert" });
  const pullButton = (c: PullableCampaign) => {
    const button = h("button", { class: "primary", "data-testid": `pull-${c.id}` }, "Next image") as HTMLButtonElement;
    button.addEventListener("click", async () => {
      button.disabled = true;
      error.textContent = "";
      try {
        const pulled = await api.post<PulledTask>(`/campaigns/${c.id}/pull`);
        location.hash = `#/tasks/${pulled.task.id}`;
      } catch (err) {
        error.textContent = err instanceof ApiError ? err.message : String(err);
        button.disabled = false;
      }
    });
    return button;
  };
  return h(
    "section",
    { class: "card", "data-testid": "pull-campaigns" },
    h("h2", {}, "Correct the next image"),
    h("p", { class: "muted" }, "These campaigns retrain after every correction; each one gives you the image its newest model would learn most from."),
    h(
      "table",
      { class: "grid" },
      h("tbody", {}, campaigns.map((c) => h("tr", {}, h("td", {}, c.name), h("td", {}, c.project_name), h("td", {}, pullButton(c))))),
    ),
    error,
  );
}

export const inboxPage: Page = async (root) => {
  root.appendChild(h("h1", {}, "Your tasks"));
  const pull = await pullSection();
  if (pull) root.appendChild(pull);
  const tasks = asList<Task>(await api.get("/tasks/mine"), "tasks");
  const open = tasks
    .filter((t) => t.state === "open")
    .sort((a, b) => (a.due_at ?? "9999").localeCompare(b.due_at ?? "9999") || a.id - b.id);
  const rest = tasks.filter((t) => t.state !== "open").sort((a, b) => b.id - a.id);
  if (tasks.length === 0) {
    if (!pull) root.appendChild(h("p", { class: "muted" }, "No tasks yet. You will get an e-mail when one is assigned to you."));
    return;
  }
  const table = (rows: Task[], actionable: boolean) =>
    h(
      "table",
      { class: "grid", "data-testid": actionable ? "inbox-open" : "inbox-done" },
      h("thead", {}, h("tr", {}, ["Task", "Image", "Kind", "Campaign", "Due", "State", ""].map((c) => h("th", {}, c)))),
      h(
        "tbody",
        {},
        rows.map((t) =>
          h(
            "tr",
            { class: dueClass(t), "data-task-id": t.id },
            h("td", {}, `#${t.id}`),
            h("td", {}, t.image_name),
            h("td", {}, h("span", { class: `badge kind-${t.kind}` }, KIND_LABEL[t.kind] ?? t.kind)),
            h("td", {}, t.campaign_id ? `#${t.campaign_id}, round ${t.round ?? 0}` : "—"),
            h("td", {}, formatDate(t.due_at)),
            h("td", {}, t.state.replace("_", " ")),
            h("td", {}, actionable ? h("a", { class: "button primary", href: `#/tasks/${t.id}` }, t.kind === "correct" ? "Correct" : "Draw") : ""),
          ),
        ),
      ),
    );
  root.appendChild(h("h2", {}, `Open (${open.length})`));
  root.appendChild(open.length ? table(open, true) : h("p", { class: "muted" }, "Nothing open. Thank you!"));
  if (rest.length) {
    root.appendChild(h("h2", {}, "Submitted and closed"));
    root.appendChild(table(rest, false));
  }
};
