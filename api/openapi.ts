// The OpenAPI 3.1 document, generated from the route declarations and their zod schemas
// (zod 4's z.toJSONSchema; OpenAPI 3.1 schemas are JSON Schema 2020-12). Schemas carrying a
// `.meta({id})` become shared components.
import { z } from "zod";
import type { ResponseDoc, RouteDef } from "./route.js";
import { errorSchema, PG_INT_MAX } from "./schemas.js";

type Json = Record<string, unknown>;

const CONTROL_RANGES = "\\x00-\\x1f\\x7f-\\x9f";

/**
 * A pattern in the regex subset every JSON Schema tool reads: `\p{Cc}` (control characters, an
 * ECMAScript `u`-flag escape that Python's `re`, and so schemathesis, cannot use) written as the
 * code point ranges it stands for, U+0000–U+001F and U+007F–U+009F.
 */
export function portablePattern(pattern: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern.startsWith("\\p{Cc}", i)) {
      out += inClass ? CONTROL_RANGES : `[${CONTROL_RANGES}]`;
      i += "\\p{Cc}".length - 1;
      continue;
    }
    const c = pattern[i]!;
    if (c === "\\") {
      out += c + (pattern[i + 1] ?? "");
      i++;
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    out += c;
  }
  return out;
}

/** Removes noise (JSON Schema header, date-time regexes, ±2^53 bounds) and points refs at components. */
function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (!node || typeof node !== "object") return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === "$schema") continue;
    if (k === "pattern" && (node as Json).format === "date-time") continue;
    if (k === "pattern" && typeof v === "string") {
      out[k] = portablePattern(v);
      continue;
    }
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
  if (body.kind === "json") {
    // api/app.ts reads a request without a body as {}: where {} is valid, the body is optional.
    const required = !body.schema.safeParse({}).success;
    return { required, content: { "application/json": { schema: set.convert(body.schema, "input") } } };
  }
  const content: Json = {};
  for (const t of body.types) content[t] = { schema: { type: "string", contentMediaType: t } };
  if (body.multipart) content["multipart/form-data"] = { schema: set.convert(body.multipart, "input") };
  return { required: true, description: body.description, content };
}

const ERROR_TEXT: Record<number, string> = {
  400: "invalid input: the message names the field and the reason (malformed JSON, a value outside its schema, a NUL character)",
  401: "missing, unknown or expired token",
  403: "the caller's role may not use this route",
  404: "unknown id",
  409: "conflict (stale version, duplicate, wrong state)",
  413: "body larger than the upload limit",
  415: "body of the wrong content type, or a file that is not a readable image of a supported format",
  422: "refused by the ingest contract (several pages, a side under the minimum, a mask of another size, a multipart field twice)",
  429: "too many requests; Retry-After (seconds) says when to try again",
  500: "internal error (a bug: the message says no more)",
  503: "Temporal unreachable or the workflow could not be told",
};

/**
 * The error statuses a route answers by construction (api/app.ts): 400 for any input (every
 * string is checked for NUL characters, declared or not), 401/403 behind a token, 404 for a
 * path that names a row, 413/415 for a body, 422 for a file read under the ingest contract, 500
 * for a bug. The rest (409, 429, 503, 404 for an id in the body) each route declares.
 */
export function impliedStatuses(route: RouteDef): number[] {
  const out = [400, 500];
  if (route.access !== "public") out.push(401, 403);
  if (route.params) out.push(404);
  if (route.body) out.push(413, 415);
  if (route.body?.kind === "upload") out.push(422);
  return out.sort((a, b) => a - b);
}

const errorContent = { "application/json": { schema: { $ref: "#/components/schemas/Error" } } };

/** A response's documented headers; every 429 carries Retry-After. */
function headersOf(doc: ResponseDoc | undefined, status: number): Json | undefined {
  const headers: Record<string, string> = { ...doc?.headers };
  if (status === 429) headers["Retry-After"] ??= "seconds until a new try may succeed";
  if (Object.keys(headers).length === 0) return undefined;
  return Object.fromEntries(Object.entries(headers).map(([name, description]) => [name, { description, schema: { type: "string" } }]));
}

const binary = (contentType: string) => ({ schema: { type: "string", contentMediaType: contentType } });

function responses(set: SchemaSet, route: RouteDef): Json {
  const out: Record<string, Json> = {};
  for (const [key, doc] of Object.entries(route.responses)) {
    const status = Number(key);
    const content: Json = {};
    if (status >= 400) Object.assign(content, errorContent);
    else if (doc.schema) content["application/json"] = { schema: set.convert(doc.schema, "output") };
    else if (doc.contentType) content[doc.contentType] = binary(doc.contentType);
    for (const t of doc.otherContentTypes ?? []) content[t] ??= binary(t);
    const headers = headersOf(doc, status);
    out[key] = { description: doc.description, ...(Object.keys(content).length ? { content } : {}), ...(headers ? { headers } : {}) };
  }
  for (const status of impliedStatuses(route)) {
    const headers = headersOf(undefined, status);
    out[String(status)] ??= { description: ERROR_TEXT[status], content: errorContent, ...(headers ? { headers } : {}) };
  }
  return out;
}

/**
 * Every integer a path or query takes, and every id in a JSON body, must be bounded by the
 * database's integer range (PG_INT_MAX, api/schemas.ts): checked when the document is built, so
 * a route that forgets it does not start (and every API test fails naming it).
 */
function checkIntegerBounds(
  set: SchemaSet,
  route: RouteDef,
  where: string,
  node: Json,
  idsOnly: boolean,
  name = "",
  seen = new Set<string>(),
): void {
  let schema = node;
  if (typeof node.$ref === "string") {
    // A shared component (`.meta({id})`): check it once per route.
    const ref = node.$ref.replace("#/components/schemas/", "");
    if (seen.has(ref)) return;
    seen.add(ref);
    schema = (set.components[ref] ?? {}) as Json;
  }
  const isInt = schema.type === "integer" || schema.type === "number";
  const isId = name === "id" || name.endsWith("_id");
  if (isInt && (!idsOnly || isId)) {
    const max = schema.maximum;
    if (typeof max !== "number" || max > PG_INT_MAX) {
      throw new Error(
        `${route.method.toUpperCase()} /api${route.path}: ${where}${name ? `.${name}` : ""} is an integer without a maximum of at most ` +
          `${PG_INT_MAX} (PostgreSQL integer); use idQuery, idInput or countInput from api/schemas.ts`,
      );
    }
  }
  const branches = [...((schema.anyOf ?? []) as Json[]), ...((schema.oneOf ?? []) as Json[]), ...((schema.allOf ?? []) as Json[])];
  for (const branch of branches) checkIntegerBounds(set, route, where, branch, idsOnly, name, seen);
  for (const [key, sub] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
    checkIntegerBounds(set, route, `${where}${name ? `.${name}` : ""}`, sub, idsOnly, key, seen);
  }
  if (schema.items && typeof schema.items === "object") checkIntegerBounds(set, route, where, schema.items as Json, idsOnly, name, seen);
}

function checkRoute(set: SchemaSet, route: RouteDef): void {
  if (route.params) checkIntegerBounds(set, route, "path", set.convert(route.params, "input"), false);
  if (route.query) checkIntegerBounds(set, route, "query", set.convert(route.query, "input"), false);
  if (route.body?.kind === "json") checkIntegerBounds(set, route, "body", set.convert(route.body.schema, "input"), true);
}

export function buildOpenApi(routes: RouteDef[]): Json {
  const set = new SchemaSet();
  set.convert(errorSchema, "output");
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    checkRoute(set, route);
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
