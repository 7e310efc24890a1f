// Stop and resume racing, many times at once, against the real parts: the Temporal dev server
// (the `temporal` CLI), the TypeScript worker with its real activities over this test's
// database, PostgreSQL and the HTTP API. Each campaign is started, then stopped while another
// control (pause or resume) is sent at the same moment, then resumed right after the stop was
// answered; all campaigns run concurrently on a pool of five connections shared by the API and
// the worker (the load under which a campaign once stayed `running` after its workflow ended).
// Each time: the late resume is refused, the workflow ends `stopped`, the row says `stopped`
// with the phase `stopped` and carries the stop's audit row, and every control afterwards is a
// 409 naming the state. Every tenth campaign is instead cancelled through Temporal itself (as
// `temporal workflow cancel` does), which must end it `stopped` too. The rows are checked again
// once the worker has drained every activity still in flight (a cancelled activity may still run
// after its workflow closed).
import type { TestWorkflowEnvironment } from "@temporalio/testing";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importImage } from "../../services/images.js";
import { createProject } from "../../services/projects.js";
import type { CampaignResult } from "../../workflows/types.js";
import type { TestApi } from "../helpers/api.js";
import { startTemporalTestApi, type TemporalTestApi } from "../helpers/temporalApi.js";
import { makeImagePng, makeMaskPng } from "../helpers/images.js";

Runtime.install({ logger: new DefaultLogger("WARN") });

/** Campaigns raced, all at once. */
const ITERATIONS = Number(process.env.MEDLOOP_RACE_ITERATIONS ?? 40);
/** Every tenth campaign is cancelled through Temporal instead of stopped through the API. */
const cancelled = (i: number) => i % 10 === 9;

describe("stop and resume racing on the real stack", () => {
  let stack: TemporalTestApi;
  let env: TestWorkflowEnvironment;
  let api: TestApi;
  let projectId: number;

  beforeAll(async () => {
    stack = await startTemporalTestApi("race-secret");
    ({ env, api } = stack);
    projectId = (await createProject(api.db.pool, { name: "race" }, null)).id;
    for (const [name, role] of [["s1", "seed"], ["s2", "seed"], ["p1", "pool"], ["t1", "test"]] as const) {
      await importImage(api.deps, {
        projectId,
        name,
        role,
        data: await makeImagePng(40, 32),
        mask: await makeMaskPng(40, 32, (x) => x < 6),
        actorId: null,
      });
    }
  });
  afterAll(async () => {
    await stack?.close();
  });

  const lead = () => api.tokens.lab_lead;
  const post = (id: number, action: string, json: unknown = {}) => api.call("POST", `/api/campaigns/${id}/${action}`, { token: lead(), json });

  /**
   * One campaign's race. Returns what went wrong, one line each, rather than failing at the
   * first: every campaign runs to its end either way, and the test reports them all at once.
   */
  async function race(i: number): Promise<{ i: number; id: number; problems: string[] }> {
    const problems: string[] = [];
    const started = await api.call("POST", "/api/campaigns", {
      token: lead(),
      json: { project_id: projectId, name: `race ${i}`, config: { k: 1, maxRounds: 2 } },
    });
    if (started.status !== 201) throw new Error(`campaign ${i} did not start: ${JSON.stringify(started.json)}`);
    const id = started.json.id as number;
    const workflowId = started.json.workflow_id as string;
    const problem = (what: string, res: { status: number; json: unknown }) =>
      problems.push(`campaign ${id}: ${what} answered ${res.status} ${JSON.stringify(res.json).slice(0, 200)}`);
    // Stops land at different points of the seeding: loading the images, recording `running`,
    // creating and mailing the seed tasks.
    await new Promise((r) => setTimeout(r, (i % 6) * 40));
    const other = i % 2 === 0 ? "resume" : "pause";
    if (cancelled(i)) {
      // Cancelled past the API (as `temporal workflow cancel` does): taken as a stop.
      const [, concurrent] = await Promise.all([env.client.workflow.getHandle(workflowId).cancel(), post(id, other)]);
      if (![200, 409].includes(concurrent.status)) problem(`${other} sent with the cancellation`, concurrent);
    } else {
      const [stop, concurrent] = await Promise.all([post(id, "stop", { reason: `race ${i}` }), post(id, other)]);
      if (stop.status !== 200) problem("stop", stop);
      // Sent at the same moment as the stop, the other control may go either side of it.
      if (![200, 409].includes(concurrent.status)) problem(`${other} sent with the stop`, concurrent);
      const late = await post(id, "resume");
      if (late.status !== 409 || !/stop/.test(late.json?.error?.message)) problem("resume right after the stop", late);
    }

    const result = await (env.client.workflow.getHandle(workflowId).result() as Promise<CampaignResult>).catch((e: Error) => e);
    if (result instanceof Error) problems.push(`campaign ${id}: the workflow ended with ${result.message}`);
    else if (result.reason !== "stopped") problems.push(`campaign ${id}: the workflow ended with ${result.reason}`);
    const row = (await api.call("GET", `/api/campaigns/${id}`, { token: lead() })).json;
    if (row.state !== "stopped" || row.phase !== "stopped") {
      problems.push(`campaign ${id}: the row reads ${row.state}/${row.phase} after the workflow stopped`);
    }
    for (const [method, url, json] of [
      ["POST", `/api/campaigns/${id}/pause`, {}],
      ["POST", `/api/campaigns/${id}/resume`, {}],
      ["POST", `/api/campaigns/${id}/stop`, {}],
      ["PATCH", `/api/campaigns/${id}`, { k: 3 }],
    ] as const) {
      const res = await api.call(method, url, { token: lead(), json });
      if (res.status !== 409 || !/stopped/.test(res.json?.error?.message)) problem(`${method} ${url} after the stop`, res);
    }
    return { i, id, problems };
  }

  it(`refuses a resume sent right after a stop and leaves every row stopped (${ITERATIONS} campaigns at once)`, async () => {
    const campaigns = (await Promise.all(Array.from({ length: ITERATIONS }, (_, i) => race(i)))).sort((a, b) => a.id - b.id);

    // Drain the worker: an activity cancelled by the stop may still be running; whatever it
    // writes must not move a row out of `stopped`.
    await stack.drainWorker();
    const { rows } = await api.db.pool.query<{ id: number; state: string; phase: string }>(
      "SELECT id, state, phase FROM campaigns WHERE project_id = $1 ORDER BY id",
      [projectId],
    );
    expect(campaigns.flatMap((c) => c.problems)).toEqual([]);
    expect(rows).toEqual(campaigns.map(({ id }) => ({ id, state: "stopped", phase: "stopped" })));
    const audited = await api.db.pool.query<{ entity_id: string; n: number }>(
      "SELECT entity_id, count(*)::int AS n FROM audit_log WHERE action = 'campaign.stop' GROUP BY entity_id ORDER BY entity_id::int",
    );
    expect(audited.rows).toEqual(campaigns.filter((c) => !cancelled(c.i)).map(({ id }) => ({ entity_id: String(id), n: 1 })));
  });
});
