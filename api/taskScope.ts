// Two rules of the authentication step (api/app.ts authMiddleware) that depend on the route:
// what the session an e-mailed task link opened may reach, and where a token may come in the
// URL instead of the Authorization header.
import type { Request } from "express";
import { AppError } from "../services/errors.js";
import type { RouteDef } from "./route.js";

/** The task's own routes (`/tasks/:id…`): a task link's session may call them for its task. */
const TASK_OPERATIONS = new Set(["getTask", "getTaskImage", "getTaskStartMask", "getTaskProbability", "submitTask", "restartTask"]);
/** About the session itself: who is logged in, and logging out. */
const SESSION_OPERATIONS = new Set(["me", "logout"]);

/**
 * A task link's session reaches its task (read it, its image, start mask and probability map, restart it from
 * a newer prediction, submit it) and
 * nothing else, not even the same doctor's inbox or other tasks: whoever holds a mailed link
 * should not get more than the one task the mail was about.
 */
export function assertInTaskScope(route: RouteDef, req: Request, taskId: number): void {
  if (SESSION_OPERATIONS.has(route.operationId)) return;
  if (TASK_OPERATIONS.has(route.operationId) && req.params.id === String(taskId)) return;
  throw new AppError(
    "forbidden",
    `this session was opened by the e-mailed link of task ${taskId} and reaches only that task (its image, start mask, probability map and submission); ` +
      "log in with your e-mail and password for anything else",
  );
}

export const QUERY_TOKEN_REFUSED =
  "access_token in the URL is accepted only by GET routes that answer an image (an <img> element cannot send headers); " +
  "send the token in the header Authorization: Bearer <token>";

/**
 * Whether a request may carry its token as `?access_token=`: only a GET whose answer is an
 * image, which an <img src> loads without headers (thumbnails, image PNGs, masks, overlays,
 * training previews, and a model run's curves.png and previews.gif). Anywhere else a token in
 * a URL would only leak into logs, history and Referer headers, and nothing needs it there.
 */
export function acceptsQueryToken(route: RouteDef, req: Request): boolean {
  if (route.method !== "get") return false;
  if (route.responses[route.status ?? 200]?.contentType?.startsWith("image/")) return true;
  // A run folder's file is an image by its name; model.onnx and the JSON files are not.
  const name = req.query.name;
  return route.operationId === "getModelFile" && typeof name === "string" && /\.(png|gif)$/i.test(name);
}
