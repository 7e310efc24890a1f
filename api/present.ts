// How entities leave the API: blob URIs stay inside (they name server paths); clients get
// API URLs to fetch the bytes through, with the same role checks.
import type { Request, Response } from "express";
import type { AnnotationVersion } from "../services/annotations.js";
import type { Image } from "../services/images.js";
import { effortMinutes } from "../services/correction/effort.js";
import { AppError } from "../services/errors.js";
import { splitName } from "../services/ingest/names.js";
import type { Role } from "../services/users.js";
import { inputTextProblem, NUL_MESSAGE } from "./schemas.js";

export const ALL_ROLES: readonly Role[] = ["lab_lead", "doctor", "auditor", "admin", "reviewer"];
export const STAFF: readonly Role[] = ["lab_lead", "admin"];
export const READERS: readonly Role[] = ["lab_lead", "auditor", "admin"];

export function presentImage(image: Image) {
  return {
    id: image.id,
    project_id: image.project_id,
    name: image.name,
    role: image.role,
    format: image.format,
    width: image.width,
    height: image.height,
    bytes: image.bytes,
    sha256: image.sha256,
    has_mask: image.mask_uri !== null,
    mask_lossy: image.mask_lossy,
    has_fov: image.fov_uri !== null,
    created_at: image.created_at,
    image_url: `/api/images/${image.id}/image`,
    thumbnail_url: `/api/images/${image.id}/thumbnail`,
    mask_url: image.mask_uri ? `/api/images/${image.id}/mask` : null,
    fov_url: image.fov_uri ? `/api/images/${image.id}/fov` : null,
  };
}

export function presentVersion(v: AnnotationVersion) {
  const { uri: _uri, prob_uri: _prob, mask_sha256: _sha, ...rest } = v;
  const effort = v.actions ? Math.round(effortMinutes(v.actions) * 1000) / 1000 : null;
  return { ...rest, effort_minutes: effort, mask_url: `/api/versions/${v.id}/mask` };
}

/** Sends stored bytes; PNGs and the like are immutable per URI, so they may be cached. */
export function sendBytes(res: Response, data: Buffer, contentType: string): void {
  res.setHeader("content-type", contentType);
  res.setHeader("cache-control", "private, max-age=3600");
  res.status(200).end(data);
}

export interface UploadedFile {
  data: Buffer;
  /** The part's file name as the client sent it (multipart only). */
  fileName: string | null;
}

export interface Upload {
  /** The main file: the raw body, or the multipart field named `fileField`. */
  file: Buffer;
  fileName: string | null;
  files: Record<string, UploadedFile>;
  fields: Record<string, string>;
}

/** The multipart fields a route takes besides its main file: which are files, which text. */
export interface UploadFields {
  files?: readonly string[];
  text?: readonly string[];
}

/**
 * Reads a raw or multipart/form-data body (multipart parsed by the platform's FormData). Refused
 * with 422 naming the field: a field given twice (keeping one of two files silently would store a
 * guess), a field of the wrong kind (a mask sent as text would be dropped), an unknown field.
 */
export async function readUpload(req: Request, fileField: string, expected: UploadFields = {}): Promise<Upload> {
  const body = req.body as unknown;
  if (!Buffer.isBuffer(body) || body.length === 0) throw new AppError("bad_request", "the request body is empty");
  if (!req.is("multipart/form-data")) return { file: body, fileName: null, files: {}, fields: {} };
  let form: FormData;
  try {
    form = await new Response(new Uint8Array(body) as unknown as BodyInit, { headers: { "content-type": req.get("content-type")! } }).formData();
  } catch {
    throw new AppError("bad_request", "malformed multipart/form-data body");
  }
  const files: Record<string, UploadedFile> = {};
  const fields: Record<string, string> = {};
  for (const key of new Set(form.keys())) {
    const values = form.getAll(key);
    if (values.length > 1) {
      const names = values.map((v) => (typeof v === "string" ? "(text)" : v.name || "(no file name)"));
      const stems = new Set(names.map((n) => splitName(n).stem));
      const sameStem = stems.size === 1 && values.every((v) => typeof v !== "string") ? ` with the same stem "${[...stems][0]}"` : "";
      throw new AppError(
        "unprocessable",
        `multipart field "${key}" is given ${values.length} times${sameStem} (${names.join(", ")}); send one per request`,
      );
    }
    const value = values[0]!;
    if (typeof value === "string") fields[key] = value;
    else files[key] = { data: Buffer.from(await value.arrayBuffer()), fileName: value.name || null };
  }
  checkFieldKinds(files, fields, [fileField, ...(expected.files ?? [])], expected.text ?? []);
  // The same rule as for every JSON, query and path string (api/app.ts parseWith): text fields and
  // file names (a default image name) are stored as text, which cannot hold NUL.
  const problem = inputTextProblem(fields, "multipart");
  if (problem) throw new AppError("validation_failed", problem);
  const nulName = Object.entries(files).find(([, f]) => f.fileName?.includes("\0"));
  if (nulName) throw new AppError("validation_failed", `multipart.${nulName[0]}: the file name ${NUL_MESSAGE}`);
  const main = files[fileField];
  if (!main || main.data.length === 0) throw new AppError("bad_request", `multipart field "${fileField}" (a file) is missing`);
  return { file: main.data, fileName: main.fileName, files, fields };
}

function checkFieldKinds(files: Record<string, unknown>, fields: Record<string, unknown>, fileFields: readonly string[], textFields: readonly string[]): void {
  const problems = [
    ...fileFields.filter((k) => k in fields).map((k) => `"${k}" must be a file, not text`),
    ...textFields.filter((k) => k in files).map((k) => `"${k}" must be text, not a file`),
    ...[...Object.keys(files), ...Object.keys(fields)]
      .filter((k) => !fileFields.includes(k) && !textFields.includes(k))
      .map((k) => `"${k}" is not a field of this request (${[...fileFields, ...textFields].join(", ")})`),
  ];
  if (problems.length) throw new AppError("unprocessable", `multipart field ${problems.join("; ")}`);
}
