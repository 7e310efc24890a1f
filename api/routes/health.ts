import { z } from "zod";
import { defineRoute } from "../route.js";

export const healthRoutes = [
  defineRoute({
    method: "get",
    path: "/health",
    operationId: "health",
    summary: "Liveness and database reachability",
    tag: "health",
    access: "public",
    responses: { 200: { description: "up", schema: z.object({ status: z.literal("ok"), database: z.literal("ok") }) } },
    async handler({ deps }) {
      await deps.pool.query("SELECT 1");
      return { status: "ok", database: "ok" };
    },
  }),
];
