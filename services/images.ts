// Images of a project: one upload (the API), records and reference masks. Every file is read under
// the ingest contract (services/ingest/, docs/ingest.md): the stored image is the upright 8-bit RGB
// PNG the contract gives, the reference and FOV masks one-channel 0/255 PNGs of exactly its size.
// Everything is decoded and checked in memory before anything is written; blobs written before a
// failure are removed, so rows and blobs exist together or not at all. Folder imports
// (all-or-nothing) are in imageImport.ts.
import { createHash, randomUUID } from "node:crypto";
import sharp from "sharp";
import { withTransaction, type Pool, type PoolClient, type Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import type { BlobStore } from "./blobs.js";
import { badRequest, conflict, notFound, uniqueViolation } from "./errors.js";
import { maskPng, readImage, readMask, rgbPng } from "./ingest/decode.js";
import { nfc } from "./ingest/names.js";
import type { IngestFormat } from "./ingest/samples.js";
import { getProject } from "./projects.js";

export const IMAGE_ROLES = ["seed", "pool", "test"] as const;
export type ImageRole = (typeof IMAGE_ROLES)[number];
/** File extension of the stored original, per format. */
const ORIGINAL_EXT: Record<IngestFormat, string> = { png: "png", jpeg: "jpg", tiff: "tif", gif: "gif", bmp: "bmp", pnm: "pnm", webp: "webp" };
export const THUMB_WIDTH = 256;

export interface Image {
  id: number;
  project_id: number;
  name: string;
  role: ImageRole;
  format: IngestFormat;
  width: number;
  height: number;
  bytes: number;
  sha256: string;
  original_uri: string;
  png_uri: string;
  thumb_uri: string;
  mask_uri: string | null;
  mask_sha256: string | null;
  /** The reference mask came from a lossy file (JPEG, WebP) and was thresholded at half scale. */
  mask_lossy: boolean;
  fov_uri: string | null;
  fov_sha256: string | null;
  created_at: Date;
}

const COLUMNS = `id, project_id, name, role, format, width, height, bytes, sha256, original_uri, png_uri,
  thumb_uri, mask_uri, mask_sha256, mask_lossy, fov_uri, fov_sha256, created_at`;

/** The two masks an image may carry beside it: the reference ("truth") mask and the FOV mask. */
export const MASK_KINDS = ["mask", "fov"] as const;
export type MaskKind = (typeof MASK_KINDS)[number];
const MASK_WORDS: Record<MaskKind, string> = { mask: "reference mask", fov: "FOV mask" };

export interface ImportDeps {
  pool: Pool;
  blobs: BlobStore;
}

export interface ImportInput {
  projectId: number;
  /** The image's name (NFC-normalised before it is stored). */
  name: string;
  data: Buffer;
  role: ImageRole;
  mask?: Buffer | null;
  /** Field-of-view mask (the region of the image that holds the picture). */
  fov?: Buffer | null;
  actorId: number | null;
  /** How error messages name the files (default: `image "<name>"`, `mask for <name>`, …). */
  labels?: { image?: string; mask?: string; fov?: string };
}

interface PreparedMask {
  png: Buffer;
  sha256: string;
  lossy: boolean;
  foreground: number;
}

export interface PreparedImage {
  name: string;
  format: IngestFormat;
  width: number;
  height: number;
  original: Buffer;
  sha256: string;
  png: Buffer;
  thumb: Buffer;
  mask: PreparedMask | null;
  fov: PreparedMask | null;
}

export function checkImageName(name: string): string {
  const trimmed = nfc(name).trim();
  if (!trimmed || trimmed.length > 200) throw badRequest("image name must have 1 to 200 characters");
  // Control and format characters (NUL, bidi overrides, zero-width marks), line separators and path
  // separators have no place in a name that is shown, stored and written into CSV files.
  if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}/\\]/u.test(trimmed)) {
    throw badRequest(`image name ${JSON.stringify(trimmed)} must not hold control or invisible formatting characters, / or \\`);
  }
  return trimmed;
}

/** Decodes and converts everything in memory: a refused file fails here, before any write. */
export async function prepareImage(input: Omit<ImportInput, "projectId" | "role" | "actorId">): Promise<PreparedImage> {
  const name = checkImageName(input.name);
  const labels = { image: `image "${name}"`, mask: `mask for ${name}`, fov: `FOV mask for ${name}`, ...input.labels };
  const image = await readImage(input.data, labels.image);
  const png = await rgbPng(image);
  const thumb = await sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize({ width: THUMB_WIDTH, withoutEnlargement: true })
    .png()
    .toBuffer();
  const binary = async (data: Buffer | null | undefined, label: string): Promise<PreparedMask | null> => {
    if (!data || data.length === 0) return null;
    const mask = await readMask(data, label, image);
    const encoded = await maskPng(mask);
    return { png: encoded, sha256: sha256(encoded), lossy: mask.lossy, foreground: mask.foreground };
  };
  return {
    name,
    format: image.format,
    width: image.width,
    height: image.height,
    original: input.data,
    sha256: sha256(input.data),
    png,
    thumb,
    mask: await binary(input.mask, labels.mask),
    fov: await binary(input.fov, labels.fov),
  };
}

