import { z } from "zod";
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from "../../services/passwordPolicy.js";
import { createUser, listUsers, updateUser, type Role } from "../../services/users.js";
import { defineRoute } from "../route.js";
import { idParam, roleSchema, userSchema } from "../schemas.js";

// The policy itself is checked by services/passwordPolicy.ts (for the API and every other caller),
// so that a refused password answers 400 naming the rule it breaks; the lengths are here for the
// OpenAPI document.
const passwordInput = z.string().meta({
  description: `at least ${PASSWORD_MIN_LENGTH} characters, not blank, no control characters, not one character repeated, not a common password`,
  minLength: PASSWORD_MIN_LENGTH,
  maxLength: PASSWORD_MAX_LENGTH,
});

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
        .object({ email: z.email(), name: z.string().min(1).max(200), role: roleSchema, password: passwordInput })
        .meta({ id: "NewUser" }),
    },
    responses: {
      201: { description: "created", schema: userSchema },
      400: { description: "invalid input; a refused password names its rule (`details.rule`)" },
      409: { description: "a user with this e-mail exists" },
    },
    async handler({ deps, body, user }) {
      return createUser(deps.pool, body as Parameters<typeof createUser>[1], user!.id);
    },
  }),
  defineRoute({
    method: "patch",
    path: "/users/:id",
    operationId: "updateUser",
    summary: "Change a user's name, role, password or active flag (a new password or disabling revokes the user's sessions)",
    tag: "users",
    access: ["admin"],
    params: idParam,
    body: {
      kind: "json",
      schema: z
        .object({ name: z.string().min(1).max(200), role: roleSchema, active: z.boolean(), password: passwordInput })
        .partial()
        .strict()
        .meta({ id: "UserPatch" }),
    },
    responses: {
      200: { description: "updated", schema: userSchema },
      400: { description: "invalid input; a refused password names its rule (`details.rule`)" },
      409: { description: "the user is the last active admin and cannot be demoted or disabled" },
    },
    async handler({ deps, params, body, user }) {
      return updateUser(deps.pool, params.id, body as Parameters<typeof updateUser>[2], user!.id);
    },
  }),
];
