// The embedded mail outbox (services/mail.ts writes <id>.eml + <id>.json under
// $MEDLOOP_DATA_DIR/outbox). A doctor sees only the messages addressed to them.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { AppError } from "../../services/errors.js";
import { listOutbox, type OutboxEntry } from "../../services/mail.js";
import type { User } from "../../services/users.js";
import { ALL_ROLES } from "../present.js";
import { defineRoute } from "../route.js";
import { outboxEntrySchema } from "../schemas.js";

function visible(user: User, entry: OutboxEntry): boolean {
  if (user.role === "admin" || user.role === "lab_lead") return true;
  return entry.to.toLowerCase().includes(user.email.toLowerCase());
}

export const outboxRoutes = [
  defineRoute({
    method: "get",
    path: "/outbox",
    operationId: "listOutbox",
    summary: "E-mails written to the outbox folder, newest first (doctors and auditors: their own)",
    tag: "outbox",
    access: ALL_ROLES,
    query: z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() }),
    responses: { 200: { description: "messages", schema: z.array(outboxEntrySchema) } },
    async handler({ deps, user, query }) {
      const entries = (await listOutbox(deps.config.outboxDir)).filter((e) => visible(user!, e));
      return entries.slice(0, (query as { limit?: number }).limit ?? 200);
    },
  }),
  defineRoute({
    method: "get",
    path: "/outbox/:messageId",
    operationId: "getOutboxMessage",
    summary: "One outbox message as sent (RFC 822 .eml)",
    tag: "outbox",
    access: ALL_ROLES,
    params: z.object({ messageId: z.string().regex(/^[0-9a-f]{8,64}$/, "an outbox message id (hex)") }),
    responses: { 200: { description: "the message", contentType: "message/rfc822" } },
    async handler({ deps, user, params, res }) {
      const id = params.messageId;
      let entry: OutboxEntry;
      try {
        entry = JSON.parse(await readFile(path.join(deps.config.outboxDir, `${id}.json`), "utf8")) as OutboxEntry;
      } catch {
        throw new AppError("not_found", `outbox message ${id} not found`);
      }
      if (!visible(user!, entry)) throw new AppError("not_found", `outbox message ${id} not found`);
      const eml = await readFile(path.join(deps.config.outboxDir, `${id}.eml`));
      res.setHeader("content-type", "message/rfc822");
      res.status(200).end(eml);
      return undefined;
    },
  }),
];