/**
 * The image of the project this upload repeats, if any: the same name with the same file
 * (checksum) is "already imported"; the same name with another file is a conflict naming both
 * checksums. Other names are never merged, even with equal pixels: two files may carry one
 * picture with two different masks.
 */
export async function findRepeat(db: Queryable, projectId: number, prepared: PreparedImage): Promise<Image | null> {
  const { rows } = await db.query<Image>(`SELECT ${COLUMNS} FROM images WHERE project_id = $1 AND name = $2`, [projectId, prepared.name]);
  const existing = rows[0];
  if (existing && existing.sha256 !== prepared.sha256) {
    throw conflict(
      `project ${projectId} already has an image named "${prepared.name}" with other content ` +
        `(sha256 ${existing.sha256.slice(0, 12)}…, this file ${prepared.sha256.slice(0, 12)}…); rename the file to import it`,
    );
  }
  return existing ?? null;
}

export interface Stored {
  image: Image;
  /** The image was there already (same name, same file). */
  alreadyImported: boolean;
  /** What a repeated upload added to the stored image: its missing reference or FOV mask. */
  added: Array<"mask" | "fov">;
}

/**
 * Stores a prepared image in the caller's transaction, or completes the stored one it repeats:
 * a mask or FOV it lacks is added (an import of images first and masks later is common); a
 * different mask, FOV or role is a conflict naming it — never silently dropped or replaced.
 */
export async function storeOrComplete(
  tx: PoolClient,
  blobs: BlobStore,
  written: string[],
  target: { projectId: number; role: ImageRole; actorId: number | null },
  prepared: PreparedImage,
): Promise<Stored> {
  const existing = await findRepeat(tx, target.projectId, prepared);
  if (!existing) return { image: await storePrepared(tx, blobs, written, target, prepared), alreadyImported: false, added: [] };
  if (existing.role !== target.role) {
    throw conflict(`"${existing.name}" is already in project ${target.projectId} as a ${existing.role} image, not ${target.role}`);
  }
  let image = existing;
  const added: Stored["added"] = [];
  for (const kind of MASK_KINDS) {
    const mask = prepared[kind];
    const stored = kind === "mask" ? image.mask_sha256 : image.fov_sha256;
    if (!mask || stored === mask.sha256) continue;
    if (stored) {
      throw conflict(
        `"${image.name}" is already in project ${target.projectId} with another ${MASK_WORDS[kind]}; ` +
          `replace it with PUT /api/images/${image.id}/${kind}`,
      );
    }
    image = await attachMask(tx, blobs, written, image, kind, mask, target.actorId);
    added.push(kind);
  }
  return { image, alreadyImported: true, added };
}

/**
 * Writes a prepared image's blobs and its row (with an audit entry) in the caller's transaction.
 * The blob folder it writes into is pushed to `written` first, so the caller can remove it if the
 * transaction does not commit.
 */
export async function storePrepared(
  tx: PoolClient,
  blobs: BlobStore,
  written: string[],
  target: { projectId: number; role: ImageRole; actorId: number | null },
  prepared: PreparedImage,
): Promise<Image> {
  const prefix = `projects/${target.projectId}/images/${randomUUID()}`;
  written.push(`blob://${prefix}`); // the whole folder goes if the transaction does not commit
  const put = (key: string, data: Buffer) => blobs.put(`${prefix}/${key}`, data);
  const originalUri = await put(`original.${ORIGINAL_EXT[prepared.format]}`, prepared.original);
  const pngUri = await put("image.png", prepared.png);
  const thumbUri = await put("thumb.png", prepared.thumb);
  const maskUri = prepared.mask ? await put("mask.png", prepared.mask.png) : null;
  const fovUri = prepared.fov ? await put("fov.png", prepared.fov.png) : null;
  const { rows } = await tx.query<Image>(
    `INSERT INTO images (project_id, name, role, format, width, height, bytes, sha256, original_uri, png_uri,
                         thumb_uri, mask_uri, mask_sha256, mask_lossy, fov_uri, fov_sha256, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING ${COLUMNS}`,
    [
      target.projectId, prepared.name, target.role, prepared.format, prepared.width, prepared.height,
      prepared.original.length, prepared.sha256, originalUri, pngUri, thumbUri, maskUri, prepared.mask?.sha256 ?? null,
      prepared.mask?.lossy ?? false, fovUri, prepared.fov?.sha256 ?? null, target.actorId,
    ],
  );
  const image = rows[0]!;
  await appendAudit(tx, {
    actorId: target.actorId,
    action: "image.import",
    entity: "image",
    entityId: image.id,
    details: {
      project_id: target.projectId, name: image.name, role: target.role, sha256: image.sha256, format: image.format,
      mask: maskUri !== null, mask_lossy: image.mask_lossy, fov: fovUri !== null,
    },
  });
  return image;
}

/**
 * Uploads one image (with its optional reference and FOV masks). Repeating an upload is harmless:
 * the same file under the same name gives back the stored image, completed with a mask or FOV it
 * lacked (storeOrComplete).
 */
