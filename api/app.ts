// The Express app factory. Every route of api/routes/*.ts passes the same chain:
// authenticate → check the role → parse the body → validate params, query and body with zod →
// handler → (optionally) check the answer against its documented schema.
import express, { type NextFunction, type Request, type RequestHandler, type Response } from "express";
import { z } from "zod";
import { authenticateSession } from "../services/auth.js";
import { deploymentServing } from "../serving/index.js";
import { AppError } from "../services/errors.js";
import type { User } from "../services/users.js";
import type { AppDeps } from "./deps.js";
import { buildOpenApi } from "./openapi.js";
import type { RouteDef } from "./route.js";
import { allRoutes } from "./routes/index.js";
import { inputTextProblem } from "./schemas.js";
import { acceptsQueryToken, assertInTaskScope, QUERY_TOKEN_REFUSED } from "./taskScope.js";

function bearerToken(req: Request, route: RouteDef): string | null {
  // An <img src> cannot send headers, so image GETs may carry the token as ?access_token=; on
  // any other route it is refused outright (even beside a header), so no client keeps putting
  // tokens into URLs, where logs, history and Referer headers keep them.
  const query = req.query.access_token;
  if (query !== undefined && !acceptsQueryToken(route, req)) throw new AppError("unauthenticated", QUERY_TOKEN_REFUSED);
  const header = req.get("authorization");
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    return match ? match[1]! : null;
  }
  return typeof query === "string" && query ? query : null;
}

