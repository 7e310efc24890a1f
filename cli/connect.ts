// How the CLI reaches the system: the database of the stack running on the data folder
// (its stack.json), or the server named by MEDLOOP_DATABASE_URL.
import path from "node:path";
import { createPool, type Pool } from "../db/pool.js";
import { BlobStore } from "../services/blobs.js";
import { loadConfig, type Config } from "../services/config.js";
import { runningStack, type StackInfo } from "../stack/stack.js";

export interface Services {
  config: Config;
  pool: Pool;
  blobs: BlobStore;
  stack: StackInfo | null;
  close(): Promise<void>;
}

export async function connect(dataOption: string | undefined): Promise<Services> {
  const env = dataOption ? { ...process.env, MEDLOOP_DATA_DIR: path.resolve(dataOption) } : process.env;
  const config = loadConfig(env);
  const stack = await runningStack(config.dataDir);
  const databaseUrl = config.databaseUrl ?? stack?.databaseUrl;
  if (!databaseUrl) {
    throw new Error(`no running stack on ${config.dataDir} and MEDLOOP_DATABASE_URL is not set; run medloop start first`);
  }
  const pool = createPool(databaseUrl, 4);
  return { config, pool, blobs: new BlobStore(config.blobRoot), stack, close: () => pool.end() };
}
