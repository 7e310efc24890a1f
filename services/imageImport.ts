// Folder imports (`medloop import`, the demo project, CHASE_DB1), all or nothing: the folders are
// paired by name first (no file read yet), then every file is decoded under the ingest contract
// and stored inside ONE transaction that also creates the project when it is new. A refused file
// rolls the transaction back and removes every blob already written, so a refused import leaves
// no project, image, mask or blob behind. Re-running an import skips the files whose content is
// already in the project (compared by checksum), so an interrupted import can be run again.
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { withTransaction, type PoolClient } from "../db/pool.js";
import { AppError, badRequest } from "./errors.js";
import { chaseRole, prepareImage, removeWritten, storeOrComplete, type Image, type ImageRole, type ImportDeps, type MaskKind } from "./images.js";
import { FORMATS_TEXT } from "./ingest/contract.js";
import { describeClashes, indexByStem, isImageFileName, nfc, pairByStem } from "./ingest/names.js";
import { IngestError } from "./ingest/samples.js";
import { createProject, findProjectByName, getProject, type Project } from "./projects.js";

export interface DirectoryImport {
  /** An existing project, or … */
  projectId?: number;
  /** … a project found or created (in the import's transaction) by name, … */
  projectName?: string;
  /** … with this description when it is created. */
  projectDescription?: string;
  imagesDir: string;
  masksDir?: string;
  /** Mask file = `<image stem><maskSuffix>.<any image extension>` in masksDir (CHASE_DB1: "_1stHO"). */
  maskSuffix?: string;
  /** FOV mask file = `<image stem>.<any image extension>` in fovDir. */
  fovDir?: string;
  roleOf?: (name: string) => ImageRole;
  /** Only these file names (for partial imports and tests). */
  only?: string[];
  actorId: number | null;
}

export interface Skipped {
  name: string;
  /** Why: the project holds this file already under this name. */
  reason: "already imported";
  /** What the import added to the stored image: the masks it lacked. */
  added: MaskKind[];
}

export interface DirectoryImportResult {
  project: Project;
  imported: Image[];
  skipped: Skipped[];
  /** Names of the images whose reference mask came from a lossy file (thresholded at half scale). */
  lossyMasks: string[];
}

interface PlannedFile {
  name: string;
  image: string;
  mask: string | null;
  fov: string | null;
}

/** The image files of a folder (symbolic links followed), by name. */
async function listFolder(dir: string, what: string): Promise<{ name: string }[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter(isImageFileName);
  } catch {
    throw badRequest(`cannot read the ${what} folder ${dir}`);
  }
  const isFile = await Promise.all(names.map((n) => stat(path.join(dir, n)).then((s) => s.isFile(), () => false)));
  return names.filter((_, i) => isFile[i]).map((name) => ({ name }));
}

/** Pairs the folders by name (NFC stems, mask suffix); refuses clashes and missing masks. */
export async function planDirectory(opts: DirectoryImport): Promise<PlannedFile[]> {
  let images = await listFolder(opts.imagesDir, "image");
  if (opts.only) images = images.filter((f) => opts.only!.some((o) => nfc(o) === nfc(f.name)));
  if (images.length === 0) throw badRequest(`no images in ${opts.imagesDir} (${FORMATS_TEXT})`);
  const masks = opts.masksDir ? await listFolder(opts.masksDir, "mask") : [];
  const pairing = pairByStem(images, masks, opts.maskSuffix ?? "");
  const fovs = opts.fovDir ? indexByStem(await listFolder(opts.fovDir, "FOV")) : null;
  const clashes = [...pairing.clashes, ...(fovs?.clashes ?? [])];
  if (clashes.length) throw new AppError("unprocessable", `${describeClashes(clashes, "file")}; a name may appear once per folder`);
  return pairing.pairs.map((pair) => {
    if (opts.masksDir && !pair.mask) {
      throw badRequest(`no mask for image ${pair.image.name}: expected ${pair.name}${opts.maskSuffix ?? ""}.<extension> in ${opts.masksDir}`);
    }
    const fov = fovs?.byStem.get(pair.name) ?? null;
    if (opts.fovDir && !fov) throw badRequest(`no FOV mask for image ${pair.image.name}: expected ${pair.name}.<extension> in ${opts.fovDir}`);
    return {
      name: pair.name,
      image: path.join(opts.imagesDir, pair.image.name),
      mask: pair.mask && opts.masksDir ? path.join(opts.masksDir, pair.mask.name) : null,
      fov: fov && opts.fovDir ? path.join(opts.fovDir, fov.name) : null,
    };
  });
}

async function targetProject(tx: PoolClient, opts: DirectoryImport): Promise<Project> {
  if (opts.projectId !== undefined) return getProject(tx, opts.projectId);
  if (!opts.projectName) throw badRequest("a project id or name is required");
  return (await findProjectByName(tx, opts.projectName)) ?? (await createProject(tx, { name: opts.projectName, description: opts.projectDescription }, opts.actorId));
}

const readOptional = (file: string | null) => (file ? readFile(file) : Promise.resolve(null));

/** Imports a folder of images (and masks, FOV masks): everything or, on any refusal, nothing. */
export async function importDirectory(deps: ImportDeps, opts: DirectoryImport): Promise<DirectoryImportResult> {
  const plan = await planDirectory(opts);
  const written: string[] = [];
  try {
    return await withTransaction(deps.pool, async (tx) => {
      const project = await targetProject(tx, opts);
      const result: DirectoryImportResult = { project, imported: [], skipped: [], lossyMasks: [] };
      for (const file of plan) {
        const prepared = await prepareImage({
          name: file.name,
          data: await readFile(file.image),
          mask: await readOptional(file.mask),
          fov: await readOptional(file.fov),
          labels: { image: file.image, mask: file.mask ?? undefined, fov: file.fov ?? undefined },
        });
        const role = opts.roleOf ? opts.roleOf(prepared.name) : "pool";
        const stored = await storeOrComplete(tx, deps.blobs, written, { projectId: project.id, role, actorId: opts.actorId }, prepared);
        if (stored.alreadyImported) result.skipped.push({ name: prepared.name, reason: "already imported", added: stored.added });
        else result.imported.push(stored.image);
        if (prepared.mask?.lossy && (!stored.alreadyImported || stored.added.includes("mask"))) result.lossyMasks.push(prepared.name);
      }
      return { ...result, project: await getProject(tx, project.id) };
    });
  } catch (err) {
    await removeWritten(deps.blobs, written);
    if (err instanceof IngestError || err instanceof AppError) throw err;
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw badRequest(`file not found: ${(err as NodeJS.ErrnoException).path}`);
    throw err;
  }
}

/** The import of CHASE_DB1 (images + 1stHO masks, roles of `chaseRole`) from its folder, read in place. */
export function chaseImport(chaseDir: string, actorId: number | null, only?: string[]): DirectoryImport {
  return {
    imagesDir: path.join(chaseDir, "images"),
    masksDir: path.join(chaseDir, "masks_1stHO"),
    maskSuffix: "_1stHO",
    roleOf: chaseRole,
    only,
    actorId,
  };
}

/** Imports CHASE_DB1 into an existing project. */
export function importChase(deps: ImportDeps, projectId: number, chaseDir: string, actorId: number | null, only?: string[]) {
  return importDirectory(deps, { ...chaseImport(chaseDir, actorId, only), projectId });
}
