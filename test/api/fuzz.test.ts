// API fuzzing with schemathesis (PyPI, installed into .venv by ml/pyproject.toml's dev extra)
// against the real app over a real database, as a lab lead and as a doctor: the cases come from
// the OpenAPI document, half of the path ids name seeded rows (so the handlers run, not only the
// "not found" paths), and every answer is checked: no server error, and status, content type,
// headers and body as the document says. Bounded in time (MEDLOOP_FUZZ_SECONDS per role, default
// 60), with a fixed seed by default (MEDLOOP_FUZZ_SEED) so that CI runs the same cases each time.
import { spawn } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../helpers/api.js";
import { idFor, ROW_H, ROW_W, seedApiRows, type ApiRows } from "../helpers/apiRows.js";
import { makeMaskPng } from "../helpers/images.js";

const SCHEMATHESIS = path.resolve(".venv/bin/schemathesis");
const SECONDS = Number(process.env.MEDLOOP_FUZZ_SECONDS ?? 60);
const SEED = process.env.MEDLOOP_FUZZ_SEED ?? "1010";
const CHECKS = [
  "not_a_server_error",
  "status_code_conformance",
  "content_type_conformance",
  "response_headers_conformance",
  "response_schema_conformance",
  // What the document calls invalid must be refused (4xx), not stored.
  "negative_data_rejection",
];

let api: TestApi;
let rows: ApiRows;
let dir: string;

/** What one run found, per operation ("GET /api/tasks/{id}"). */
interface OperationCounts {
  cases: number;
  serverErrors: number;
  mismatches: number;
}
interface RunResult {
  exitCode: number;
  byOperation: Map<string, OperationCounts>;
  /** One line per distinct failure, with one request that shows it. */
  failures: Map<string, string>;
  /** Operations schemathesis could not test (e.g. a pattern it cannot generate). */
  errors: string[];
  /** Answers with a 2xx status, per operation: proof that the runs reach the handlers. */
  successes: Map<string, number>;
}

beforeAll(async () => {
  if (!existsSync(SCHEMATHESIS)) throw new Error(`${SCHEMATHESIS} is missing: run bash scripts/setup.sh (ml/pyproject.toml's dev extra installs it)`);
  api = await startTestApi();
  rows = await seedApiRows(api);
  dir = await mkdtemp(path.join(os.tmpdir(), "medloop-fuzz-"));
  await writeFile(path.join(dir, "schemathesis.toml"), await configToml());
});
afterAll(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Binds path ids, deployment names and message ids to seeded rows half of the time, and gives a
 * submission's mask a real PNG (of the image's size, cut short, or of another size) half of the
 * time: random values alone would almost never get past "not found" and "not an image".
 */
async function configToml(): Promise<string> {
  const doc = (await api.call("GET", "/api/openapi.json")).json as { paths: Record<string, unknown> };
  const mask = await makeMaskPng(ROW_W, ROW_H, (x, y) => x < y);
  const otherSize = await makeMaskPng(ROW_W + 1, ROW_H, (x) => x < 3);
  const lines = [
    "[dictionaries.deployment]",
    `values = ["${rows.deployment}"]`,
    "[dictionaries.message]",
    `values = ["${rows.messageId}"]`,
    "[dictionaries.version]",
    `values = [${rows.versionId}]`,
    "[dictionaries.project]",
    `values = [${rows.projectId}]`,
    "[dictionaries.mask]",
    `values = ${JSON.stringify([mask, mask.subarray(0, mask.length >> 1), otherSize].map((m) => m.toString("base64")))}`,
    "[parameters]",
    '"path.name" = { dictionary = "deployment", probability = 0.5 }',
    '"path.messageId" = { dictionary = "message", probability = 0.5 }',
    '"body.parent_version_id" = { dictionary = "version", probability = 0.5 }',
    '"body.project_id" = { dictionary = "project", probability = 0.5 }',
    '"body.mask_png_base64" = { dictionary = "mask", probability = 0.5 }',
  ];
  for (const p of Object.keys(doc.paths).filter((p) => p.includes("{id}"))) {
    const name = `id-${p.replace(/\W+/g, "-")}`;
    lines.push(
      `[dictionaries.${name}]`,
      `values = [${idFor(rows, p)}]`,
      "[[operations]]",
      `include-path = "${p}"`,
      `parameters = { "path.id" = { dictionary = "${name}", probability = 0.5 } }`,
    );
  }
  return lines.join("\n") + "\n";
}

