import { z } from "zod";
import { getVersion, listVersions, loadVersionMask } from "../../services/annotations.js";
import { AppError } from "../../services/errors.js";
import { getImage, IMAGE_ROLES, listImages, setImageMask, uploadImage, type ImageRole, type MaskKind } from "../../services/images.js";
import { readMask } from "../../services/ingest/decode.js";
import { FORMATS_TEXT as FORMATS, IMAGE_EXTENSIONS, MEDIA_TYPES, UPLOAD_MEDIA_TYPES } from "../../services/ingest/contract.js";
import { splitName } from "../../services/ingest/names.js";
import { imageAgreement } from "../../services/liveEvaluation.js";
import { renderOverlay } from "../../services/overlay.js";
import { presentImage, presentVersion, READERS, readUpload, sendBytes, STAFF, ALL_ROLES } from "../present.js";
import { defineRoute } from "../route.js";
import { idParam, idQuery, imageAgreementSchema, imageRoleSchema, imageSchema, versionSchema } from "../schemas.js";

/** Content types of a raw upload: the ingest contract's formats (docs/ingest.md). */
const IMAGE_TYPES = [...UPLOAD_MEDIA_TYPES];

const png = (description: string) => ({ description, contentType: "image/png" });

function blobRoute(suffix: string, operationId: string, summary: string, pick: (i: Awaited<ReturnType<typeof getImage>>) => string | null) {
  return defineRoute({
    method: "get",
    path: `/images/:id/${suffix}`,
    operationId,
    summary,
    tag: "images",
    access: READERS,
    params: idParam,
    responses: { 200: png(summary) },
    async handler({ deps, params, res }) {
      const image = await getImage(deps.pool, params.id);
      const uri = pick(image);
      if (!uri) throw new AppError("not_found", `image ${image.id} has no ${suffix}`);
      sendBytes(res, await deps.blobs.get(uri), "image/png");
      return undefined;
    },
  });
}

/** PUT /images/:id/{mask,fov}: sets or replaces one of the masks kept beside an image. */
function maskRoute(kind: MaskKind, operationId: string, what: string) {
  return defineRoute({
    method: "put",
    path: `/images/:id/${kind}`,
    operationId,
    summary: `Set or replace an image's ${what}`,
    tag: "images",
    access: STAFF,
    params: idParam,
    body: {
      kind: "upload",
      types: IMAGE_TYPES,
      description: `${what} file (${FORMATS}) of the image's upright size, read under the ingest contract's mask rule (docs/ingest.md)`,
    },
    responses: {
      200: { description: "updated", schema: imageSchema },
      415: { description: "not a readable file of a supported format" },
      422: { description: "refused by the ingest contract (another size, several pages, …)" },
    },
    async handler({ deps, params, req, user }) {
      const upload = await readUpload(req, kind);
      return presentImage(await setImageMask(deps, params.id, upload.file, user!.id, kind));
    },
  });
}