export async function uploadImage(deps: ImportDeps, input: ImportInput): Promise<Stored> {
  if (!IMAGE_ROLES.includes(input.role)) throw badRequest(`unknown image role "${input.role}"`);
  await getProject(deps.pool, input.projectId);
  const prepared = await prepareImage(input);
  const store = async () => {
    const written: string[] = [];
    try {
      return await withTransaction(deps.pool, (tx) => storeOrComplete(tx, deps.blobs, written, input, prepared));
    } catch (err) {
      await removeWritten(deps.blobs, written);
      throw err;
    }
  };
  try {
    return await store();
  } catch (err) {
    // A concurrent upload of the same name won the race: now it is a repeat like any other.
    if (uniqueViolation(err)) return store();
    throw err;
  }
}

/** Removes the blob folders of a transaction that did not commit, and the folders it left empty. */
export async function removeWritten(blobs: BlobStore, written: readonly string[]): Promise<void> {
  for (const uri of written) {
    await blobs.remove(uri);
    await blobs.removeEmptyParents(uri);
  }
}

/** `uploadImage`, returning the image record (the tests' and the demo's shorthand). */
export async function importImage(deps: ImportDeps, input: ImportInput): Promise<Image> {
  return (await uploadImage(deps, input)).image;
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function getImage(db: Queryable, id: number): Promise<Image> {
  const { rows } = await db.query<Image>(`SELECT ${COLUMNS} FROM images WHERE id = $1`, [id]);
  if (!rows[0]) throw notFound("image", id);
  return rows[0];
}

export async function listImages(db: Queryable, projectId: number, role?: ImageRole): Promise<Image[]> {
  await getProject(db, projectId);
  const { rows } = role
    ? await db.query<Image>(`SELECT ${COLUMNS} FROM images WHERE project_id = $1 AND role = $2 ORDER BY name`, [projectId, role])
    : await db.query<Image>(`SELECT ${COLUMNS} FROM images WHERE project_id = $1 ORDER BY name`, [projectId]);
  return rows;
}

/**
 * CHASE_DB1's usual split: images 01–10 (20 images) for training, 11–14 (8) for testing.
 * The first 6 training images (01L…03R) are the seeds drawn by hand; the other 14 form the
 * pool that the loop pre-annotates and sends out for correction.
 */
export function chaseRole(name: string): ImageRole {
  const match = /Image_(\d+)[LR]/i.exec(name);
  if (!match) throw badRequest(`not a CHASE_DB1 image name: ${name}`);
  const n = Number(match[1]);
  return n <= 3 ? "seed" : n <= 10 ? "pool" : "test";
}

/**
 * Writes a mask (reference or FOV) beside an image and points the image's row at it, in the
 * caller's transaction (the blob is pushed to `written` for the caller's clean-up).
 */
async function attachMask(
  tx: PoolClient,
  blobs: BlobStore,
  written: string[],
  image: Image,
  kind: MaskKind,
  mask: PreparedMask,
  actorId: number | null,
): Promise<Image> {
  const folder = image.original_uri.slice("blob://".length, image.original_uri.lastIndexOf("/"));
  const uri = await blobs.put(`${folder}/${kind}-${randomUUID()}.png`, mask.png);
  written.push(uri);
  const set = kind === "mask" ? "mask_uri = $2, mask_sha256 = $3, mask_lossy = $4" : "fov_uri = $2, fov_sha256 = $3";
  const params = kind === "mask" ? [image.id, uri, mask.sha256, mask.lossy] : [image.id, uri, mask.sha256];
  const { rows } = await tx.query<Image>(`UPDATE images SET ${set} WHERE id = $1 RETURNING ${COLUMNS}`, params);
  await appendAudit(tx, {
    actorId,
    action: kind === "mask" ? "image.set_mask" : "image.set_fov",
    entity: "image",
    entityId: image.id,
    details: { sha256: mask.sha256, lossy: mask.lossy, foreground: mask.foreground },
  });
  return rows[0]!;
}

/**
 * Sets (or replaces) an image's reference mask or FOV mask, read under the ingest contract at
 * the image's upright size; the replaced blob is removed after the commit.
 */
export async function setImageMask(deps: ImportDeps, imageId: number, data: Buffer, actorId: number | null, kind: MaskKind = "mask"): Promise<Image> {
  const image = await getImage(deps.pool, imageId);
  const decoded = await readMask(data, `${MASK_WORDS[kind]} for image ${image.id} ("${image.name}")`, image);
  const png = await maskPng(decoded);
  const mask = { png, sha256: sha256(png), lossy: decoded.lossy, foreground: decoded.foreground };
  const written: string[] = [];
  try {
    const updated = await withTransaction(deps.pool, (tx) => attachMask(tx, deps.blobs, written, image, kind, mask, actorId));
    const replaced = kind === "mask" ? image.mask_uri : image.fov_uri;
    if (replaced) await deps.blobs.remove(replaced);
    return updated;
  } catch (err) {
    await removeWritten(deps.blobs, written);
    throw err;
  }
}
