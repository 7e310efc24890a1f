// The embedded mail outbox (services/mail.ts writes <id>.eml + <id>.json under
// $MEDLOOP_DATA_DIR/outbox). Its task e-mails carry working links, i.e. credentials, so:
// - everyone sees their own messages whole: matched by the recipient's user id recorded with
//   the message, else by the whole normalised address (never by substring);
// - lab leads and admins also see that every other message was sent (recipient, subject, time,
//   template, task), redacted: no link in the listing nor in the .eml (composed again without it);
// - doctors and auditors see nothing of other people's mail (404, as for a missing message).
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { AppError } from "../../services/errors.js";
import { isOutboxRecipient, listOutbox, redactedEml, redactOutboxEntry, type OutboxEntry } from "../../services/mail.js";
import type { User } from "../../services/users.js";
import { ALL_ROLES } from "../present.js";
import { defineRoute } from "../route.js";
import { outboxEntrySchema } from "../schemas.js";

type View = "whole" | "redacted" | "hidden";

function viewOf(user: User, entry: OutboxEntry): View {
  if (isOutboxRecipient(entry, user)) return "whole";
  return user.role === "admin" || user.role === "lab_lead" ? "redacted" : "hidden";
}

/** The documented fields only (not the recorded recipient id, nor whatever a later version adds). */
function present(entry: OutboxEntry, view: View): z.infer<typeof outboxEntrySchema> {
  const e = view === "redacted" ? redactOutboxEntry(entry) : entry;
  return { id: e.id, messageId: e.messageId, to: e.to, from: e.from, subject: e.subject, text: e.text, sentAt: e.sentAt, meta: e.meta };
}

export const outboxRoutes = [
  defineRoute({
    method: "get",
    path: "/outbox",
    operationId: "listOutbox",
    summary:
      "E-mails written to the outbox folder, newest first: each user's own whole; lab leads and admins also every other one, " +
      "with its links withheld (meta.redacted = true)",
    tag: "outbox",
    access: ALL_ROLES,
    query: z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() }),
    responses: { 200: { description: "messages", schema: z.array(outboxEntrySchema) } },
    async handler({ deps, user, query, res }) {
      res.setHeader("cache-control", "private, no-store"); // the caller's own messages hold working links
      const shown = (await listOutbox(deps.config.outboxDir))
        .map((e) => ({ e, view: viewOf(user!, e) }))
        .filter((x) => x.view !== "hidden");
      return shown.slice(0, (query as { limit?: number }).limit ?? 200).map((x) => present(x.e, x.view));
    },
  }),
  defineRoute({
    method: "get",
    path: "/outbox/:messageId",
    operationId: "getOutboxMessage",
    summary: "One outbox message (RFC 822 .eml): as sent to its recipient; for lab leads and admins otherwise, composed again with its links withheld",
    tag: "outbox",
    access: ALL_ROLES,
    // Hex ids; `<milliseconds>-<hex>` is how messages without an idempotency key were named before.
    params: z.object({ messageId: z.string().regex(/^(?:[0-9a-f]{8,64}|\d{13}-[0-9a-f]{12})$/, "an outbox message id (hex)") }),
    responses: { 200: { description: "the message", contentType: "message/rfc822" } },
    async handler({ deps, user, params, res }) {
      const id = params.messageId;
      let entry: OutboxEntry;
      try {
        entry = JSON.parse(await readFile(path.join(deps.config.outboxDir, `${id}.json`), "utf8")) as OutboxEntry;
      } catch {
        throw new AppError("not_found", `outbox message ${id} not found`);
      }
      const view = viewOf(user!, entry);
      if (view === "hidden") throw new AppError("not_found", `outbox message ${id} not found`);
      const eml = view === "whole" ? await readFile(path.join(deps.config.outboxDir, `${id}.eml`)) : await redactedEml(entry);
      res.setHeader("content-type", "message/rfc822");
      // A recipient's copy holds a working link: no shared cache may keep it.
      res.setHeader("cache-control", "private, no-store");
      res.status(200).end(eml);
      return undefined;
    },
  }),
];
