// Spawns the Python worker of the `gpu` task queue (`.venv/bin/medloop-ml worker`) as a
// child process, for the tests and for anything that runs the loop outside the embedded
// stack. SIGINT lets it finish or hand back its running activities before it exits.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../services/config.js";
import { GPU_TASK_QUEUE } from "../workflows/types.js";

export interface PythonWorkerOptions {
  address: string;
  taskQueue?: string;
  env?: NodeJS.ProcessEnv;
  /** Receives the worker's output lines (default: discarded). */
  log?: (line: string) => void;
}

export interface PythonWorker {
  child: ChildProcess;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  stop(timeoutMs?: number): Promise<void>;
}

export function pythonWorkerCommand(options: PythonWorkerOptions): { command: string; args: string[] } {
  return {
    command: path.join(repoRoot, ".venv", "bin", "medloop-ml"),
    args: ["worker", "--address", options.address, "--task-queue", options.taskQueue ?? GPU_TASK_QUEUE],
  };
}

export function spawnPythonWorker(options: PythonWorkerOptions): PythonWorker {
  const { command, args } = pythonWorkerCommand(options);
  if (!existsSync(command)) throw new Error(`${path.relative(repoRoot, command)} is missing; run bash scripts/setup.sh`);
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: { ...process.env, ...options.env, PYTHONUNBUFFERED: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = options.log ?? (() => undefined);
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => chunk.split("\n").filter(Boolean).forEach((line) => log(line)));
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    exited,
    async stop(timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