/** "field: message" for the first zod issues, so the answer names the problem. */
export function describeZodError(err: z.ZodError, where: string): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${where}${i.path.length ? `.${i.path.join(".")}` : ""}: ${i.message}`)
    .join("; ");
}

/**
 * Validates one part of the request (path, query or JSON body). NUL characters (and absurd nesting)
 * are refused here for every route and every string, declared or not (PostgreSQL cannot store NUL:
 * one that reached a query would answer 500 after part of the work was done), before the route's
 * schema.
 */
function parseWith<T extends z.ZodType>(schema: T | undefined, value: unknown, where: string): unknown {
  const problem = inputTextProblem(value, where);
  if (problem) throw new AppError("validation_failed", problem);
  if (!schema) return value;
  const result = schema.safeParse(value);
  if (!result.success) throw new AppError("validation_failed", describeZodError(result.error, where));
  return result.data;
}

function authMiddleware(route: RouteDef, deps: AppDeps): RequestHandler {
  return async (req, res, next) => {
    const token = bearerToken(req, route);
    if (route.access === "public") return next();
    if (!token) throw new AppError("unauthenticated", "missing bearer token (Authorization: Bearer <token>)");
    const session = await authenticateSession(deps.pool, token);
    if (!session) throw new AppError("unauthenticated", "the token is unknown, expired or revoked; log in again");
    const { user, scope } = session;
    if (!route.access.includes(user.role)) {
      throw new AppError("forbidden", `${route.method.toUpperCase()} /api${route.path} needs role ${route.access.join(" or ")}`);
    }
    if (scope) assertInTaskScope(route, req, scope.taskId);
    res.locals.user = user;
    next();
  };
}

function bodyParser(route: RouteDef, deps: AppDeps): RequestHandler | null {
  const limit = deps.config.maxUploadBytes;
  if (!route.body) return null;
  if (route.body.kind === "json") {
    const json = express.json({ limit });
    return (req, res, next) => {
      // No body at all reads as {} (e.g. POST /campaigns/:id/stop without a reason).
      const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
      if (!hasBody) {
        req.body = {};
        return next();
      }
      if (!req.is("application/json")) {
        return next(new AppError("unsupported_media_type", "the body must be application/json"));
      }
      json(req, res, next);
    };
  }
  const types = [...route.body.types, ...(route.body.multipart ? ["multipart/form-data"] : [])];
  const raw = express.raw({ type: () => true, limit });
  return (req, res, next) => {
    if (!req.is(types)) {
      return next(new AppError("unsupported_media_type", `the body must be one of ${types.join(", ")}, got ${req.get("content-type") ?? "none"}`));
    }
    raw(req, res, next);
  };
}

function handlerOf(route: RouteDef, deps: AppDeps): RequestHandler {
  return async (req: Request, res: Response) => {
    const user = (res.locals.user as User | undefined) ?? null;
    const params = parseWith(route.params, req.params, "path");
    const query = parseWith(route.query, req.query, "query");
    const body = route.body?.kind === "json" ? parseWith(route.body.schema, req.body, "body") : req.body;
    const value = await route.handler({ deps, user, params, query, body, req, res });
    if (value === undefined || res.headersSent) return;
    const status = route.status ?? 200;
    const schema = route.responses[status]?.schema;
    if (deps.checkResponses && schema) {
      const result = schema.safeParse(JSON.parse(JSON.stringify(value)));
      if (!result.success) {
        throw new AppError("internal", `answer of ${route.operationId} does not match its schema: ${describeZodError(result.error, "response")}`);
      }
    }
    res.status(status).json(value);
  };
}

/** Body-parser and other errors → {error: {code, message}}. */
function errorHandler(err: unknown, _req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) return next(err);
  let appErr: AppError;
  const e = err as { type?: string; status?: number; expose?: boolean; message?: string; limit?: number };
  if (err instanceof AppError) appErr = err;
  else if (err instanceof z.ZodError) appErr = new AppError("validation_failed", describeZodError(err, "input"));
  else if (e?.type === "entity.too.large") appErr = new AppError("payload_too_large", `the body is larger than the limit of ${e.limit} bytes`);
  else if (e?.type === "entity.parse.failed") appErr = new AppError("bad_request", `malformed JSON body: ${e.message}`);
  else if (e?.type === "request.aborted") appErr = new AppError("bad_request", "the request was aborted");
  else if ((e?.expose || err instanceof URIError) && typeof e.status === "number" && e.status >= 400 && e.status < 500) {
    // The other client errors of Express and its body parsers (http-errors with `expose`): a
    // charset or Content-Encoding they cannot read (415), a body that does not inflate, a path
    // with malformed percent-encoding (400). Their messages say what was wrong with the request.
    const code = e.status === 415 ? "unsupported_media_type" : e.status === 413 ? "payload_too_large" : "bad_request";
    appErr = new AppError(code, `malformed request: ${e.message ?? "refused"}`);
  } else {
    console.error("api: unexpected error", err);
    appErr = new AppError("internal", "internal error");
  }
  const body: { error: { code: string; message: string; details?: unknown } } = {
    error: { code: appErr.code, message: appErr.message },
  };
  if (appErr.details !== undefined) body.error.details = appErr.details;
  res.status(appErr.status).json(body);
}

export function createApp(deps: AppDeps, routes: RouteDef[] = allRoutes): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("query parser", "simple");
  // Which proxies may name the client in X-Forwarded-For (MEDLOOP_TRUST_PROXY, docs/stack.md):
  // req.ip is the address login throttling and the audit log use. Off by default, so a client
  // cannot pick its own address by sending the header.
  app.set("trust proxy", deps.config.trustProxy);
  const api = express.Router();
  const openapi = buildOpenApi(routes);
  api.get("/openapi.json", (_req, res) => {
    res.json(openapi);
  });
  for (const route of routes) {
    const chain: RequestHandler[] = [authMiddleware(route, deps)];
    const parser = bodyParser(route, deps);
    if (parser) chain.push(parser);
    chain.push(handlerOf(route, deps));
    api[route.method](route.path, ...chain);
  }
  api.use((req, _res, next) => next(new AppError("not_found", `no route ${req.method} /api${req.path}`)));
  app.use("/api", api);
  app.use("/api", errorHandler);
  // Approved models, called by other systems with API keys (docs/serving.md): /v2/…, /v1/models/…,
  // and the Prometheus /metrics. Unknown paths fall through to whatever the caller mounts next.
  app.use((deps.serving ?? deploymentServing({ pool: deps.pool, blobs: deps.blobs })).router);
  return app;
}
