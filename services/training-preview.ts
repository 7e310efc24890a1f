// The running training's latest per-epoch preview: the Python `train_segmentation` activity
// heartbeats `{epoch, epochs, loss, val_dice, checkpoint_uri, preview_uri}`; the campaign's
// status (services/temporal.ts queryCampaignStatus) carries the pending activities with their
// last heartbeat. Only a `blob://` URI is served: a heartbeat names files, and a `file:///`
// one could point anywhere on the server.
import type { Pool } from "pg";
import type { BlobStore } from "./blobs.js";
import { campaignStatus, type CampaignWorkflows } from "./campaigns.js";
import { AppError } from "./errors.js";

export const TRAIN_ACTIVITY = "train_segmentation";

export interface TrainingPreview {
  epoch: number;
  epochs: number | null;
  uri: string;
}

interface PendingLike {
  activityType?: unknown;
  heartbeat?: unknown;
}

/** The pending training activity's preview, or a clear 404 when there is none. */
export function previewOfStatus(campaignId: number, status: unknown): TrainingPreview {
  const activities = (status as { activities?: unknown } | null)?.activities;
  const train = Array.isArray(activities)
    ? (activities as PendingLike[]).find((a) => a?.activityType === TRAIN_ACTIVITY)
    : undefined;
  if (!train) throw new AppError("not_found", `campaign ${campaignId} is not training`);
  const hb = train.heartbeat as { epoch?: unknown; epochs?: unknown; preview_uri?: unknown } | null;
  if (!hb || typeof hb.preview_uri !== "string" || typeof hb.epoch !== "number") {
    throw new AppError("not_found", `campaign ${campaignId}: the training has written no preview yet`);
  }
  if (!hb.preview_uri.startsWith("blob://")) {
    throw new AppError("not_found", `campaign ${campaignId}: the training's preview is not in the blob store`);
  }
  return { epoch: hb.epoch, epochs: typeof hb.epochs === "number" ? hb.epochs : null, uri: hb.preview_uri };
}

/** The preview's PNG bytes with its epoch; checkKey (via pathOf) refuses keys leaving the store. */
export async function loadTrainingPreview(
  deps: { pool: Pool; workflows: CampaignWorkflows; blobs: BlobStore },
  campaignId: number,
): Promise<TrainingPreview & { png: Buffer }> {
  const preview = previewOfStatus(campaignId, await campaignStatus(deps, campaignId));
  return { ...preview, png: await deps.blobs.get(preview.uri) };
}
