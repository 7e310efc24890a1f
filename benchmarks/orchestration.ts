// Orchestration benchmark → benchmarks/results/orchestration.json. Not a test.
//
// Runs the embedded stack (stack/stack.ts: Temporal dev server, TypeScript worker, Python
// gpu worker, API) on a temporary data folder over a throw-away database on the machine's
// PostgreSQL server (test/helpers/db.ts), and measures:
// 1. orchestration overhead of a campaign on tiny 64×64 images with a tiny training config:
//    per round (one workflow run per round, continue-as-new between rounds), the round's
//    wall time minus the union of every activity's execution interval (the campaign's and
//    its task child workflows') and of the time the task waited for a doctor (task row
//    created → the simulated doctor sends its HTTP submission). What is left is Temporal's
//    and the workflows' own cost: workflow tasks, scheduling latency, child starts, the
//    API's storing + the Update round trip, continue-as-new.
// 2. submission latency with 16 concurrent doctors: one HTTP POST per open annotation task
//    workflow, timed until the API answers (it stores the mask, then runs the Update);
// 3. 100 concurrent annotation-task workflows: start 100, wait until all are assigned,
//    submit to all at once, until every workflow has completed; tasks per second.
// Usage: npx tsx benchmarks/orchestration.ts [--rounds N] [--latency-tasks N] [--many N]
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Client, Connection } from "@temporalio/client";
import { createPool, type Pool } from "../db/pool.js";
import { repoRoot } from "../services/config.js";
import { createTask } from "../services/tasks.js";
import { MedloopClient } from "../services/simulate/client.js";
import { DEMO_PASSWORD } from "../services/users.js";
import { freePort } from "../stack/ports.js";
import { activityRuns, toMs, unionMs, type ActivityRun, type HistoryEvent, type Interval } from "../services/workflowTiming.js";
import { startStack, type Stack } from "../stack/stack.js";
import { createTestDatabase, type TestDatabase } from "../test/helpers/db.js";
import { makeImagePng, makeMaskPng } from "../test/helpers/images.js";
import { TASK_QUEUE, type AnnotationTaskInput } from "../workflows/types.js";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    "latency-tasks": { type: "string", default: "96" },
    many: { type: "string", default: "100" },
  },
});
const ROUNDS = Number(args.rounds);
const LATENCY_TASKS = Number(args["latency-tasks"]);
const MANY = Number(args.many);
const SIZE = 64;
const DOCTORS = 16;
const K = 2;
const ROLES = { seed: 6, pool: K * ROUNDS, test: 2 } as const;
// Epochs, patches and network as small as the Python worker takes (ml/docs/worker.md).
const TRAIN = { epochs: 1, patch_size: 32, batch_size: 4, patches_per_epoch: 8, channels: 4, depth: 2, infer_patch: 64, threads: 1, progress: false };
const OUT = path.join(repoRoot, "benchmarks", "results", "orchestration.json");


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round1 = (v: number) => Math.round(v * 10) / 10;

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function latencyStats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return {
    n: s.length,
    p50_ms: round1(quantile(s, 0.5)),
    p90_ms: round1(quantile(s, 0.9)),
    p99_ms: round1(quantile(s, 0.99)),
    max_ms: round1(s[s.length - 1] ?? 0),
    mean_ms: round1(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)),
  };
}

// ---------------------------------------------------------------- machine and versions

function machine(stage: string) {
  const [one, five, fifteen] = os.loadavg();
  return { stage, at: new Date().toISOString(), loadavg_1_5_15: [one, five, fifteen].map((v) => Math.round(v! * 100) / 100) };
}

