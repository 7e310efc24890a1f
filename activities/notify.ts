// The `sendTaskEmail` activity: tells a doctor about a task (assigned, reminder,
// reassigned away). "assigned" and "reminder" carry a fresh single-use link
// (services/taskLinks.ts) built from MEDLOOP_PUBLIC_URL; issuing it voids the task's older
// unused links, so after a reminder or a reassignment only the latest e-mail opens the task.
// A reminder gets a new link rather than repeating the first: only the nonce's hash is kept,
// so the first link cannot be rebuilt, and the new one runs its full lifetime from the reminder.
// The message's idempotency key is the activity's workflow id + activity id, so a retried
// attempt does not mail twice (in the outbox; an SMTP server may still see a retry after a
// lost reply), and the link is derived from the same key, so the retry rebuilds the same link.
import { Context } from "@temporalio/activity";
import type { Mailer } from "../services/mail.js";
import { issueTaskLink, type TaskLinkStore } from "../services/taskLinks.js";
import type { Doctor, TaskKind } from "../workflows/types.js";

export type EmailTemplate = "assigned" | "reminder" | "reassigned_away" | "returned";

export interface TaskEmailInput {
  template: EmailTemplate;
  taskId: string;
  to: Doctor;
  taskKind: TaskKind;
  imageId: string;
  round: number;
  dueAt: string | null;
}

export interface NotifyDeps {
  mailer: Mailer;
  linkSecret: string;
  /** MEDLOOP_PUBLIC_URL (config.publicUrl): where doctors open the UI. */
  baseUrl: string;
  /** Where issued links are recorded (pgTaskLinkStore in the worker). */
  links: TaskLinkStore;
  /** How long a link stays valid, in seconds (config.taskLinkTtlSeconds; default 7 days). */
  linkTtlSeconds?: number;
}

const DEFAULT_LINK_TTL_SECONDS = 7 * 24 * 3600;

const WHAT: Record<TaskKind, string> = {
  annotate: "draw the vessel mask of",
  correct: "correct the network's vessel mask of",
};

/** `link` is null only for "reassigned_away", which has nothing to open. */
export function composeTaskEmail(input: TaskEmailInput, link: string | null): { subject: string; text: string } {
  const what = `${WHAT[input.taskKind]} image ${input.imageId} (round ${input.round})`;
  const due = input.dueAt ? `\nPlease submit it by ${input.dueAt}.` : "";
  // The link opens the task once (services/taskLinks.ts); the password login always works.
  const open = link
    ? `Open it here: ${link}\n\nThe link works once, for this task only; afterwards, log in to medloop with your password.`
    : "Log in to medloop to open it.";
  switch (input.template) {
    case "assigned":
      return {
        subject: `medloop: new ${input.taskKind} task ${input.taskId}`,
        text: `Hello ${input.to.name},\n\nyou have a new task: ${what}.${due}\n\n${open}\n`,
      };
    case "reminder":
      return {
        subject: `medloop: reminder for task ${input.taskId}`,
        text: `Hello ${input.to.name},\n\na reminder: task ${input.taskId} is still open (${what}).\n\n${open}\n`,
      };
    case "returned":
      return {
        subject: `medloop: task ${input.taskId} was returned by a reviewer`,
        text: `Hello ${input.to.name},\n\na reviewer returned your mask for task ${input.taskId} (${what}). It opens with your mask, the reviewer's comment and the marked region.\n\n${open}\n`,
      };
    case "reassigned_away":
      return {
        subject: `medloop: task ${input.taskId} was reassigned`,
        text: `Hello ${input.to.name},\n\ntask ${input.taskId} (${what}) was open too long and has been given to another doctor. Nothing more is needed from you.\n`,
      };
  }
}

export function createNotifyActivities(deps: NotifyDeps) {
  async function sendTaskEmail(input: TaskEmailInput): Promise<{ messageId: string; link: string | null }> {
    const info = Context.current().info;
    const key = `${info.workflowExecution?.workflowId ?? "direct"}/${info.activityId}`;
    const link =
      input.template === "reassigned_away"
        ? null
        : (
            await issueTaskLink(
              deps.links,
              { secret: deps.linkSecret, baseUrl: deps.baseUrl, ttlSeconds: deps.linkTtlSeconds ?? DEFAULT_LINK_TTL_SECONDS },
              { taskId: input.taskId, doctorId: input.to.userId, issueKey: key },
            )
          ).link;
    const { subject, text } = composeTaskEmail(input, link);
    const sent = await deps.mailer.send({
      to: input.to.email,
      toUserId: input.to.userId,
      subject,
      text,
      idempotencyKey: key,
      meta: { template: input.template, taskId: input.taskId, doctorId: input.to.userId, ...(link ? { link } : {}) },
    });
    return { messageId: sent.messageId, link };
  }
  /**
   * Reminds reviewers (and, once escalated, lab leads) that a submitted mask waits for review.
   * No link: a review is opened after logging in (reviewers' sessions, not task links).
   */
  async function sendReviewReminder(input: { reviewId: string; taskId: string; to: Doctor[] }): Promise<{ sent: number }> {
    const info = Context.current().info;
    const key = `${info.workflowExecution?.workflowId ?? "direct"}/${info.activityId}`;
    for (const person of input.to) {
      await deps.mailer.send({
        to: person.email,
        toUserId: person.userId,
        subject: `medloop: a mask waits for review (task ${input.taskId})`,
        text: `Hello ${person.name},\n\nthe mask submitted for task ${input.taskId} waits for review ${input.reviewId}. Log in to medloop and open Reviews.\n`,
        idempotencyKey: `${key}/${person.userId}`,
        meta: { template: "review_reminder", taskId: input.taskId, doctorId: person.userId },
      });
    }
    return { sent: input.to.length };
  }
  return { sendTaskEmail, sendReviewReminder };
}

export type NotifyActivities = ReturnType<typeof createNotifyActivities>;
