// The OpenAPI 3.1 document, generated from the route declarations and their zod schemas
// (zod 4's z.toJSONSchema; OpenAPI 3.1 schemas are JSON Schema 2020-12). Schemas carrying a
// `.meta({id})` become shared components.
import { z } from "zod";
import type { RouteDef } from "./route.js";
import { errorSchema } from "./schemas.js";

type Json = Record<string, unknown>;

/** Removes noise (JSON Schema header, date-time regexes, ±2^53 bounds) and points refs at components. */
function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (!node || typeof node !== "object") return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === "$schema") continue;
    if (k === "pattern" && (node as Json).format === "date-time") continue;
    if ((k === "minimum" && v === -Number.MAX_SAFE_INTEGER) || (k === "maximum" && v === Number.MAX_SAFE_INTEGER)) continue;
    if (k === "$ref" && typeof v === "string") {
      out[k] = v.replace("#/$defs/", "#/components/schemas/");
      continue;
    }
    out[k] = tidy(v);
  }
  return out;
}

class SchemaSet {
  readonly components: Record<string, unknown> = {};
  convert(schema: z.ZodType, io: "input" | "output"): Json {
    const raw = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Json;
    const defs = (raw.$defs ?? {}) as Record<string, unknown>;
    delete raw.$defs;
    for (const [name, def] of Object.entries(defs)) this.components[name] ??= tidy(def);
    return tidy(raw) as Json;
  }
}

const toOpenApiPath = (p: string) => p.replace(/:(\w+)/g, "{$1}");

function parameters(set: SchemaSet, schema: z.ZodType | undefined, where: "path" | "query"): Json[] {
  if (!schema) return [];
  const js = set.convert(schema, "input");
  const props = (js.properties ?? {}) as Record<string, Json>;
  const required = new Set((js.required ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => {
    const { description, ...rest } = s;
    return { name, in: where, required: where === "path" || required.has(name), schema: rest, ...(description ? { description } : {}) };
  });
}

function requestBody(set: SchemaSet, route: RouteDef): Json | undefined {
  const body = route.body;
  if (!body) return undefined;
  if (body.kind === "json") return { required: true, content: { "application/json": { schema: set.convert(body.schema, "input") } } };
  const content: Json = {};
  for (const t of body.types) content[t] = { schema: { type: "string", contentMediaType: t } };
  if (body.multipart) content["multipart/form-data"] = { schema: set.convert(body.multipart, "input") };
  return { required: true, description: body.description, content };
}

const ERROR_TEXT: Record<number, string> = {
  400: "invalid input (the message names the field)",
  401: "missing, unknown or expired token",
  403: "the caller's role may not use this route",
  404: "unknown id",
  409: "conflict (stale version, duplicate, wrong state)",
  413: "body larger than the upload limit",
  415: "body of the wrong type, or not a readable image",
  503: "Temporal unreachable or the workflow could not be told",
};

function responses(set: SchemaSet, route: RouteDef): Json {
  const out: Json = {};
  const errorRef = { $ref: "#/components/schemas/Error" };
  for (const [status, doc] of Object.entries(route.responses)) {
    if (Number(status) >= 400) {
      out[status] = { description: doc.description, content: { "application/json": { schema: errorRef } } };
    } else if (doc.schema) {
      out[status] = { description: doc.description, content: { "application/json": { schema: set.convert(doc.schema, "output") } } };
    } else if (doc.contentType) {
      out[status] = { description: doc.description, content: { [doc.contentType]: { schema: { type: "string", contentMediaType: doc.contentType } } } };
    } else {
      out[status] = { description: doc.description };
    }
  }
  const implied = new Set<number>([400]);
  if (route.access !== "public") [401, 403].forEach((s) => implied.add(s));
  if (route.params) implied.add(404);
  if (route.body?.kind === "upload" || route.body?.kind === "json") [413, 415].forEach((s) => implied.add(s));
  for (const s of implied) {
    out[String(s)] ??= { description: ERROR_TEXT[s], content: { "application/json": { schema: errorRef } } };
  }
  return out;
}

export function buildOpenApi(routes: RouteDef[]): Json {
  const set = new SchemaSet();
  set.convert(errorSchema, "output");
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    const p = toOpenApiPath(`/api${route.path}`);
    paths[p] ??= {};
    const roles = route.access === "public" ? "public" : route.access.join(", ");
    paths[p][route.method] = {
      operationId: route.operationId,
      summary: route.summary,
      description: `Roles: ${roles}.`,
      tags: [route.tag],
      "x-roles": route.access === "public" ? [] : [...route.access],
      ...(route.access === "public" ? { security: [] } : {}),
      parameters: [...parameters(set, route.params, "path"), ...parameters(set, route.query, "query")],
      ...(route.body ? { requestBody: requestBody(set, route) } : {}),
      responses: responses(set, route),
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "medloop API",
      version: "0.1.0",
      description: "Human-in-the-loop segmentation campaigns: projects, images, tasks, campaigns, reports. Errors: {error: {code, message}}.",
    },
    servers: [{ url: "/" }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "token from POST /api/auth/login" } },
      schemas: set.components,
    },
  };
}
