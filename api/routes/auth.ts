import { z } from "zod";
import { login, revokeToken } from "../../services/auth.js";
import { AppError } from "../../services/errors.js";
import { loginThrottleFor } from "../../services/throttle.js";
import { exchangeTaskLink } from "../../services/taskLinks.js";
import { ALL_ROLES } from "../present.js";
import { defineRoute } from "../route.js";
import { loginResultSchema, userSchema } from "../schemas.js";

export const authRoutes = [
  defineRoute({
    method: "post",
    path: "/auth/login",
    operationId: "login",
    summary: "Exchange e-mail and password for a bearer token",
    tag: "auth",
    access: "public",
    body: {
      kind: "json",
      schema: z
        .object({
          // Bounded and free of control characters: the e-mail is audited (a NUL byte cannot be
          // stored in jsonb) and throttled; 320 is the longest address SMTP allows.
          email: z.string().min(3).max(320).regex(/^[^\p{Cc}]*$/u, "must not contain control characters"),
          // Any password may be tried (the policy applies when one is set), within a bound.
          password: z.string().min(1).max(1000),
        })
        .meta({ id: "LoginInput" }),
    },
    responses: {
      200: { description: "token", schema: loginResultSchema },
      401: { description: "wrong e-mail or password (the same answer for an unknown or disabled account)" },
      429: {
        description:
          "too many failed logins for this account or from this address; `Retry-After` (seconds) says when to try again (the same answer whether the account exists or not)",
      },
    },
    async handler({ deps, body, req, res }) {
      const b = body as { email: string; password: string };
      try {
        return await login(deps.pool, b.email, b.password, deps.config.tokenTtlSeconds, {
          // req.ip honours `trust proxy` (MEDLOOP_TRUST_PROXY): the client behind a reverse proxy.
          address: req.ip ?? null,
          throttle: loginThrottleFor(deps.pool, deps.config.loginThrottle),
        });
      } catch (err) {
        if (err instanceof AppError && err.code === "too_many_requests") {
          res.set("Retry-After", String((err.details as { retry_after_s: number }).retry_after_s));
        }
        throw err;
      }
    },
  }),
  defineRoute({
    method: "post",
    path: "/auth/task-link",
    operationId: "loginWithTaskLink",
    summary:
      "Exchange the signed link of a task e-mail, once, for a short-lived token of that doctor that reaches only that task " +
      "(the link must be unused, unexpired, the task's latest, and the task open and still assigned to that doctor)",
    tag: "auth",
    access: "public",
    body: {
      kind: "json",
      schema: z
        .object({ link: z.string().min(1).max(4096).regex(/^[^\p{Cc}]*$/u, "must not contain control characters") })
        .meta({ id: "TaskLinkInput" }),
    },
    responses: {
      200: {
        description: "token (scoped to the task: services/taskLinks.ts, api/taskScope.ts) and the task the link names",
        schema: loginResultSchema.extend({ task_id: z.int() }).meta({ id: "TaskLinkLogin" }),
      },
      401: {
        description:
          "link refused; `error.details.reason` says why: invalid, expired, unknown, task_missing, used, superseded, revoked, task_closed, reassigned, doctor_inactive",
      },
    },
    async handler({ deps, body }) {
      if (!deps.linkSecret) throw new AppError("unauthenticated", "task links are not enabled on this server");
      return exchangeTaskLink(deps.pool, deps.linkSecret, (body as { link: string }).link);
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