function packageVersion(name: string): string {
  return (JSON.parse(readFileSync(path.join(repoRoot, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
}

function command(cmd: string, argv: string[]): string {
  try {
    return execFileSync(cmd, argv, { encoding: "utf8", cwd: repoRoot }).trim();
  } catch (err) {
    return `unavailable: ${(err as Error).message.split("\n")[0]}`;
  }
}

async function versions(pool: Pool) {
  const python = path.join(repoRoot, ".venv", "bin", "python");
  const py = command(python, ["-c", "import importlib.metadata as m; print(*(f'{p}={m.version(p)}' for p in ('temporalio','torch','monai')))"]);
  return {
    node: process.version,
    ...Object.fromEntries(
      ["@temporalio/client", "@temporalio/worker", "@temporalio/workflow", "express", "pg", "sharp", "zod"].map((p) => [p, packageVersion(p)]),
    ),
    temporal_cli: command(path.join(repoRoot, ".venv", "bin", "temporal"), ["--version"]),
    postgresql: (await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? "unknown",
    python: Object.fromEntries(py.split(" ").map((kv) => kv.split("=") as [string, string])),
  };
}

// ---------------------------------------------------------------- people and images

interface People {
  lead: MedloopClient;
  byId: Map<number, MedloopClient>;
}

/** The demo lab lead, and 16 doctors (the two demo ones plus 14 made through the admin API). */
async function people(apiUrl: string): Promise<People> {
  const admin = await new MedloopClient(apiUrl).login("admin@medloop.local", DEMO_PASSWORD);
  const emails = ["doctor1@medloop.local", "doctor2@medloop.local"];
  for (let i = 3; i <= DOCTORS; i++) {
    const email = `doctor${i}@bench.local`;
    await admin.json("POST", "/users", { email, name: `Bench Doctor ${i}`, role: "doctor", password: DEMO_PASSWORD });
    emails.push(email);
  }
  const doctors = await Promise.all(emails.map((e) => new MedloopClient(apiUrl).login(e, DEMO_PASSWORD)));
  return {
    lead: await new MedloopClient(apiUrl).login("lead@medloop.local", DEMO_PASSWORD),
    byId: new Map(doctors.map((d) => [d.userId!, d])),
  };
}

/** A different band of "vessel" per image, so that training sees something to learn. */
const maskOf = (n: number) => makeMaskPng(SIZE, SIZE, (x, y) => Math.abs(x - y - (n % 5) * 6) < 3 || Math.abs(x + y - 40 - n) < 2);

async function tinyProject(lead: MedloopClient): Promise<number> {
  const projectId = (await lead.createProject("orchestration benchmark")).id;
  const image = await makeImagePng(SIZE, SIZE);
  let n = 0;
  for (const [role, count] of Object.entries(ROLES)) {
    for (let i = 0; i < count; i++, n++) {
      // Only the test images carry a reference mask; seeds and pool are drawn by the doctors.
      const mask = role === "test" ? { mask: await maskOf(n) } : {};
      await lead.uploadImage(projectId, { name: `${role}_${i}`, role, image, ...mask });
    }
  }
  return projectId;
}

/** A submission body for a task: a tiny mask, timing flagged as simulated. */
async function submission(taskId: number, parentVersionId: number | null, tag: string) {
  const ended = new Date();
  return {
    submission_id: `bench-${tag}-${taskId}`,
    parent_version_id: parentVersionId,
    mask_png_base64: (await maskOf(taskId)).toString("base64"),
    active_ms: 1000,
    started_at: new Date(ended.getTime() - 1000).toISOString(),
    ended_at: ended.toISOString(),
    edits: 1,
    simulated: true,
  };
}

// ---------------------------------------------------------------- 1. campaign overhead

/** The simulated doctors: every open task of the campaign is answered as soon as it is seen. */
function answerImmediately(p: People, campaignId: number, sentAt: Map<string, number>) {
  let stopped = false;
  let failure: unknown = null;
  const seen = new Set<number>();
  const loop = (async () => {
    while (!stopped) {
      const open = await p.lead.tasks({ campaign_id: campaignId, state: "open" });
      await Promise.all(
        open
          .filter((t) => !seen.has(t.id))
          .map(async (t) => {
            seen.add(t.id);
            const doctor = p.byId.get(t.assignee_id!)!;
            const body = await submission(t.id, t.start_version_id, "campaign");
            sentAt.set(t.workflow_id!, Date.now());
            await doctor.submit(t.id, body);
          }),
      );
      await sleep(100);
    }
  })().catch((err: unknown) => {
    // Kept, not left unhandled: an unhandled rejection would end the process before the
    // benchmark's finally stops the stack.
    failure = err;
  });
  return {
    /** Throws the doctors' first error, so the caller stops waiting for the campaign. */
    check: () => {
      if (failure) throw failure;
    },
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Where the time of many workflow runs went: queueing and execution per activity type and of workflow tasks. */
function profile(runs: HistoryEvent[][]) {
  const mean = (xs: number[]) => round1(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
  const byType = new Map<string, { queued: number[]; ran: number[] }>();
  const wfQueued: number[] = [];
  const wfRan: number[] = [];
  let retried = 0;
  for (const events of runs) {
    for (const a of activityRuns(events)) {
      const entry = byType.get(a.type) ?? { queued: [], ran: [] };
      entry.queued.push(a.started - a.scheduled);
      entry.ran.push(a.closed - a.started);
      byType.set(a.type, entry);
    }
    const at = new Map(events.map((e) => [String(e.eventId), toMs(e.eventTime)]));
    for (const e of events) {
      const started = e.workflowTaskStartedEventAttributes;
      if (started) wfQueued.push(toMs(e.eventTime) - at.get(String(started.scheduledEventId))!);
      const done = e.workflowTaskCompletedEventAttributes;
      if (done) wfRan.push(toMs(e.eventTime) - at.get(String(done.startedEventId))!);
      if ((e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1) retried += 1;
    }
  }
  return {
    workflow_tasks: { n: wfRan.length, mean_schedule_to_start_ms: mean(wfQueued), mean_start_to_complete_ms: mean(wfRan) },
    activities: Object.fromEntries(
      [...byType].map(([type, v]) => [type, { n: v.ran.length, mean_schedule_to_start_ms: mean(v.queued), mean_start_to_close_ms: mean(v.ran) }]),
    ),
    activities_retried: retried,
  };
}

async function histories(client: Client, ids: string[]): Promise<HistoryEvent[][]> {
  const out: HistoryEvent[][] = [];
  for (const id of ids) out.push((await client.workflow.getHandle(id).fetchHistory()).events ?? []);
  return out;
}

/** Total length of the union of intervals, clipped to [from, to]. */
/** Every run of a workflow id, first to last (following continue-as-new backwards). */
async function runsOf(client: Client, workflowId: string): Promise<HistoryEvent[][]> {
  const runs: HistoryEvent[][] = [];
  let runId: string | undefined;
  for (;;) {
    const events = (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
    runs.unshift(events);
    const previous = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    if (!previous) return runs;
    runId = previous;
  }
}

async function roundBreakdown(client: Client, events: HistoryEvent[], round: number, sentAt: Map<string, number>) {
  const from = toMs(events[0]!.eventTime);
  const to = toMs(events[events.length - 1]!.eventTime);
  const own = activityRuns(events);
  const childActivities: ActivityRun[] = [];
  const doctorWaits: Interval[] = [];
  const children = events.map((e) => e.childWorkflowExecutionStartedEventAttributes?.workflowExecution).filter((w) => w?.workflowId);
  for (const child of children) {
    const childEvents = (await client.workflow.getHandle(child!.workflowId!, child!.runId ?? undefined).fetchHistory()).events ?? [];
    const acts = activityRuns(childEvents);
    childActivities.push(...acts);
    const created = acts.find((a) => a.type === "createTask");
    const sent = sentAt.get(child!.workflowId!);
    if (created && sent) doctorWaits.push([created.closed, sent]);
  }
  const all = [...own, ...childActivities];
  const activityUnion = unionMs(all.map((a): Interval => [a.started, a.closed]), from, to);
  const doctorUnion = unionMs(doctorWaits, from, to);
  const excluded = unionMs([...all.map((a): Interval => [a.started, a.closed]), ...doctorWaits], from, to);
  const byType: Record<string, number> = {};
  for (const a of own) byType[a.type] = round1((byType[a.type] ?? 0) + (a.closed - a.started));
  const queued = all.map((a) => a.started - a.scheduled);
  return {
    round,
    wall_ms: round1(to - from),
    activities_ms: round1(activityUnion),
    doctor_wait_ms: round1(doctorUnion),
    overhead_ms: round1(to - from - excluded),
    overhead_pct: round1((100 * (to - from - excluded)) / (to - from)),
    history_events: events.length,
    workflow_tasks: events.filter((e) => e.workflowTaskCompletedEventAttributes).length,
    child_workflows: children.length,
    activities: all.length,
    activity_schedule_to_start_ms: { mean: round1(queued.reduce((a, b) => a + b, 0) / Math.max(1, queued.length)), max: round1(Math.max(0, ...queued)) },
    campaign_activity_ms: byType,
    workflow_tasks_profile: profile([events]).workflow_tasks,
  };
}

async function campaignOverhead(client: Client, p: People) {
  const projectId = await tinyProject(p.lead);
  const sentAt = new Map<string, number>();
  const t0 = performance.now();
  const campaign = await p.lead.startCampaign(projectId, "bench", {
    k: K,
    maxRounds: ROUNDS,
    targetF1: 0.999,
    strategy: "uncertainty",
    augmentation: { seed: 3, steps: [{ op: "flip", modes: ["none", "h"] }] },
    train: TRAIN,
  });
  const doctors = answerImmediately(p, campaign.id, sentAt);
  try {
    const done = await until("the campaign to end", async () => {
      doctors.check();
      const c = await p.lead.getCampaign(campaign.id);
      if (c.state === "failed") throw new Error(`the campaign failed`);
      return c.state === "completed" ? c : null;
    }, 6 * 60_000, 500);
    const totalMs = performance.now() - t0;
    const runs = await runsOf(client, done.workflow_id!);
    const rounds: Array<Awaited<ReturnType<typeof roundBreakdown>>> = [];
    for (const [i, events] of runs.entries()) rounds.push(await roundBreakdown(client, events, i, sentAt));
    const sum = (f: (r: (typeof rounds)[number]) => number) => round1(rounds.reduce((a, r) => a + f(r), 0));
    return {
      project_id: projectId,
      campaign_id: campaign.id,
      config: { images: ROLES, image_size: [SIZE, SIZE], k: K, max_rounds: ROUNDS, train: TRAIN },
      end_to_end_ms: round1(totalMs),
      rounds,
      total: {
        wall_ms: sum((r) => r.wall_ms),
        activities_ms: sum((r) => r.activities_ms),
        doctor_wait_ms: sum((r) => r.doctor_wait_ms),
        overhead_ms: sum((r) => r.overhead_ms),
        overhead_per_round_ms: round1(sum((r) => r.overhead_ms) / rounds.length),
      },
    };
  } finally {
    await doctors.stop();
  }
}

// ---------------------------------------------------------------- 2 and 3. task workflows

interface OpenTask {
  /** null: a task without a workflow (the API stores the submission and completes the task itself). */
  workflowId: string | null;
  taskId: number;
  assigneeId: number;
}

/** Starts standalone annotation-task workflows on the project's images (as the campaign would). */
async function startTasks(client: Client, pool: Pool, projectId: number, campaignId: number, prefix: string, n: number) {
  const { rows: images } = await pool.query<{ id: number; png_uri: string; width: number; height: number }>(
    "SELECT id, png_uri, width, height FROM images WHERE project_id = $1 ORDER BY id",
    [projectId],
  );
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  const handles = await Promise.all(
    ids.map((workflowId, i) => {
      const img = images[i % images.length]!;
      const input: AnnotationTaskInput = {
        campaignId: String(campaignId),
        projectId: String(projectId),
        round: 1000,
        kind: "annotate",
        image: { imageId: String(img.id), imageUri: img.png_uri, width: img.width, height: img.height },
      };
      return client.workflow.start("annotationTask", { taskQueue: TASK_QUEUE, workflowId, args: [input] });
    }),
  );
  return { ids, handles };
}

/** Waits until every workflow has created its (open, assigned) task row. */
async function openTasks(pool: Pool, ids: string[]): Promise<OpenTask[]> {
  return until(`${ids.length} open tasks`, async () => {
    const { rows } = await pool.query<{ workflow_id: string; id: number; assignee_id: number }>(
      "SELECT workflow_id, id, assignee_id FROM tasks WHERE workflow_id = ANY($1) AND state = 'open'",
      [ids],
    );
    return rows.length === ids.length ? rows.map((r) => ({ workflowId: r.workflow_id, taskId: r.id, assigneeId: r.assignee_id })) : null;
  }, 120_000, 100);
}

/** POSTs one submission as the task's doctor; returns the time until the API answered. */
async function timedSubmit(p: People, task: OpenTask, tag: string): Promise<number> {
  const body = await submission(task.taskId, null, tag);
  const t = performance.now();
  const res = await p.byId.get(task.assigneeId)!.submit(task.taskId, body);
  const ms = performance.now() - t;
  if (res.workflow_notified !== (task.workflowId !== null)) throw new Error(`task ${task.taskId}: workflow_notified is ${res.workflow_notified}`);
  return ms;
}

/** 16 concurrent clients drain the queue; each request is made as the doctor the task is assigned to. */
async function submitConcurrently(p: People, queue: OpenTask[], tag: string) {
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: DOCTORS }, async () => {
      for (let task = queue.shift(); task; task = queue.shift()) latencies.push(await timedSubmit(p, task, tag));
    }),
  );
  return { latencies, elapsed: performance.now() - t0 };
}

function perDoctor(tasks: OpenTask[]) {
  const counts = new Map<number, number>();
  for (const t of tasks) counts.set(t.assigneeId, (counts.get(t.assigneeId) ?? 0) + 1);
  return { doctors: counts.size, min: Math.min(...counts.values()), max: Math.max(...counts.values()) };
}

async function submissionLatency(client: Client, pool: Pool, p: People, projectId: number, campaignId: number) {
  // Baseline: the same requests to tasks without a workflow (stored, no Temporal Update).
  const { rows: images } = await pool.query<{ id: number }>("SELECT id FROM images WHERE project_id = $1 ORDER BY id", [projectId]);
  const doctorIds = [...p.byId.keys()];
  const plain: OpenTask[] = [];
  for (let i = 0; i < LATENCY_TASKS; i++) {
    const assigneeId = doctorIds[i % doctorIds.length]!;
    const task = await createTask(pool, { projectId, campaignId, round: 2000, kind: "annotate", imageId: images[i % images.length]!.id, assigneeId });
    plain.push({ workflowId: null, taskId: task.id, assigneeId });
  }
  const baseline = await submitConcurrently(p, plain, "plain");

  const { ids, handles } = await startTasks(client, pool, projectId, campaignId, "bench-latency", LATENCY_TASKS);
  const queue = await openTasks(pool, ids);
  const spread = perDoctor(queue);
  const { latencies, elapsed } = await submitConcurrently(p, queue, "latency");
  await Promise.all(handles.map((h) => h.result()));
  return {
    concurrency: DOCTORS,
    submissions: latencies.length,
    tasks_per_doctor: spread,
    latency: latencyStats(latencies),
    submissions_per_s: round1((latencies.length * 1000) / elapsed),
    baseline_without_workflow: {
      definition: "The same 16 concurrent submissions to tasks that have no workflow: the API stores the mask and completes the task itself, no Temporal Update.",
      latency: latencyStats(baseline.latencies),
      submissions_per_s: round1((baseline.latencies.length * 1000) / baseline.elapsed),
    },
    task_workflows: profile(await histories(client, ids)),
  };
}

async function manyTasks(client: Client, pool: Pool, p: People, projectId: number, campaignId: number) {
  const t0 = performance.now();
  const { ids, handles } = await startTasks(client, pool, projectId, campaignId, "bench-many", MANY);
  const tStarted = performance.now();
  const open = await openTasks(pool, ids);
  const tOpen = performance.now();
  const latencies = await Promise.all(open.map((task) => timedSubmit(p, task, "many")));
  const tSubmitted = performance.now();
  await Promise.all(handles.map((h) => h.result()));
  const tDone = performance.now();
  const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE workflow_id = ANY($1) AND state = 'done'", [ids]);
  if (rows[0]!.n !== MANY) throw new Error(`only ${rows[0]!.n} of ${MANY} tasks are done`);
  return {
    workflows: MANY,
    tasks_per_doctor: perDoctor(open),
    start_ms: round1(tStarted - t0),
    start_to_all_assigned_ms: round1(tOpen - t0),
    submit_all_ms: round1(tSubmitted - tOpen),
    submit_to_all_completed_ms: round1(tDone - tOpen),
    total_ms: round1(tDone - t0),
    tasks_per_s: round1((MANY * 1000) / (tDone - t0)),
    submissions_at_concurrency_100: latencyStats(latencies),
    task_workflows: profile(await histories(client, ids)),
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const cpus = os.cpus();
  const load = [machine("start")];
  const db: TestDatabase = await createTestDatabase({ migrated: false });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "medloop-bench-"));
  const logLines: string[] = [];
  let stack: Stack | null = null;
  let connection: Connection | null = null;
  let pool: Pool | null = null;
  try {
    stack = await startStack({
      dataDir,
      port: await freePort(),
      temporalPort: await freePort(),
      databaseUrl: db.url,
      demoProject: false,
      log: (line) => logLines.push(line),
    });
    pool = createPool(db.url, 4);
    connection = await Connection.connect({ address: stack.temporalAddress });
    const client = new Client({ connection });
    const libraries = await versions(pool);
    const p = await people(stack.apiUrl);
    console.log("1/3 campaign overhead …");
    const campaign = await campaignOverhead(client, p);
    load.push(machine("after campaign"));
    console.log("2/3 submission latency …");
    const latency = await submissionLatency(client, pool, p, campaign.project_id, campaign.campaign_id);
    load.push(machine("after latency"));
    console.log("3/3 100 task workflows …");
    const many = await manyTasks(client, pool, p, campaign.project_id, campaign.campaign_id);
    load.push(machine("end"));
    const result = {
      benchmark: "orchestration",
      date: new Date().toISOString(),
      machine: {
        cpu: cpus[0]?.model ?? "unknown",
        cores: cpus.length,
        memory_gib: round1(os.totalmem() / 2 ** 30),
        platform: `${os.platform()} ${os.release()}`,
        shared:
          "The machine is shared with other engineers' builds, tests and training while this runs; the load averages below show how busy it was, so the figures are noisy upper bounds.",
        load,
      },
      versions: libraries,
      temporal_server_errors: {
        definition: "ERROR lines the Temporal dev server logged during the run (for example SQLite writes of workflow state that hit their context deadline under load and were retried).",
        count: logLines.filter((l) => l.startsWith("[temporal]") && l.includes("level=ERROR")).length,
        messages: [...new Set(logLines.filter((l) => l.startsWith("[temporal]") && l.includes("level=ERROR")).map((l) => /msg="([^"]*)".*error="([^"]*)"/.exec(l)?.slice(1).join(": ") ?? "other"))],
      },
      setup:
        "Embedded stack (stack/stack.ts): Temporal dev server (SQLite, WAL), TypeScript worker, Python gpu worker (CPU torch), API over HTTP on loopback; PostgreSQL server on loopback with a throw-away database.",
      campaign_overhead: {
        definition:
          "Per round (= one workflow run): round wall time minus the union of activity execution intervals (campaign and task child workflows, started → closed) and of doctor waits (task row created → simulated doctor sends the HTTP submission; the doctors answer as soon as they see a task, polling every 100 ms).",
        ...campaign,
      },
      submission_latency: {
        definition: "HTTP POST /api/tasks/{id}/submissions until the API answers 201: decoding and storing the mask, then the Temporal Update of the task's workflow.",
        ...latency,
      },
      concurrent_task_workflows: {
        definition: "Start N annotationTask workflows at once, wait until each has assigned its task, POST all N submissions at once, until every workflow has completed; tasks_per_s = N / total.",
        ...many,
      },
    };
    await mkdir(path.dirname(OUT), { recursive: true });
    await writeFile(OUT, `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify({ overhead: campaign.total, latency: latency.latency, many: { tasks_per_s: many.tasks_per_s } }, null, 2));
    console.log(`wrote ${path.relative(repoRoot, OUT)}`);
  } catch (err) {
    console.error(logLines.slice(-40).join("\n"));
    throw err;
  } finally {
    // The stack's output, for a look afterwards (.test-data/ is git-ignored).
    await mkdir(path.join(repoRoot, ".test-data"), { recursive: true });
    await writeFile(path.join(repoRoot, ".test-data", "orchestration-bench.log"), `${logLines.join("\n")}\n`);
    await connection?.close();
    await pool?.end();
    await stack?.stop();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`orchestration benchmark: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});
