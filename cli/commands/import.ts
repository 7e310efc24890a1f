// `medloop import --project NAME --images DIR [--masks DIR --mask-suffix S] [--fov DIR] [--role R]`
// and `medloop import chase [--project NAME]`: imports a folder of images (and masks, FOV masks)
// through the same service as the upload API, under the ingest contract (docs/ingest.md). All or
// nothing: a refused file leaves no project, image, mask or blob behind. Images whose content is
// already in the project are skipped, so an interrupted import can simply be run again.
import { stat } from "node:fs/promises";
import path from "node:path";
import { chaseImport, importDirectory, type DirectoryImport } from "../../services/imageImport.js";
import { IMAGE_ROLES, type ImageRole } from "../../services/images.js";
import { guard, parse, UsageError } from "../args.js";
import { connect } from "../connect.js";

export const summary = "import a folder of images (and masks, FOV masks) into a project; `import chase` imports CHASE_DB1";

const usage = `usage: medloop import --project NAME --images DIR [--masks DIR] [--mask-suffix S] [--fov DIR] [--role seed|pool|test] [--data DIR]
       medloop import chase [--project NAME] [--data DIR]
  --project NAME     the project (created when missing, in the same transaction: a refused import creates nothing;
                     "chase_db1" for import chase)
  --images DIR       folder of images: PNG, JPEG, TIFF, GIF, BMP, PPM/PGM or WebP (docs/ingest.md)
  --masks DIR        folder of reference masks named <image stem><suffix>.<any of those extensions>
  --mask-suffix S    suffix of a mask's stem (e.g. _1stHO, _manual1, .ah); default none
  --fov DIR          folder of field-of-view masks named <image stem>.<extension>
  --role R           role of every imported image (default pool; import chase uses the CHASE_DB1 split)
  --data DIR         data folder of the running stack (default .data)`;

export async function run(argv: string[]): Promise<number> {
  return guard("import", usage, async () => {
    const { values, positionals } = parse(
      argv,
      {
        project: { type: "string" },
        images: { type: "string" },
        masks: { type: "string" },
        "mask-suffix": { type: "string" },
        fov: { type: "string" },
        role: { type: "string" },
        data: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      true,
    );
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const chase = positionals[0] === "chase";
    if (positionals.length > (chase ? 1 : 0)) throw new UsageError(`unexpected argument "${positionals.at(-1)}"`);
    if (!chase && (!values.project || !values.images)) throw new UsageError("--project and --images are required");
    if (values["mask-suffix"] !== undefined && !values.masks) throw new UsageError("--mask-suffix needs --masks");
    const role = (values.role ?? "pool") as ImageRole;
    if (!IMAGE_ROLES.includes(role)) throw new UsageError(`--role must be one of ${IMAGE_ROLES.join(", ")}`);

    const services = await connect(values.data);
    try {
      const folders: Omit<DirectoryImport, "actorId"> = chase
        ? chaseImport(services.config.chaseDir, null)
        : {
            imagesDir: path.resolve(values.images!),
            masksDir: values.masks && path.resolve(values.masks),
            maskSuffix: values["mask-suffix"],
            fovDir: values.fov && path.resolve(values.fov),
            roleOf: () => role,
          };
      await mustBeFolder(folders.imagesDir, chase ? "CHASE_DB1 images (set MEDLOOP_CHASE_DIR)" : "--images");
      if (folders.masksDir) await mustBeFolder(folders.masksDir, chase ? "CHASE_DB1 masks" : "--masks");
      if (folders.fovDir) await mustBeFolder(folders.fovDir, "--fov");
      const result = await importDirectory(services, { ...folders, projectName: values.project ?? "chase_db1", actorId: null });
      const { project } = result;
      console.log(
        `project "${project.name}" (id ${project.id}): imported ${result.imported.length} image(s)${countRoles(result.imported.map((i) => i.role))}` +
          (result.skipped.length ? `, skipped ${result.skipped.length} already there` : ""),
      );
      for (const s of result.skipped.filter((s) => s.added.length)) console.log(`  ${s.name}: added its ${s.added.join(" and ")}`);
      if (result.lossyMasks.length) {
        console.log(`  note: ${result.lossyMasks.length} mask(s) came from lossy files (JPEG/WebP) and were thresholded at half scale: ${result.lossyMasks.join(", ")}`);
      }
      return 0;
    } finally {
      await services.close();
    }
  });
}

async function mustBeFolder(dir: string, what: string): Promise<void> {
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new Error(`${what}: ${dir} is not a folder`);
}

function countRoles(roles: string[]): string {
  if (roles.length === 0) return "";
  const counts = new Map<string, number>();
  for (const r of roles) counts.set(r, (counts.get(r) ?? 0) + 1);
  return ` (${[...counts].map(([r, n]) => `${n} ${r}`).join(", ")})`;
}
