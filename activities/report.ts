// The `writeCampaignReport` activity: the campaign's summary at its end (per round:
// metrics, images corrected, doctors' active minutes) as JSON in the blob store, next
// to the models and datasets. The auditor's detailed reports come from services/reports.ts.
import type { BlobStore } from "../services/blobs.js";
import type { CampaignEnd, RoundSummary } from "../workflows/types.js";

export interface CampaignReportInput {
  campaignId: string;
  reason: CampaignEnd;
  rounds: RoundSummary[];
  seedActiveMs: number;
}

export interface CampaignReport {
  campaign_id: string;
  reason: CampaignEnd;
  seed_active_minutes: number;
  rounds: Array<{
    round: number;
    f1: number | null;
    auc: number | null;
    model_uri: string;
    approved: boolean;
    train_seconds: number | null;
    images_selected: number;
    images_corrected: number;
    correction_active_minutes: number;
  }>;
}

const minutes = (ms: number) => Math.round((ms / 60_000) * 100) / 100;

export function buildCampaignReport(input: CampaignReportInput): CampaignReport {
  return {
    campaign_id: input.campaignId,
    reason: input.reason,
    seed_active_minutes: minutes(input.seedActiveMs),
    rounds: input.rounds.map((r) => ({
      round: r.round,
      f1: r.metrics.f1 ?? null,
      auc: r.metrics.auc ?? null,
      model_uri: r.modelUri,
      approved: r.approved,
      train_seconds: r.trainSeconds,
      images_selected: r.selected.length,
      images_corrected: r.corrected,
      correction_active_minutes: minutes(r.correctionActiveMs),
    })),
  };
}

export function createReportActivities(blobs: BlobStore) {
  async function writeCampaignReport(input: CampaignReportInput): Promise<{ reportUri: string }> {
    const report = buildCampaignReport(input);
    const reportUri = await blobs.put(`reports/${input.campaignId}/campaign-summary.json`, Buffer.from(JSON.stringify(report, null, 1)));
    return { reportUri };
  }
  return { writeCampaignReport };
}

export type ReportActivities = ReturnType<typeof createReportActivities>;
