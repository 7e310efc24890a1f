// The model card of a deployment: what the model was trained on (by round), how it is configured,
// how well it did, and what it is for. Gathered from the database at deploy time and frozen with
// the version as JSON and as Markdown.
import type { Queryable } from "../db/pool.js";
import type { Model } from "../services/models.js";
import type { ModelMeta } from "./model.js";

export interface RoundData {
  round: number;
  manual_images: number;
  corrected_images: number;
  annotation_minutes: number;
  metrics: Record<string, unknown>;
}

export interface ModelCard {
  schema: "medloop.model-card/1";
  deployment: { name: string; version: number; deployed_at: string; deployed_by: string | null };
  model: {
    id: number;
    run_id: string | null;
    source_uri: string;
    onnx_sha256: string;
    campaign: { id: number; name: string; project: string } | null;
    round: number | null;
    approved_by: string | null;
    approved_at: string | null;
  };
  training_data: { dataset_uri: string | null; rounds: RoundData[]; total_images: number };
  configuration: {
    campaign: Record<string, unknown>;
    inference: { patch_size: number | [number, number]; overlap: number; threshold: number; blend: string; sigma_scale: number };
  };
  metrics: Record<string, unknown>;
  interface: { input: string; output: string; protocol: string };
  intended_use: { use: string; users: string; out_of_scope: string[]; limitations: string[] };
}

const INTENDED_USE: ModelCard["intended_use"] = {
  use:
    "Segmentation of retinal blood vessels in colour fundus photographs (CHASE_DB1-like, about 1000×960 pixels): " +
    "a per-pixel vessel probability and a thresholded mask, as a pre-annotation for a clinician to correct or as " +
    "an input to vessel measurements in research.",
  users: "Research groups and annotation pipelines; results are reviewed by a trained reader.",
  out_of_scope: [
    "Diagnosis or treatment decisions without review by a clinician (this is not a certified medical device)",
    "Other imaging modalities (OCT, angiography) or non-retinal images",
  ],
  limitations: [
    "Trained on few images from one dataset and camera; accuracy on other cameras, resolutions and populations is unmeasured",
    "Thin capillaries and vessels at the edge of the field of view are the most often missed",
  ],
};

async function userLabel(db: Queryable, id: number | null): Promise<string | null> {
  if (id === null) return null;
  const { rows } = await db.query<{ name: string; email: string }>("SELECT name, email FROM users WHERE id = $1", [id]);
  return rows[0] ? `${rows[0].name} <${rows[0].email}>` : `user ${id}`;
}

/** Human annotations per round up to the model's round, with the round's recorded metrics. */
async function roundsOf(db: Queryable, model: Model): Promise<RoundData[]> {
  if (model.campaign_id === null) return [];
  const { rows } = await db.query<{ round: number; manual: number; corrected: number; ms: number }>(
    `SELECT round,
            count(DISTINCT image_id) FILTER (WHERE kind = 'manual')::int AS manual,
            count(DISTINCT image_id) FILTER (WHERE kind = 'correction')::int AS corrected,
            coalesce(sum(active_ms), 0)::bigint AS ms
       FROM annotation_versions
      WHERE campaign_id = $1 AND kind IN ('manual', 'correction') AND round IS NOT NULL AND ($2::int IS NULL OR round <= $2)
      GROUP BY round ORDER BY round`,
    [model.campaign_id, model.round],
  );
  const metrics = await db.query<{ round: number; metrics: Record<string, unknown> }>(
    "SELECT round, metrics FROM rounds WHERE campaign_id = $1 ORDER BY round",
    [model.campaign_id],
  );
  const byRound = new Map(metrics.rows.map((r) => [r.round, r.metrics]));
  return rows.map((r) => ({
    round: r.round,
    manual_images: r.manual,
    corrected_images: r.corrected,
    annotation_minutes: Math.round((r.ms / 60000) * 10) / 10,
    metrics: byRound.get(r.round) ?? {},
  }));
}

