// The demo accounts and the demo project that `medloop start` creates on a fresh data
// folder. Idempotent: a restart finds them and creates nothing new.
import { existsSync } from "node:fs";
import path from "node:path";
import type { Pool } from "../db/pool.js";
import type { BlobStore } from "../services/blobs.js";
import { chaseImport, importDirectory } from "../services/imageImport.js";
import { findProjectByName } from "../services/projects.js";
import { seedDemoUsers } from "../services/users.js";

export interface DemoUser {
  email: string;
  name: string;
  role: string;
  password: string;
}

export const DEMO_PROJECT = "CHASE_DB1 demo";

export async function seedDemoUsersForStack(pool: Pool): Promise<DemoUser[]> {
  const users = await seedDemoUsers(pool);
  return users.map(({ email, name, role, password }) => ({ email, name, role, password }));
}

/**
 * The demo project: CHASE_DB1 (read in place from MEDLOOP_CHASE_DIR) with its seed/pool/test
 * split, ready for a campaign. Skipped when the data set is not there. Images already
 * imported are skipped, so an interrupted first start completes on the next one.
 */
export async function seedDemoProject(
  deps: { pool: Pool; blobs: BlobStore },
  chaseDir: string,
  log: (line: string) => void,
): Promise<string | null> {
  if (!existsSync(path.join(chaseDir, "images"))) {
    log(`[stack] no CHASE_DB1 at ${chaseDir}: no demo project (set MEDLOOP_CHASE_DIR)`);
    return null;
  }
  const project = await findProjectByName(deps.pool, DEMO_PROJECT);
  if (!project || project.image_count < 28) {
    log(`[stack] demo project "${DEMO_PROJECT}": importing CHASE_DB1…`);
    // One transaction creates the project and imports the images: an interrupted first start
    // leaves no empty demo project behind, and the next start imports what is missing.
    const result = await importDirectory(deps, {
      ...chaseImport(chaseDir, null),
      projectName: DEMO_PROJECT,
      projectDescription: "CHASE_DB1 retinal vessels, 1stHO masks; created by medloop start",
    });
    log(`[stack] demo project: ${result.imported.length} image(s) imported`);
  }
  return DEMO_PROJECT;
}
