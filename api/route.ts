// One declaration per route: method, path, roles, zod schemas of its input and output, and the
// handler. The Express router and the OpenAPI document are both built from these, so the
// document cannot drift from what the server checks.
import type { Request, Response } from "express";
import type { z } from "zod";
import type { Role, User } from "../services/users.js";
import type { AppDeps } from "./deps.js";

export type Method = "get" | "post" | "put" | "patch" | "delete";

/** "public": no token needed; otherwise the roles allowed (every authenticated role: ALL_ROLES). */
export type Access = "public" | readonly Role[];

export interface ResponseDoc {
  description: string;
  /** JSON body schema; for binary answers give `contentType` instead. */
  schema?: z.ZodType;
  contentType?: string;
  /**
   * Other content types the same status may answer with (a model card as text/markdown beside
   * its JSON, an original file in its own format): each documented as a string of that type.
   */
  otherContentTypes?: readonly string[];
  /** Response headers worth documenting (e.g. X-Overlay-Counts), by name. */
  headers?: Record<string, string>;
}

/** How the request body arrives. */
export type BodyDoc =
  | { kind: "json"; schema: z.ZodType }
  /** Raw bytes of one of `types` (e.g. image/png), or multipart/form-data described by `multipart`. */
  | { kind: "upload"; types: string[]; multipart?: z.ZodType; description: string };

export interface HandlerContext<P, Q, B> {
  deps: AppDeps;
  user: User | null;
  params: P;
  query: Q;
  body: B;
  req: Request;
  res: Response;
}

export interface RouteDef<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B = unknown> {
  method: Method;
  /** Express path below /api, e.g. `/tasks/:id`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  access: Access;
  params?: P;
  query?: Q;
  body?: BodyDoc;
  /** The success status and its body. */
  status?: number;
  responses: Record<number, ResponseDoc>;
  /** Returns the JSON body (sent with `status`), or sends the answer itself and returns undefined. */
  handler(ctx: HandlerContext<z.output<P>, z.output<Q>, B>): Promise<unknown>;
}

export function defineRoute<P extends z.ZodType, Q extends z.ZodType, B = unknown>(def: RouteDef<P, Q, B>): RouteDef {
  return def as unknown as RouteDef;
}
