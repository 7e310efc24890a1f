// Image import: PNG/JPEG/TIFF through sharp → the stored original, a normalised PNG, a
// thumbnail and (optionally) a reference mask. A bad file is rejected before anything is
// written; if a later step fails, the blobs already written are removed, so rows and blobs
// exist together or not at all.
import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { withTransaction, type Pool, type Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import type { BlobStore } from "./blobs.js";
import { AppError, badRequest, conflict, notFound, uniqueViolation } from "./errors.js";
import { decodeMask, encodeMask, readImageMeta } from "./masks.js";
import { getProject } from "./projects.js";

export const IMAGE_ROLES = ["seed", "pool", "test"] as const;
export type ImageRole = (typeof IMAGE_ROLES)[number];
const FORMATS = { png: "png", jpeg: "jpg", tiff: "tif" } as const;
type Format = keyof typeof FORMATS;
export const THUMB_WIDTH = 256;

export interface Image {
  id: number;
  project_id: number;
  name: string;
  role: ImageRole;
  format: Format;
  width: number;
  height: number;
  bytes: number;
  sha256: string;
  original_uri: string;
  png_uri: string;
  thumb_uri: string;
  mask_uri: string | null;
  created_at: Date;
}

const COLUMNS = `id, project_id, name, role, format, width, height, bytes, sha256, original_uri, png_uri,
  thumb_uri, mask_uri, created_at`;

export interface ImportDeps {
  pool: Pool;
  blobs: BlobStore;
}

export interface ImportInput {
  projectId: number;
  name: string;
  data: Buffer;
  role: ImageRole;
  mask?: Buffer | null;
  actorId: number | null;
}

interface Prepared {
  format: Format;
  width: number;
  height: number;
  png: Buffer;
  thumb: Buffer;
  mask: Buffer | null;
}

/** Decodes and converts everything in memory first: a bad file fails here, before any write. */
async function prepare(input: ImportInput): Promise<Prepared> {
  if (input.data.length === 0) throw badRequest("the image file is empty");
  const meta = await readImageMeta(input.data);
  if (!(meta.format in FORMATS)) {
    throw new AppError("unsupported_media_type", `unsupported image format ${meta.format} (PNG, JPEG or TIFF)`);
  }
  let png: Buffer;
  let thumb: Buffer;
  try {
    // Full decode (failOn "warning" by default in sharp) catches truncated files.
    png = await sharp(input.data).toColourspace("srgb").png().toBuffer();
    thumb = await sharp(input.data).resize({ width: THUMB_WIDTH, withoutEnlargement: true }).png().toBuffer();
  } catch (err) {
    throw new AppError("unsupported_media_type", `the image could not be decoded: ${(err as Error).message}`);
  }
  const mask = input.mask
    ? await encodeMask(await decodeMask(input.mask, { width: meta.width, height: meta.height }, `mask for ${input.name}`))
    : null;
  return { format: meta.format as Format, width: meta.width, height: meta.height, png, thumb, mask };
}

export function checkImageName(name: string): string {
  const trimmed = name.trim();
  if (!trimmed || trimmed.length > 200) throw badRequest("image name must have 1 to 200 characters");
  return trimmed;
}

export async function importImage(deps: ImportDeps, input: ImportInput): Promise<Image> {
  const name = checkImageName(input.name);
  if (!IMAGE_ROLES.includes(input.role)) throw badRequest(`unknown image role "${input.role}"`);
  await getProject(deps.pool, input.projectId);
  const exists = await deps.pool.query("SELECT 1 FROM images WHERE project_id = $1 AND name = $2", [input.projectId, name]);
  if (exists.rowCount) throw conflict(`project ${input.projectId} already has an image named "${name}"`);
  const prepared = await prepare({ ...input, name });

  const prefix = `projects/${input.projectId}/images/${randomUUID()}`;
  try {
    const originalUri = await deps.blobs.put(`${prefix}/original.${FORMATS[prepared.format]}`, input.data);
    const pngUri = await deps.blobs.put(`${prefix}/image.png`, prepared.png);
    const thumbUri = await deps.blobs.put(`${prefix}/thumb.png`, prepared.thumb);
    const maskUri = prepared.mask ? await deps.blobs.put(`${prefix}/mask.png`, prepared.mask) : null;
    return await withTransaction(deps.pool, async (tx) => {
      const { rows } = await tx.query<Image>(
        `INSERT INTO images (project_id, name, role, format, width, height, bytes, sha256, original_uri, png_uri,
                             thumb_uri, mask_uri, mask_sha256, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING ${COLUMNS}`,
        [
          input.projectId, name, input.role, prepared.format, prepared.width, prepared.height, input.data.length,
          sha256(input.data), originalUri, pngUri, thumbUri, maskUri, prepared.mask ? sha256(prepared.mask) : null,
          input.actorId,
        ],
      );
      const image = rows[0]!;
      await appendAudit(tx, {
        actorId: input.actorId,
        action: "image.import",
        entity: "image",
        entityId: image.id,
        details: { project_id: input.projectId, name, role: input.role, sha256: image.sha256, mask: maskUri !== null },
      });
      return image;
    });
  } catch (err) {
    await deps.blobs.remove(`blob://${prefix}`);
    if (uniqueViolation(err)) throw conflict(`project ${input.projectId} already has an image named "${name}"`);
    throw err;
  }
}

export function sha256(data: Buffer): string {
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

const IMAGE_EXT = /\.(png|jpe?g|tiff?)$/i;

export interface DirectoryImport {
  projectId: number;
  imagesDir: string;
  masksDir?: string;
  /** Mask file = `<image stem><maskSuffix>.png` in masksDir (CHASE_DB1: "_1stHO"). */
  maskSuffix?: string;
  roleOf?: (name: string) => ImageRole;
  /** Only these file names (for partial imports and tests). */
  only?: string[];
  actorId: number | null;
}

export interface DirectoryImportResult {
  imported: Image[];
  skipped: string[];
}

/** Imports every image of a folder; images whose name already exists are skipped, so re-running resumes. */
export async function importDirectory(deps: ImportDeps, opts: DirectoryImport): Promise<DirectoryImportResult> {
  let files: string[];
  try {
    files = (await readdir(opts.imagesDir)).filter((f) => IMAGE_EXT.test(f)).sort();
  } catch {
    throw badRequest(`cannot read the image folder ${opts.imagesDir}`);
  }
  if (opts.only) files = files.filter((f) => opts.only!.includes(f));
  if (files.length === 0) throw badRequest(`no PNG, JPEG or TIFF images in ${opts.imagesDir}`);
  const existing = new Set((await listImages(deps.pool, opts.projectId)).map((i) => i.name));
  const result: DirectoryImportResult = { imported: [], skipped: [] };
  for (const file of files) {
    const name = path.parse(file).name;
    if (existing.has(name)) {
      result.skipped.push(name);
      continue;
    }
    let mask: Buffer | null = null;
    if (opts.masksDir) {
      const maskPath = path.join(opts.masksDir, `${name}${opts.maskSuffix ?? ""}.png`);
      mask = await readFile(maskPath).catch(() => {
        throw badRequest(`mask ${path.basename(maskPath)} for ${file} not found in ${opts.masksDir}`);
      });
    }
    const data = await readFile(path.join(opts.imagesDir, file));
    const role = opts.roleOf ? opts.roleOf(name) : "pool";
    result.imported.push(await importImage(deps, { projectId: opts.projectId, name, data, role, mask, actorId: opts.actorId }));
  }
  return result;
}

/** Imports CHASE_DB1 (images + 1stHO masks, roles of `chaseRole`) from its folder, read in place. */
export function importChase(deps: ImportDeps, projectId: number, chaseDir: string, actorId: number | null, only?: string[]) {
  return importDirectory(deps, {
    projectId,
    imagesDir: path.join(chaseDir, "images"),
    masksDir: path.join(chaseDir, "masks_1stHO"),
    maskSuffix: "_1stHO",
    roleOf: chaseRole,
    only,
    actorId,
  });
}

/** Sets (or replaces) an image's reference mask; the old mask blob is removed after the commit. */
export async function setImageMask(deps: ImportDeps, imageId: number, data: Buffer, actorId: number | null): Promise<Image> {
  const image = await getImage(deps.pool, imageId);
  const png = await encodeMask(await decodeMask(data, image, `mask for image ${image.id}`));
  const prefix = image.original_uri.slice(0, image.original_uri.lastIndexOf("/"));
  const key = `${prefix.slice("blob://".length)}/mask-${randomUUID()}.png`;
  const uri = await deps.blobs.put(key, png);
  try {
    const updated = await withTransaction(deps.pool, async (tx) => {
      const { rows } = await tx.query<Image>(
        `UPDATE images SET mask_uri = $2, mask_sha256 = $3 WHERE id = $1 RETURNING ${COLUMNS}`,
        [image.id, uri, sha256(png)],
      );
      await appendAudit(tx, { actorId, action: "image.set_mask", entity: "image", entityId: image.id, details: { sha256: sha256(png) } });
      return rows[0]!;
    });
    if (image.mask_uri) await deps.blobs.remove(image.mask_uri);
    return updated;
  } catch (err) {
    await deps.blobs.remove(uri);
    throw err;
  }
}
