// A small process supervisor for the embedded stack: starts children in order,
// prefixes their output with their name, reports a child that dies on its own,
// and stops everything in reverse order (a worker must stop before the servers it
// talks to, so that it can finish or hand back its current activity).
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface ChildSpec {
  /** Short name used as the log prefix, e.g. "temporal". */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this OS user (PostgreSQL refuses to run as root). */
  uid?: number;
  gid?: number;
  /** Signal asking the child to stop cleanly (SIGTERM by default; PostgreSQL wants SIGINT). */
  stopSignal?: NodeJS.Signals;
  /** How long a clean stop may take before the child is killed. */
  stopTimeoutMs?: number;
}

export interface ChildExit {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type LogSink = (line: string) => void;

interface Running {
  spec: ChildSpec;
  child: ChildProcess;
  exited: Promise<ChildExit>;
  stopping: boolean;
  done: boolean;
}

export class Supervisor {
  private readonly children: Running[] = [];
  private crashHandlers: ((exit: ChildExit) => void)[] = [];
  private startHandlers: ((name: string, pid: number) => void)[] = [];
  private stopped = false;

  constructor(private readonly log: LogSink = (line) => process.stdout.write(`${line}\n`)) {}

  /** Called when a child exits while the supervisor did not ask it to. */
  onCrash(handler: (exit: ChildExit) => void): void {
    this.crashHandlers.push(handler);
  }

  /** Called with each child's pid once it is spawned. */
  onStart(handler: (name: string, pid: number) => void): void {
    this.startHandlers.push(handler);
  }

  /** Starts a child; its own process group lets us stop it (and its children) in our order. */
  start(spec: ChildSpec): ChildProcess {
    if (this.stopped) throw new Error(`cannot start ${spec.name}: the stack is stopping`);
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      uid: spec.uid,
      gid: spec.gid,
      // A separate process group: Ctrl-C in the terminal reaches only us, and we stop
      // the children in reverse order instead of all at once.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const running: Running = { spec, child, stopping: false, done: false, exited: Promise.resolve({ name: spec.name, code: null, signal: null }) };
    running.exited = new Promise<ChildExit>((resolve) => {
      child.once("error", (err) => {
        this.log(`[${spec.name}] failed to start: ${err.message}`);
        running.done = true;
        resolve({ name: spec.name, code: 127, signal: null });
      });
      child.once("exit", (code, signal) => {
        running.done = true;
        resolve({ name: spec.name, code, signal });
      });
    });
    void running.exited.then((exit) => {
      if (!running.stopping && !this.stopped) {
        const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
        this.log(`[stack] ${spec.name} exited unexpectedly (${how})`);
        for (const handler of this.crashHandlers) handler(exit);
      }
    });
    this.pipeLines(spec.name, child);
    this.children.push(running);
    if (child.pid !== undefined) for (const handler of this.startHandlers) handler(spec.name, child.pid);
    return child;
  }

  /** Resolves when the named child exits (for one-shot children such as initdb). */
  exited(name: string): Promise<ChildExit> {
    const running = this.children.find((c) => c.spec.name === name);
    if (!running) throw new Error(`no child named ${name}`);
    return running.exited;
  }

  /** Marks a child as expected to exit (one-shot helpers) so that its exit is no crash. */
  expectExit(name: string): void {
    const running = this.children.find((c) => c.spec.name === name);
    if (running) running.stopping = true;
  }

  /** Names of the children that are still running. */
  runningNames(): string[] {
    return this.children.filter((c) => !c.done).map((c) => c.spec.name);
  }

  /** Stops every child in reverse start order; safe to call more than once. */
  async stopAll(): Promise<void> {
    this.stopped = true;
    for (const running of [...this.children].reverse()) {
      await this.stopOne(running);
    }
  }

  private async stopOne(running: Running): Promise<void> {
    if (running.done) return;
    running.stopping = true;
    const { spec, child } = running;
    const pid = child.pid;
    if (pid === undefined) return;
    this.signalGroup(pid, spec.stopSignal ?? "SIGTERM");
    const timeoutMs = spec.stopTimeoutMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const result = await Promise.race([running.exited, timedOut]);
    clearTimeout(timer);
    if (result === "timeout") {
      this.log(`[stack] ${spec.name} did not stop within ${timeoutMs} ms; killing it`);
      this.signalGroup(pid, "SIGKILL");
      await running.exited;
    }
  }

  private signalGroup(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is gone already (the child exited between our checks).
    }
  }

  private pipeLines(name: string, child: ChildProcess): void {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      lines.on("line", (line) => this.log(`[${name}] ${line}`));
    }
  }
}
