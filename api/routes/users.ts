import { z } from "zod";
import { createUser, listUsers, updateUser, type Role } from "../../services/users.js";
import { defineRoute } from "../route.js";
import { idParam, roleSchema, userSchema } from "../schemas.js";

export const userRoutes = [
  defineRoute({
    method: "get",
    path: "/users",
    operationId: "listUsers",
    summary: "List users (lab leads see them to know the doctors)",
    tag: "users",
    access: ["admin", "lab_lead"],
    query: z.object({ role: roleSchema.optional() }),
    responses: { 200: { description: "users", schema: z.array(userSchema) } },
    async handler({ deps, query }) {
      return listUsers(deps.pool, (query as { role?: Role }).role);
    },
  }),
  defineRoute({
    method: "post",
    path: "/users",
    operationId: "createUser",
    summary: "Create a user",
    tag: "users",
    access: ["admin"],
    status: 201,
    body: {
      kind: "json",
      schema: z
        .object({ email: z.email(), name: z.string().min(1).max(200), role: roleSchema, password: z.string().min(8).max(200) })
        .meta({ id: "NewUser" }),
    },
    responses: { 201: { description: "created", schema: userSchema } },
    async handler({ deps, body, user }) {
      return createUser(deps.pool, body as Parameters<typeof createUser>[1], user!.id);
    },
  }),
  defineRoute({
    method: "patch",
    path: "/users/:id",
    operationId: "updateUser",
    summary: "Change a user's name, role, password or active flag",
    tag: "users",
    access: ["admin"],
    params: idParam,
    body: {
      kind: "json",
      schema: z
        .object({ name: z.string().min(1).max(200), role: roleSchema, active: z.boolean(), password: z.string().min(8).max(200) })
        .partial()
        .strict()
        .meta({ id: "UserPatch" }),
    },
    responses: { 200: { description: "updated", schema: userSchema } },
    async handler({ deps, params, body, user }) {
      return updateUser(deps.pool, params.id, body as Parameters<typeof updateUser>[2], user!.id);
    },
  }),
];
