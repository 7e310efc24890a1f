// Builds the small test model and the Python reference maps once per test file
// (test/serving/fixtures/make_model.py: the engine's network, MONAI's SlidingWindowInferer).
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

export const repoRoot = path.resolve(import.meta.dirname, "../..");
export const chaseDir = path.resolve(repoRoot, process.env.MEDLOOP_CHASE_DIR ?? "../shared/data/chase_db1");
const python = path.join(repoRoot, ".venv/bin/python");

export interface RefCase {
  name: string;
  height: number;
  width: number;
}

export interface ModelFixture {
  dir: string;
  cases: RefCase[];
  input(name: string): Promise<Buffer>;
  prob(name: string): Promise<Float32Array>;
  cleanup(): Promise<void>;
}

export async function makeModelFixture(opts: { full?: boolean; patch?: string } = {}): Promise<ModelFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "medloop-serving-"));
  const args = [path.join(repoRoot, "test/serving/fixtures/make_model.py"), "--out", dir, "--chase", chaseDir];
  if (opts.full) args.push("--full");
  if (opts.patch) args.push("--patch", opts.patch);
  await promisify(execFile)(python, args, { cwd: repoRoot, env: { ...process.env, OMP_NUM_THREADS: "1" } });
  const refs = JSON.parse(await readFile(path.join(dir, "refs.json"), "utf8")) as { cases: RefCase[] };
  return {
    dir,
    cases: refs.cases,
    input: (name) => readFile(path.join(dir, `${name}.input.bin`)),
    prob: async (name) => {
      const buf = await readFile(path.join(dir, `${name}.prob.bin`));
      return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
