// `medloop import --project NAME --images DIR [--masks DIR --mask-suffix S] [--role R]`
// and `medloop import chase [--project NAME]`: imports a folder of images (and masks)
// through the same service as the upload API. Images already in the project are
// skipped, so an interrupted import can simply be run again.
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Pool } from "../../db/pool.js";
import { chaseRole, importDirectory, IMAGE_ROLES, type ImageRole } from "../../services/images.js";
import { createProject, findProjectByName, type Project } from "../../services/projects.js";
import { guard, parse, UsageError } from "../args.js";
import { connect } from "../connect.js";

export const summary = "import a folder of images (and masks) into a project; `import chase` imports CHASE_DB1";

const usage = `usage: medloop import --project NAME --images DIR [--masks DIR] [--mask-suffix S] [--role seed|pool|test] [--data DIR]
       medloop import chase [--project NAME] [--data DIR]
  --project NAME     the project (created when missing; "chase_db1" for import chase)
  --images DIR       folder of PNG/JPEG/TIFF images
  --masks DIR        folder of reference masks, <image stem><suffix>.png
  --mask-suffix S    suffix of a mask's file name (e.g. _1stHO)
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
      const chaseDir = services.config.chaseDir;
      const imagesDir = chase ? path.join(chaseDir, "images") : path.resolve(values.images!);
      const masksDir = chase ? path.join(chaseDir, "masks_1stHO") : values.masks && path.resolve(values.masks);
      // Check the folders before creating the project, so that a typo leaves nothing behind.
      await mustBeFolder(imagesDir, chase ? "CHASE_DB1 images (set MEDLOOP_CHASE_DIR)" : "--images");
      if (masksDir) await mustBeFolder(masksDir, chase ? "CHASE_DB1 masks" : "--masks");
      const project = await projectNamed(services.pool, values.project ?? "chase_db1");
      const result = await importDirectory(services, {
        projectId: project.id,
        imagesDir,
        masksDir,
        maskSuffix: chase ? "_1stHO" : values["mask-suffix"],
        roleOf: chase ? chaseRole : () => role,
        actorId: null,
      });
      const counts = countRoles(result.imported.map((i) => i.role));
      console.log(
        `project "${project.name}" (id ${project.id}): imported ${result.imported.length} image(s)${counts}` +
          (result.skipped.length ? `, skipped ${result.skipped.length} already there` : ""),
      );
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

async function projectNamed(pool: Pool, name: string): Promise<Project> {
  return (await findProjectByName(pool, name)) ?? (await createProject(pool, { name }, null));
}

function countRoles(roles: string[]): string {
  if (roles.length === 0) return "";
  const counts = new Map<string, number>();
  for (const r of roles) counts.set(r, (counts.get(r) ?? 0) + 1);
  return ` (${[...counts].map(([r, n]) => `${n} ${r}`).join(", ")})`;
}
