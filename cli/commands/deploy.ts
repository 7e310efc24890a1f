// `medloop deploy …`: approve and deploy a model, list deployments, print a model card, and
// manage a deployment's API keys (a key is printed once, when it is created).
import type { Pool } from "../../db/pool.js";
import { approveCampaignRound, campaignFinished, getCampaign, type CampaignWorkflows } from "../../services/campaigns.js";
import { getModel } from "../../services/models.js";
import { campaignWorkflows, connectTemporal } from "../../services/temporal.js";
import { findUserByEmail } from "../../services/users.js";
import {
  createApiKey,
  deployModel,
  getDeploymentVersion,
  listApiKeys,
  listDeploymentVersions,
  revokeApiKey,
  type DeploymentVersion,
} from "../../serving/registry.js";
import { guard, intOption, parse, UsageError } from "../args.js";
import { connect, type Services } from "../connect.js";

export const summary = "approve and deploy a model as a versioned API; list deployments, model cards, API keys";

const usage = `usage: medloop deploy --model ID [--name NAME] [--by EMAIL] [--key LABEL]
       medloop deploy list [--name NAME]
       medloop deploy card NAME [--version V] [--json]
       medloop deploy key create NAME [--label LABEL]
       medloop deploy key list NAME
       medloop deploy key revoke NAME KEY_ID
  --model ID     the model to approve and deploy (the next version of its deployment)
  --name NAME    deployment name (default: the campaign's name)
  --by EMAIL     the approving user (recorded in the model card and the audit log)
  --key LABEL    also create an API key with this label and print it (shown once)
  --data DIR     data folder of the running stack (default .data)`;

async function userId(pool: Pool, email: string | undefined): Promise<number | null> {
  if (!email) return null;
  const user = await findUserByEmail(pool, email.toLowerCase());
  if (!user) throw new UsageError(`no user with e-mail ${email}`);
  return user.id;
}

export async function run(argv: string[]): Promise<number> {
  return guard("deploy", usage, async () => {
    const { values, positionals } = parse(
      argv,
      {
        model: { type: "string" },
        name: { type: "string" },
        by: { type: "string" },
        key: { type: "string" },
        label: { type: "string" },
        version: { type: "string" },
        json: { type: "boolean" },
        data: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      true,
    );
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const [sub, ...rest] = positionals;
    if (sub === undefined && values.model === undefined) throw new UsageError("--model or a subcommand is required");
    const services = await connect(values.data);
    try {
      const db = services.pool;
      if (sub === undefined) {
        const modelId = intOption("model", values.model, 0);
        const by = await userId(db, values.by);
        const dv = await approveAndDeploy(services, modelId, by, values.name);
        console.log(`deployed model ${modelId} as ${dv.name} v${dv.version} (${dv.artifact_uri})`);
        if (values.key !== undefined) {
          const key = await createApiKey(db, dv.name, { label: values.key, createdBy: by });
          console.log(`API key ${key.id} (${key.label || "no label"}), shown once: ${key.key}`);
        }
        return 0;
      }
      if (sub === "list") {
        const rows = await listDeploymentVersions(db, values.name);
        for (const v of rows) {
          console.log(`${v.name}\tv${v.version}\t${v.status}\tmodel ${v.model_id}\t${v.deployed_at.toISOString()}`);
        }
        if (rows.length === 0) console.log("no deployments");
        return 0;
      }
      if (sub === "card") {
        const name = rest[0];
        if (!name) throw new UsageError("deploy card needs a deployment NAME");
        const version = values.version === undefined ? undefined : intOption("version", values.version, 1);
        const dv = await getDeploymentVersion(db, name, version);
        console.log(values.json ? JSON.stringify(dv.card, null, 2) : dv.card_markdown);
        return 0;
      }
      if (sub === "key") return await keyCommand(db, rest, values.label);
      throw new UsageError(`unknown subcommand "${sub}"`);
    } finally {
      await services.close();
    }
  });
}

/**
 * Approves and deploys a model as the API does (api/routes/models.ts): a model of a campaign whose
 * workflow still runs is approved through the workflow's Update (it may be waiting for it), over
 * the stack's Temporal; a finished campaign's model (the final round's, typically) and a model
 * without a campaign are deployed from the database.
 */
async function approveAndDeploy(services: Services, modelId: number, by: number | null, name?: string): Promise<DeploymentVersion> {
  const deploy = (id: number) => deployModel(services, id, by, name ? { name } : {});
  const model = await getModel(services.pool, modelId);
  const round = model.round;
  if (model.approved || model.campaign_id === null || round === null) return deploy(model.id);
  const campaign = await getCampaign(services.pool, model.campaign_id);
  if (!campaign.workflow_id && !campaignFinished(campaign)) return deploy(model.id);
  const approve = async (workflows: CampaignWorkflows | null) =>
    (await approveCampaignRound({ pool: services.pool, workflows }, campaign.id, round, { id: by }, deploy)).deployment;
  if (campaignFinished(campaign)) return approve(null);
  const client = await connectTemporal(services.stack?.temporalAddress ?? services.config.temporalAddress);
  try {
    return await approve(campaignWorkflows(client));
  } finally {
    await client.connection.close();
  }
}

async function keyCommand(db: Pool, args: string[], label: string | undefined): Promise<number> {
  const [action, name, id] = args;
  if (!name) throw new UsageError("deploy key needs an action and a deployment NAME");
  if (action === "create") {
    const key = await createApiKey(db, name, { label: label ?? "" });
    console.log(`API key ${key.id} for ${name} (${key.label || "no label"}), shown once: ${key.key}`);
    return 0;
  }
  if (action === "list") {
    for (const k of await listApiKeys(db, name)) {
      const state = k.revoked_at ? `revoked ${k.revoked_at.toISOString()}` : "active";
      console.log(`${k.id}\tmlk_${k.prefix}_…\t${k.label || "-"}\t${state}`);
    }
    return 0;
  }
  if (action === "revoke") {
    await revokeApiKey(db, name, intOption("key id", id, 1));
    console.log(`revoked key ${id} of ${name}`);
    return 0;
  }
  throw new UsageError(`unknown key action "${action}" (create, list, revoke)`);
}
