import { z } from "zod";
import { issueToken, login, revokeToken } from "../../services/auth.js";
import { appendAudit } from "../../services/audit.js";
import { AppError } from "../../services/errors.js";
import { verifyTaskLink } from "../../services/mail.js";
import { getUser } from "../../services/users.js";
import { ALL_ROLES } from "../present.js";
import { defineRoute } from "../route.js";
import { loginResultSchema, userSchema } from "../schemas.js";

const TASK_LINK_TTL_SECONDS = 8 * 3600;

export const authRoutes = [
  defineRoute({
    method: "post",
    path: "/auth/login",
    operationId: "login",
    summary: "Exchange e-mail and password for a bearer token",
    tag: "auth",
    access: "public",
    body: { kind: "json", schema: z.object({ email: z.string().min(3), password: z.string().min(1) }).meta({ id: "LoginInput" }) },
    responses: { 200: { description: "token", schema: loginResultSchema } },
    async handler({ deps, body }) {
      const b = body as { email: string; password: string };
      return login(deps.pool, b.email, b.password, deps.config.tokenTtlSeconds);
    },
  }),
  defineRoute({
    method: "post",
    path: "/auth/task-link",
    operationId: "loginWithTaskLink",
    summary: "Exchange the signed task link of an e-mail for a short-lived token of that doctor",
    tag: "auth",
    access: "public",
    body: { kind: "json", schema: z.object({ link: z.string().min(1) }).meta({ id: "TaskLinkInput" }) },
    responses: {
      200: {
        description: "token and the task the link names",
        schema: loginResultSchema.extend({ task_id: z.int() }).meta({ id: "TaskLinkLogin" }),
      },
    },
    async handler({ deps, body }) {
      if (!deps.linkSecret) throw new AppError("unauthenticated", "task links are not enabled on this server");
      const claims = verifyTaskLink((body as { link: string }).link, deps.linkSecret);
      if (!claims) throw new AppError("unauthenticated", "the task link is invalid or expired");
      const user = await getUser(deps.pool, Number(claims.doctorId));
      if (!user.active || user.role !== "doctor") throw new AppError("unauthenticated", "the task link's doctor is not active");
      const issued = await issueToken(deps.pool, user.id, TASK_LINK_TTL_SECONDS);
      await appendAudit(deps.pool, { actorId: user.id, action: "auth.task_link", entity: "task", entityId: claims.taskId });
      return { ...issued, user, task_id: Number(claims.taskId) };
    },
  }),
  defineRoute({
    method: "get",
    path: "/auth/me",
    operationId: "me",
    summary: "The caller",
    tag: "auth",
    access: ALL_ROLES,
    responses: { 200: { description: "the authenticated user", schema: userSchema } },
    async handler({ user }) {
      return user;
    },
  }),
  defineRoute({
    method: "post",
    path: "/auth/logout",
    operationId: "logout",
    summary: "Revoke the caller's token",
    tag: "auth",
    access: ALL_ROLES,
    status: 204,
    responses: { 204: { description: "revoked" } },
    async handler({ deps, req, res }) {
      const token = /^Bearer\s+(\S+)$/i.exec(req.get("authorization") ?? "")?.[1];
      if (token) await revokeToken(deps.pool, token);
      res.status(204).end();
      return undefined;
    },
  }),
];
