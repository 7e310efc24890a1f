import { z } from "zod";
import { getVersion, listVersions, loadVersionMask } from "../../services/annotations.js";
import { AppError } from "../../services/errors.js";
import { getImage, IMAGE_ROLES, importImage, listImages, setImageMask, type ImageRole } from "../../services/images.js";
import { decodeMask } from "../../services/masks.js";
import { renderOverlay } from "../../services/overlay.js";
import { presentImage, presentVersion, READERS, readUpload, sendBytes, STAFF, ALL_ROLES } from "../present.js";
import { defineRoute } from "../route.js";
import { idParam, imageRoleSchema, imageSchema, versionSchema } from "../schemas.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/tiff"];

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
    summary: "Upload an image (PNG, JPEG or TIFF), optionally with its reference mask (multipart)",
    tag: "images",
    access: STAFF,
    params: idParam,
    query: z.object({
      name: z.string().min(1).max(200).optional().meta({ description: "image name (raw uploads; multipart: field `name`)" }),
      role: imageRoleSchema.optional().meta({ description: "seed, pool (default) or test" }),
    }),
    body: {
      kind: "upload",
      types: IMAGE_TYPES,
      description: "the image bytes, or multipart/form-data with `image` (file), optional `mask` (binary PNG), `name`, `role`",
      multipart: z.object({
        image: z.string().meta({ contentMediaType: "application/octet-stream", description: "the image file" }),
        mask: z.string().optional().meta({ contentMediaType: "image/png", description: "reference mask of the same size" }),
        name: z.string().optional(),
        role: imageRoleSchema.optional(),
      }),
    },
    status: 201,
    responses: { 201: { description: "stored", schema: imageSchema } },
    async handler({ deps, params, query, req, user }) {
      const upload = await readUpload(req, "image");
      const q = query as { name?: string; role?: ImageRole };
      const name = upload.fields.name ?? q.name;
      if (!name) throw new AppError("validation_failed", "query.name (or the multipart field name) is required");
      const role = (upload.fields.role ?? q.role ?? "pool") as ImageRole;
      if (!IMAGE_ROLES.includes(role)) throw new AppError("validation_failed", `role must be seed, pool or test, got "${role}"`);
      const image = await importImage(deps, {
        projectId: params.id,
        name,
        role,
        data: upload.file,
        mask: upload.files.mask ?? null,
        actorId: user!.id,
      });
      return presentImage(image);
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
  defineRoute({
    method: "get",
    path: "/images/:id/original",
    operationId: "getImageOriginal",
    summary: "The file as uploaded",
    tag: "images",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "the original file", contentType: "application/octet-stream" } },
    async handler({ deps, params, res }) {
      const image = await getImage(deps.pool, params.id);
      sendBytes(res, await deps.blobs.get(image.original_uri), `image/${image.format}`);
      return undefined;
    },
  }),
  defineRoute({
    method: "put",
    path: "/images/:id/mask",
    operationId: "setImageMask",
    summary: "Set or replace an image's reference mask",
    tag: "images",
    access: STAFF,
    params: idParam,
    body: { kind: "upload", types: ["image/png"], description: "binary mask PNG of the image's size" },
    responses: { 200: { description: "updated", schema: imageSchema } },
    async handler({ deps, params, req, user }) {
      const upload = await readUpload(req, "mask");
      return presentImage(await setImageMask(deps, params.id, upload.file, user!.id));
    },
  }),
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
        .union([z.literal("reference"), z.coerce.number().int().positive()])
        .optional()
        .meta({ description: '"reference" (the image\'s reference mask, default) or another version id of the same image' }),
    }),
    responses: { 200: png("overlay PNG") },
    async handler({ deps, params, query, res }) {
      const version = await getVersion(deps.pool, params.id);
      const image = await getImage(deps.pool, version.image_id);
      const against = (query as { against?: "reference" | number }).against ?? "reference";
      let reference;
      if (against === "reference") {
        if (!image.mask_uri) throw new AppError("not_found", `image ${image.id} has no reference mask`);
        reference = await decodeMask(await deps.blobs.get(image.mask_uri), image, `reference mask of image ${image.id}`);
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
