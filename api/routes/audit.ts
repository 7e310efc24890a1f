import { z } from "zod";
import { listAudit } from "../../services/audit.js";
import { verifyAuditChain } from "../../services/auditChain.js";
import { defineRoute } from "../route.js";
import { auditRowSchema, chainReportSchema, idQuery } from "../schemas.js";

export const auditRoutes = [
  defineRoute({
    method: "get",
    path: "/audit",
    operationId: "listAudit",
    summary: "The append-only audit log, newest first",
    tag: "audit",
    access: ["auditor", "admin"],
    query: z.object({
      entity: z.string().max(50).optional(),
      entity_id: z.string().max(100).optional(),
      action: z.string().max(100).optional(),
      actor_id: idQuery.optional(),
      before_id: idQuery.optional().meta({ description: "page: entries older than this id" }),
      limit: z.coerce.number().int().min(1).max(1000).optional(),
    }),
    responses: { 200: { description: "entries", schema: z.array(auditRowSchema) } },
    async handler({ deps, query }) {
      const q = query as { entity?: string; entity_id?: string; action?: string; actor_id?: number; before_id?: number; limit?: number };
      return listAudit(deps.pool, {
        entity: q.entity,
        entityId: q.entity_id,
        action: q.action,
        actorId: q.actor_id,
        beforeId: q.before_id,
        limit: q.limit,
      });
    },
  }),
  defineRoute({
    method: "get",
    path: "/audit/verify",
    operationId: "verifyAudit",
    summary:
      "Recomputes the audit log's hash chain (docs/api.md, Audit): ok, the rows checked, the head (keep it elsewhere) and " +
      "the first broken row with the reason. `head=SEQ:HASH` (a head kept earlier) also checks the chain still holds that row",
    tag: "audit",
    access: ["auditor", "admin"],
    query: z.object({
      head: z
        .string()
        .regex(/^\d+:[0-9a-f]{64}$/, "must look like SEQ:HASH, as a head is given")
        .optional()
        .meta({ description: "a head kept earlier, SEQ:HASH" }),
    }),
    responses: { 200: { description: "the verification", schema: chainReportSchema } },
    async handler({ deps, query }) {
      const head = (query as { head?: string }).head;
      const [seq, hash] = head ? head.split(":") : [];
      return verifyAuditChain(deps.pool, head ? { chain_seq: Number(seq), hash: hash! } : undefined);
    },
  }),
];
