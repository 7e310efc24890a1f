// `medloop status [CAMPAIGN]`: the campaigns of the system, or one campaign's rounds
// (phase, F1/AUC on the test images, tasks done) read from the database that the
// workflow's activities keep up to date.
import { getCampaign, listCampaigns, listRounds, type RoundWithModel } from "../../services/campaigns.js";
import { roundMetric } from "../../services/simulate/report.js";
import { connectTemporal, queryCampaignStatus, type CampaignStatusView } from "../../services/temporal.js";
import { guard, intOption, parse, UsageError } from "../args.js";
import { connect } from "../connect.js";

export const summary = "list the campaigns, or show one campaign's rounds, metrics and open tasks";

const usage = `usage: medloop status [CAMPAIGN_ID] [--data DIR] [--json]
  --data DIR   data folder of the running stack (default .data)
  --json       print JSON instead of a table`;

export async function run(argv: string[]): Promise<number> {
  return guard("status", usage, async () => {
    const { values, positionals } = parse(argv, { data: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } }, true);
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (positionals.length > 1) throw new UsageError("give at most one campaign id");
    const campaignId = positionals[0] === undefined ? undefined : intOption("CAMPAIGN_ID", positionals[0], 1);
    const services = await connect(values.data);
    try {
      if (campaignId === undefined) {
        const campaigns = await listCampaigns(services.pool);
        if (values.json) console.log(JSON.stringify(campaigns, null, 2));
        else if (campaigns.length === 0) console.log("no campaigns yet");
        else {
          console.log(table(["id", "project", "name", "state", "round", "k"],
            campaigns.map((c) => [c.id, c.project_id, c.name, c.state, c.round, c.k])));
        }
        return 0;
      }
      const campaign = await getCampaign(services.pool, campaignId);
      const rounds = await listRounds(services.pool, campaignId);
      const live = campaign.workflow_id && campaign.state === "running"
        ? await liveStatus(services.stack?.temporalAddress ?? services.config.temporalAddress, campaign.workflow_id)
        : null;
      if (values.json) {
        console.log(JSON.stringify({ campaign, rounds, live }, null, 2));
        return 0;
      }
      console.log(`campaign ${campaign.id} "${campaign.name}" (project ${campaign.project_id}): ${campaign.state}, round ${campaign.round}, k ${campaign.k}`);
      if (live) console.log(describeLive(live));
      console.log(rounds.length ? table(["round", "phase", "F1", "AUC", "tasks done", "model"], rounds.map(roundRow)) : "no rounds yet");
      return 0;
    } finally {
      await services.close();
    }
  });
}

/** The workflow's own view (phase, progress, training heartbeat), or an explanation. */
async function liveStatus(address: string, workflowId: string): Promise<CampaignStatusView | { error: string }> {
  try {
    const client = await connectTemporal(address);
    try {
      return await queryCampaignStatus(client, workflowId);
    } finally {
      await client.connection.close();
    }
  } catch (err) {
    return { error: `live status unavailable (${err instanceof Error ? err.message : String(err)})` };
  }
}

function describeLive(live: CampaignStatusView | { error: string }): string {
  if ("error" in live) return `  ${live.error}`;
  const lines = [`  now: ${live.phase}${live.paused ? " (paused)" : ""}, progress ${live.progress.done}/${live.progress.total}, ${live.openTasks.length} open task(s)`];
  for (const a of live.activities) {
    const beat = a.heartbeat && typeof a.heartbeat === "object" ? ` ${JSON.stringify(a.heartbeat)}` : "";
    lines.push(`  running: ${a.activityType} (attempt ${a.attempt})${beat}`);
  }
  return lines.join("\n");
}

function roundRow(r: RoundWithModel): Array<string | number> {
  const fmt = (v: number | null) => (v === null ? "-" : v.toFixed(3));
  return [r.round, r.phase, fmt(roundMetric(r.metrics, "f1")), fmt(roundMetric(r.metrics, "auc")), `${r.tasks.done}/${r.tasks.total}`, r.model_id ?? "-"];
}

function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}
