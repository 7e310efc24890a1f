// The `sendTaskEmail` activity: tells a doctor about a task (assigned, reminder,
// reassigned away) with a signed link to it. The message's idempotency key is the
// activity's workflow id + activity id, so a retried attempt does not mail twice
// (in the outbox; an SMTP server may still see a retry after a lost reply).
import { Context } from "@temporalio/activity";
import type { Mailer } from "../services/mail.js";
import { signTaskLink } from "../services/mail.js";
import type { Doctor, TaskKind } from "../workflows/types.js";

export type EmailTemplate = "assigned" | "reminder" | "reassigned_away";

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
  baseUrl: string;
  /** How long a link stays valid, in seconds. */
  linkTtlSeconds?: number;
}

const WHAT: Record<TaskKind, string> = {
  annotate: "draw the vessel mask of",
  correct: "correct the network's vessel mask of",
};

export function composeTaskEmail(input: TaskEmailInput, link: string): { subject: string; text: string } {
  const what = `${WHAT[input.taskKind]} image ${input.imageId} (round ${input.round})`;
  const due = input.dueAt ? `\nPlease submit it by ${input.dueAt}.` : "";
  switch (input.template) {
    case "assigned":
      return {
        subject: `medloop: new ${input.taskKind} task ${input.taskId}`,
        text: `Hello ${input.to.name},\n\nyou have a new task: ${what}.${due}\n\nOpen it here: ${link}\n`,
      };
    case "reminder":
      return {
        subject: `medloop: reminder for task ${input.taskId}`,
        text: `Hello ${input.to.name},\n\na reminder: task ${input.taskId} is still open (${what}).\n\nOpen it here: ${link}\n`,
      };
    case "reassigned_away":
      return {
        subject: `medloop: task ${input.taskId} was reassigned`,
        text: `Hello ${input.to.name},\n\ntask ${input.taskId} (${what}) was open too long and has been given to another doctor. Nothing more is needed from you.\n`,
      };
  }
}

export function createNotifyActivities(deps: NotifyDeps) {
  async function sendTaskEmail(input: TaskEmailInput): Promise<{ messageId: string; link: string }> {
    const info = Context.current().info;
    const exp = Math.floor(Date.now() / 1000) + (deps.linkTtlSeconds ?? 30 * 24 * 3600);
    const link = signTaskLink(deps.baseUrl, deps.linkSecret, { taskId: input.taskId, doctorId: input.to.userId, exp });
    const { subject, text } = composeTaskEmail(input, link);
    const sent = await deps.mailer.send({
      to: input.to.email,
      subject,
      text,
      idempotencyKey: `${info.workflowExecution?.workflowId ?? "direct"}/${info.activityId}`,
      meta: { template: input.template, taskId: input.taskId, doctorId: input.to.userId, link },
    });
    return { messageId: sent.messageId, link };
  }
  return { sendTaskEmail };
}

export type NotifyActivities = ReturnType<typeof createNotifyActivities>;
