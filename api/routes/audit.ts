import { z } from "zod";
import { listAudit } from "../../services/audit.js";
import { defineRoute } from "../route.js";
import { auditRowSchema, idQuery } from "../schemas.js";

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
];