export async function buildModelCard(
  db: Queryable,
  input: { name: string; version: number; model: Model; meta: ModelMeta; onnxSha256: string; deployedBy: number | null },
): Promise<ModelCard> {
  const { model, meta } = input;
  const campaign = model.campaign_id === null
    ? null
    : (
        await db.query<{ id: number; name: string; project: string; config: Record<string, unknown> }>(
          `SELECT c.id, c.name, p.name AS project, c.config FROM campaigns c JOIN projects p ON p.id = c.project_id WHERE c.id = $1`,
          [model.campaign_id],
        )
      ).rows[0] ?? null;
  const rounds = await roundsOf(db, model);
  return {
    schema: "medloop.model-card/1",
    deployment: {
      name: input.name,
      version: input.version,
      deployed_at: new Date().toISOString(),
      deployed_by: await userLabel(db, input.deployedBy),
    },
    model: {
      id: model.id,
      run_id: model.run_id,
      source_uri: model.uri,
      onnx_sha256: input.onnxSha256,
      campaign: campaign && { id: campaign.id, name: campaign.name, project: campaign.project },
      round: model.round,
      approved_by: await userLabel(db, model.approved_by),
      approved_at: model.approved_at ? new Date(model.approved_at).toISOString() : null,
    },
    training_data: {
      dataset_uri: model.dataset_uri,
      rounds,
      total_images: rounds.reduce((n, r) => n + r.manual_images + r.corrected_images, 0),
    },
    configuration: {
      campaign: campaign?.config ?? {},
      inference: {
        patch_size: meta.patch_size,
        overlap: meta.overlap,
        threshold: meta.threshold,
        blend: meta.blend,
        sigma_scale: meta.sigma_scale,
      },
    },
    metrics: { ...meta.metrics, ...model.metrics },
    interface: {
      input: `${meta.input}: FP32 N×3×H×W, RGB scaled to [0, 1], any H and W (sliding window)`,
      output: `${meta.output}: FP32 N×1×H×W vessel probability; mask = probability >= ${meta.threshold}`,
      protocol: "KServe V2 Open Inference Protocol (REST, JSON tensors); POST /v1/models/{name}/segment for image files",
    },
    intended_use: INTENDED_USE,
  };
}

function cell(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(4);
  return typeof v === "string" ? v : JSON.stringify(v);
}

export function modelCardMarkdown(card: ModelCard): string {
  const d = card.deployment;
  const m = card.model;
  const lines = [
    `# Model card: ${d.name} v${d.version}`,
    "",
    `Deployed ${d.deployed_at}${d.deployed_by ? ` by ${d.deployed_by}` : ""}.`,
    "",
    "## Model",
    "",
    `- model id ${m.id}${m.run_id ? `, training run ${m.run_id}` : ""}`,
    m.campaign ? `- campaign "${m.campaign.name}" (project ${m.campaign.project}), round ${m.round ?? "-"}` : "- not from a campaign",
    `- approved ${m.approved_at ?? "-"}${m.approved_by ? ` by ${m.approved_by}` : ""}`,
    `- ONNX sha256 \`${m.onnx_sha256}\``,
    "",
    "## Intended use",
    "",
    card.intended_use.use,
    "",
    `Users: ${card.intended_use.users}`,
    "",
    "Out of scope:",
    ...card.intended_use.out_of_scope.map((s) => `- ${s}`),
    "",
    "Limitations:",
    ...card.intended_use.limitations.map((s) => `- ${s}`),
    "",
    "## Training data by round",
    "",
  ];
  if (card.training_data.rounds.length === 0) lines.push("No annotation rounds recorded for this model.");
  else {
    lines.push("| round | drawn by hand | corrected | annotation minutes |", "|---:|---:|---:|---:|");
    for (const r of card.training_data.rounds) {
      lines.push(`| ${r.round} | ${r.manual_images} | ${r.corrected_images} | ${r.annotation_minutes} |`);
    }
    lines.push("", `${card.training_data.total_images} human-annotated images in all.`);
  }
  if (card.training_data.dataset_uri) lines.push("", `Training set: \`${card.training_data.dataset_uri}\``);
  const inf = card.configuration.inference;
  lines.push(
    "",
    "## Configuration",
    "",
    `- sliding window ${cell(inf.patch_size)} pixels, overlap ${inf.overlap}, ${inf.blend} blending (sigma ${inf.sigma_scale} × window)`,
    `- threshold ${inf.threshold}`,
  );
  for (const [k, v] of Object.entries(card.configuration.campaign)) lines.push(`- ${k}: ${cell(v)}`);
  lines.push("", "## Metrics", "");
  const metrics = Object.entries(card.metrics);
  if (metrics.length === 0) lines.push("No metrics recorded.");
  else lines.push("| metric | value |", "|---|---:|", ...metrics.map(([k, v]) => `| ${k} | ${cell(v)} |`));
  lines.push("", "## Interface", "", `- ${card.interface.input}`, `- ${card.interface.output}`, `- ${card.interface.protocol}`, "");
  return lines.join("\n");
}