export const imageRoutes = [
  defineRoute({
    method: "get",
    path: "/projects/:id/images",
    operationId: "listImages",
    summary: "Images of a project",
    tag: "images",
    access: READERS,
    params: idParam,
    query: z.object({ role: imageRoleSchema.optional() }),
    responses: { 200: { description: "images", schema: z.array(imageSchema) } },
    async handler({ deps, params, query }) {
      return (await listImages(deps.pool, params.id, (query as { role?: ImageRole }).role)).map(presentImage);
    },
  }),
  defineRoute({
    method: "post",
    path: "/projects/:id/images",
    operationId: "uploadImage",
    summary:
      `Upload an image (${FORMATS}), optionally with its reference mask and FOV mask (multipart); ` +
      "files are read under the ingest contract (docs/ingest.md). Uploading the same file under the same name again answers 200 " +
      "with the stored image (a retried upload is harmless); another file under a stored name is a 409.",
    tag: "images",
    access: STAFF,
    params: idParam,
    query: z.object({
      name: z.string().min(1).max(200).optional().meta({ description: "image name (default: the multipart image part's file name without its extension)" }),
      role: imageRoleSchema.optional().meta({ description: "seed, pool (default) or test" }),
    }),
    body: {
      kind: "upload",
      types: IMAGE_TYPES,
      description:
        "the image bytes, or multipart/form-data with `image` (file), optional `mask` and `fov` (files of the image's upright size), " +
        "`name`, `role`; each field at most once (a repeated field answers 422)",
      multipart: z.object({
        image: z.string().meta({ contentMediaType: "application/octet-stream", description: `the image file (${FORMATS})` }),
        mask: z.string().optional().meta({ contentMediaType: "application/octet-stream", description: "reference mask of the same size, any contract format" }),
        fov: z.string().optional().meta({ contentMediaType: "application/octet-stream", description: "field-of-view mask of the same size" }),
        name: z.string().optional(),
        role: imageRoleSchema.optional(),
      }),
    },
    status: 201,
    responses: {
      200: { description: "this content was already in the project: the existing image", schema: imageSchema },
      201: { description: "stored", schema: imageSchema },
      409: { description: "the project has another image of this name" },
      413: { description: "the body, or the image's pixel count, is over the limit" },
      415: { description: "not a readable file of a supported format" },
      422: { description: "refused by the ingest contract: multi-page file, too small, mask of another size, a field given twice" },
    },
    async handler({ deps, params, query, req, res, user }) {
      const upload = await readUpload(req, "image", { files: ["mask", "fov"], text: ["name", "role"] });
      const q = query as { name?: string; role?: ImageRole };
      const fileStem = upload.fileName && IMAGE_EXTENSIONS.includes(splitName(upload.fileName).ext) ? splitName(upload.fileName).stem : undefined;
      const name = upload.fields.name ?? q.name ?? fileStem;
      if (!name) throw new AppError("validation_failed", "query.name (or the multipart field name, or the image part's file name) is required");
      const role = (upload.fields.role ?? q.role ?? "pool") as ImageRole;
      if (!IMAGE_ROLES.includes(role)) throw new AppError("validation_failed", `role must be seed, pool or test, got "${role}"`);
      const label = (field: string, fallback: string) => {
        const file = field === "image" ? upload.fileName : (upload.files[field]?.fileName ?? null);
        return file ? `${field} ${file}` : fallback;
      };
      const stored = await uploadImage(deps, {
        projectId: params.id,
        name,
        role,
        data: upload.file,
        mask: upload.files.mask?.data ?? null,
        fov: upload.files.fov?.data ?? null,
        actorId: user!.id,
        labels: { image: label("image", `image "${name}"`), mask: label("mask", `mask for ${name}`), fov: label("fov", `FOV mask for ${name}`) },
      });
      if (stored.alreadyImported) {
        res.status(200).json(presentImage(stored.image));
        return undefined;
      }
      return presentImage(stored.image);
    },
  }),
  defineRoute({
    method: "get",
    path: "/images/:id",
    operationId: "getImage",
    summary: "One image's record",
    tag: "images",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "the image", schema: imageSchema } },
    async handler({ deps, params }) {
      return presentImage(await getImage(deps.pool, params.id));
    },
  }),
  blobRoute("image", "getImagePng", "The image as PNG", (i) => i.png_uri),
  blobRoute("thumbnail", "getImageThumbnail", "A 256-pixel-wide PNG thumbnail", (i) => i.thumb_uri),
  blobRoute("mask", "getImageMask", "The reference mask (binary PNG)", (i) => i.mask_uri),
  blobRoute("fov", "getImageFov", "The field-of-view mask (binary PNG)", (i) => i.fov_uri),
  defineRoute({
    method: "get",
    path: "/images/:id/original",
    operationId: "getImageOriginal",
    summary: "The file as uploaded",
    tag: "images",
    access: READERS,
    params: idParam,
    responses: {
      200: {
        description: "the original file, with the media type of its format",
        contentType: "application/octet-stream",
        otherContentTypes: [...new Set(Object.values(MEDIA_TYPES))],
      },
    },
    async handler({ deps, params, res }) {
      const image = await getImage(deps.pool, params.id);
      sendBytes(res, await deps.blobs.get(image.original_uri), MEDIA_TYPES[image.format]);
      return undefined;
    },
  }),
  maskRoute("mask", "setImageMask", "reference mask"),
  maskRoute("fov", "setImageFov", "field-of-view mask"),
  defineRoute({
    method: "get",
    path: "/images/:id/versions",
    operationId: "listImageVersions",
    summary: "Every annotation version of an image (predictions, manual masks, corrections)",
    tag: "images",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "versions, oldest first", schema: z.array(versionSchema) } },
    async handler({ deps, params }) {
      await getImage(deps.pool, params.id);
      return (await listVersions(deps.pool, params.id)).map(presentVersion);
    },
  }),
  defineRoute({
    method: "get",
    path: "/images/:id/agreement",
    operationId: "getImageAgreement",
    summary:
      "Agreement between the doctors who annotated the image: each doctor's latest manual or correction version, and Dice " +
      "and clDice for every pair (clDice up to 2 MP); the disagreement of a pair is drawn by /versions/{id}/overlay?against=",
    tag: "images",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "the annotators' versions and their pairwise agreement", schema: imageAgreementSchema } },
    async handler({ deps, params }) {
      await getImage(deps.pool, params.id);
      return imageAgreement(deps.pool, params.id, async (versionId) => loadVersionMask(deps.blobs, await getVersion(deps.pool, versionId)));
    },
  }),
  defineRoute({
    method: "get",
    path: "/versions/:id/mask",
    operationId: "getVersionMask",
    summary: "The mask of an annotation version (a doctor: only versions of their own tasks)",
    tag: "images",
    access: ALL_ROLES,
    params: idParam,
    responses: { 200: png("binary mask PNG") },
    async handler({ deps, params, user, res }) {
      const version = await getVersion(deps.pool, params.id);
      if (user!.role === "doctor") {
        const { rowCount } = await deps.pool.query(
          "SELECT 1 FROM tasks WHERE assignee_id = $1 AND (start_version_id = $2 OR result_version_id = $2 OR id = $3)",
          [user!.id, version.id, version.task_id],
        );
        if (!rowCount) throw new AppError("not_found", `annotation version ${version.id} not found`);
      }
      sendBytes(res, await deps.blobs.get(version.uri), "image/png");
      return undefined;
    },
  }),
  defineRoute({
    method: "get",
    path: "/versions/:id/overlay",
    operationId: "getVersionOverlay",
    summary:
      "The image with this version's mask against a reference: green both, red only this version, blue only the reference " +
      "(counts in the X-Overlay-Counts header)",
    tag: "images",
    access: READERS,
    params: idParam,
    query: z.object({
      against: z
        .union([z.literal("reference"), idQuery])
        .optional()
        .meta({ description: '"reference" (the image\'s reference mask, default) or another version id of the same image' }),
    }),
    responses: {
      200: { ...png("overlay PNG"), headers: { "x-overlay-counts": "tp=…, fp=…, fn=… (pixels: both, only this version, only the reference)" } },
    },
    async handler({ deps, params, query, res }) {
      const version = await getVersion(deps.pool, params.id);
      const image = await getImage(deps.pool, version.image_id);
      const against = (query as { against?: "reference" | number }).against ?? "reference";
      let reference;
      if (against === "reference") {
        if (!image.mask_uri) throw new AppError("not_found", `image ${image.id} has no reference mask`);
        reference = await readMask(await deps.blobs.get(image.mask_uri), `reference mask of image ${image.id}`, image);
      } else {
        const other = await getVersion(deps.pool, against);
        if (other.image_id !== image.id) throw new AppError("bad_request", `version ${other.id} belongs to another image`);
        reference = await loadVersionMask(deps.blobs, other);
      }
      const { png: out, counts } = await renderOverlay(await deps.blobs.get(image.png_uri), await loadVersionMask(deps.blobs, version), reference);
      res.setHeader("x-overlay-counts", `tp=${counts.tp}, fp=${counts.fp}, fn=${counts.fn}`);
      sendBytes(res, out, "image/png");
      return undefined;
    },
  }),
];