async function runSchemathesis(token: string, label: string): Promise<RunResult> {
  const report = path.join(dir, `${label}.ndjson`);
  const args = [
    "--config-file", path.join(dir, "schemathesis.toml"),
    "run", `${api.baseUrl}/api/openapi.json`,
    "--url", api.baseUrl,
    "--header", `Authorization: Bearer ${token}`,
    // Logging out would revoke the token the rest of the run uses.
    "--exclude-operation-id", "logout",
    "--checks", CHECKS.join(","),
    "--max-examples", "20",
    "--max-time", String(SECONDS),
    // One worker: with several threads, schemathesis on this CPython 3.11 sometimes fails a case
    // with "SystemError: AST constructor recursion depth mismatch" (a CPython bug, gh-106905), and
    // the API under test needs the machine's other core anyway.
    "--workers", "1",
    "--seed", SEED,
    "--generation-database", "none",
    "--no-color",
    "--report", "ndjson",
    "--report-ndjson-path", report,
  ]; // prettier-ignore
  const exitCode = await new Promise<number>((resolve, reject) => {
    const child = spawn(SCHEMATHESIS, args, { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
    child.on("error", reject);
    child.on("exit", (code) => resolve(code ?? -1));
  });
  return { exitCode, ...(await readReport(report)) };
}

type Event = Record<string, Record<string, unknown>>;
interface Recorder {
  cases?: Record<string, { value: { method: string; path: string } }>;
  checks?: Record<string, Array<{ name: string; status: string; failure_info?: { failure: { title: string; message: string } } }>>;
  interactions?: Record<string, { request: { method: string; uri: string }; response?: { status_code: number } }>;
}

async function readReport(file: string): Promise<Omit<RunResult, "exitCode">> {
  const byOperation = new Map<string, OperationCounts>();
  const failures = new Map<string, string>();
  const successes = new Map<string, number>();
  const errors: string[] = [];
  for await (const line of createInterface({ input: createReadStream(file) })) {
    const event = JSON.parse(line) as Event;
    if (event.NonFatalError) errors.push(`${String(event.NonFatalError.label)}: ${JSON.stringify(event.NonFatalError.value).slice(0, 400)}`);
    if (event.FatalError) errors.push(`fatal: ${JSON.stringify(event.FatalError).slice(0, 500)}`);
    const finished = event.ScenarioFinished;
    if (!finished) continue;
    const rec = finished.recorder as Recorder;
    for (const [id, c] of Object.entries(rec.cases ?? {})) {
      const operation = `${c.value.method} ${c.value.path}`;
      const counts = byOperation.get(operation) ?? { cases: 0, serverErrors: 0, mismatches: 0 };
      byOperation.set(operation, counts);
      counts.cases++;
      const interaction = rec.interactions?.[id];
      const status = interaction?.response?.status_code ?? 0;
      if (status >= 200 && status < 300) successes.set(operation, (successes.get(operation) ?? 0) + 1);
      const failed = (rec.checks?.[id] ?? []).filter((ch) => ch.status === "failure");
      if (failed.length === 0) continue;
      if (status >= 500 || failed.some((ch) => ch.name === "not_a_server_error")) counts.serverErrors++;
      else counts.mismatches++;
      for (const ch of failed) {
        const what = `${operation} ${ch.name} → ${status}: ${(ch.failure_info?.failure.message ?? "").split("\n").join(" | ")}`;
        if (!failures.has(what)) failures.set(what, interaction ? `${interaction.request.method} ${interaction.request.uri}` : "");
      }
    }
  }
  return { byOperation, failures, errors, successes };
}

function summary(label: string, run: RunResult, documented: Set<string>): string {
  const add = (t: OperationCounts, c: OperationCounts) => {
    t.cases += c.cases;
    t.serverErrors += c.serverErrors;
    t.mismatches += c.mismatches;
  };
  const total = { cases: 0, serverErrors: 0, mismatches: 0 };
  // Methods the document does not list on a path, which schemathesis probes (404 expected).
  const probes = { cases: 0, serverErrors: 0, mismatches: 0 };
  const lines: string[] = [];
  for (const [op, c] of [...run.byOperation].sort()) {
    add(total, c);
    if (!documented.has(op)) {
      add(probes, c);
      continue;
    }
    lines.push(`  ${op}: ${c.cases} cases, ${c.serverErrors} server errors, ${c.mismatches} mismatches, ${run.successes.get(op) ?? 0} 2xx`);
  }
  const tested = [...documented].filter((op) => run.byOperation.has(op)).length;
  lines.unshift(
    `schemathesis as ${label} (seed ${SEED}, ${SECONDS} s): ${tested} of ${documented.size} operations, ${total.cases} cases ` +
      `(${probes.cases} of them undocumented methods), ${total.serverErrors} server errors, ${total.mismatches} mismatches (exit ${run.exitCode})`,
  );
  for (const [what, example] of run.failures) lines.push(`  FAILURE ${what}\n      e.g. ${example}`);
  for (const e of run.errors) lines.push(`  ERROR ${e}`);
  return lines.join("\n");
}

describe("API fuzzing (schemathesis)", () => {
  for (const [label, pick] of [
    ["lab lead", (a: TestApi) => a.tokens.lab_lead],
    ["doctor", (a: TestApi) => a.tokens.doctor],
  ] as const) {
    it(`as ${label}: no server error, every answer as documented`, async () => {
      const run = await runSchemathesis(pick(api), label.replace(" ", "-"));
      const paths = (await api.call("GET", "/api/openapi.json")).json.paths as Record<string, object>;
      const documented = new Set(Object.entries(paths).flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`)));
      const text = summary(label, run, documented);
      console.log(text);
      // Every operation but logout was tested, and real ids made some of them succeed.
      const tested = [...documented].filter((op) => (run.byOperation.get(op)?.cases ?? 0) > 0);
      expect(tested.length, text).toBe(documented.size - 1);
      expect(run.errors, text).toEqual([]);
      expect([...run.failures.keys()], text).toEqual([]);
      expect(run.exitCode, text).toBe(0);
      const reached = label === "doctor" ? ["GET /api/tasks/{id}", "GET /api/tasks/{id}/image"] : ["GET /api/projects/{id}", "GET /api/images/{id}/mask"];
      for (const op of reached) expect(run.successes.get(op) ?? 0, `${op} never answered 2xx\n${text}`).toBeGreaterThan(0);
    });
  }
});
