// Children of a stack whose own process was killed (kill -9, a closed terminal) keep
// running in their own process groups. Before a new stack starts on the same data folder
// they are stopped: a second Temporal server on the same SQLite file, or workers polling
// with stale settings, would do harm. A pid is only trusted when the process still names
// this data folder (in its command line or its MEDLOOP_DATA_DIR), so a reused pid is left alone.
import { readFileSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";

const PIDS_FILE = "stack.pids";

export async function recordChild(dataDir: string, name: string, pid: number): Promise<void> {
  const file = path.join(dataDir, PIDS_FILE);
  const entries = await readEntries(file);
  entries.push({ name, pid });
  await writeFile(file, `${JSON.stringify(entries)}\n`);
}

export async function clearChildren(dataDir: string): Promise<void> {
  await rm(path.join(dataDir, PIDS_FILE), { force: true });
}

/** Stops the children a killed stack left behind; returns their names. */
export async function stopLeftovers(dataDir: string, log: (line: string) => void): Promise<string[]> {
  const file = path.join(dataDir, PIDS_FILE);
  const stopped: string[] = [];
  for (const { name, pid } of (await readEntries(file)).reverse()) {
    if (!belongsTo(pid, dataDir)) continue;
    log(`[stack] stopping ${name} (pid ${pid}) left running by a previous stack on this folder`);
    // The signal each one stops cleanly on, as in stack/stack.ts.
    signal(pid, name === "postgres" || name === "gpu-worker" ? "SIGINT" : "SIGTERM");
    if (!(await exitsWithin(pid, 20_000))) signal(pid, "SIGKILL");
    stopped.push(name);
  }
  await rm(file, { force: true });
  return stopped;
}

async function readEntries(file: string): Promise<Array<{ name: string; pid: number }>> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as Array<{ name: string; pid: number }>;
  } catch {
    return [];
  }
}

function belongsTo(pid: number, dataDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (cmdline.some((arg) => arg.includes(dataDir))) return true;
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    return environ.includes(`MEDLOOP_DATA_DIR=${dataDir}`);
  } catch {
    return false; // gone, or not ours to read
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig); // the child led its own process group
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

async function exitsWithin(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}
