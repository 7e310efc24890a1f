// The model's steps of a campaign, shared by the rounds of workflows/campaign.ts and the
// continuous trainer of workflows/trainer.ts: augment and train from the labelled images,
// evaluate on the test images, predict the unlabelled pool. Images, masks and models travel
// by URI only; the gpu activities run on the Python worker (task queue `gpu`).
import { patched, proxyActivities } from "@temporalio/workflow";
import { store } from "./storeProxy.js";
import type { AugmentActivities } from "../activities/augment.js";
import {
  GPU_TASK_QUEUE,
  type CampaignConfig,
  type GpuActivities,
  type ImageRef,
  type LabelledImage,
  type PredictedItem,
  type RoundSummary,
  type TrainOutput,
} from "./types.js";

const augmenter = proxyActivities<AugmentActivities>({
  startToCloseTimeout: "1 hour",
  heartbeatTimeout: "5 minutes",
  retry: { initialInterval: "10 seconds", maximumAttempts: 5 },
});

/** The gpu activities: long start-to-close, a heartbeat timeout that notices a dead worker, few retries. */
export function gpuActivities(config: CampaignConfig, startToCloseMs: number): GpuActivities {
  return proxyActivities<GpuActivities>({
    taskQueue: GPU_TASK_QUEUE,
    startToCloseTimeout: startToCloseMs,
    heartbeatTimeout: config.heartbeatTimeoutMs,
    retry: { initialInterval: "30 seconds", backoffCoefficient: 2, maximumAttempts: 3 },
  });
}

/**
 * `{fov_uri}` for the images imported with a FOV mask, so the engine predicts, scores uncertainty
 * and evaluates inside it instead of a FOV derived from the image. Histories recorded before this
 * change replay without it (`patched`).
 */
export function fovOf(images: Array<{ imageId: string; fovUri?: string }>): (imageId: string) => { fov_uri?: string } {
  const use = patched("fov-in-gpu-items");
  const byId = new Map(images.filter((i) => i.fovUri).map((i) => [i.imageId, i.fovUri as string]));
  return (imageId) => {
    const uri = byId.get(imageId);
    return use && uri ? { fov_uri: uri } : {};
  };
}

export interface TrainedModel {
  trained: TrainOutput;
  modelId: string;
}

/**
 * Augments the labelled images, trains (fine-tuning `previousModelUri` when there is one) and
 * records the model as the campaign's model of `round`. `onTraining` runs between augmenting and
 * training (the rounds enter their `training` phase there).
 */
export async function trainModel(args: {
  campaignId: string;
  config: CampaignConfig;
  round: number;
  labelled: LabelledImage[];
  previousModelUri: string | null;
  onTraining?: () => Promise<void>;
}): Promise<TrainedModel> {
  const { campaignId, config, round, labelled } = args;
  const prefix = `blob://runs/${campaignId}/round-${round}/`;
  const dataset = await augmenter.augmentDataset({
    datasetKey: `datasets/${campaignId}/round-${round}`,
    items: labelled.map(({ imageId, imageUri, maskUri }) => ({ imageId, imageUri, maskUri })),
    pipeline: config.augmentation,
  });
  await args.onTraining?.();
  const valFov = fovOf(labelled);
  const trained = await gpuActivities(config, config.trainTimeoutMs).train_segmentation({
    run_id: `${campaignId}-r${round}`,
    train: dataset.examples,
    val: labelled.map((l) => ({ image_uri: l.imageUri, mask_uri: l.maskUri, ...valFov(l.imageId) })),
    config: config.train,
    ...(args.previousModelUri ? { init_model_uri: args.previousModelUri } : {}),
    out_prefix: `${prefix}model/`,
  });
  const { modelId } = await store.recordModel({
    campaignId,
    round,
    modelUri: trained.model_uri,
    onnxUri: trained.onnx_uri,
    metrics: trained.metrics,
    datasetUri: dataset.manifestUri,
  });
  return { trained, modelId };
}

/** The summary of a freshly trained and evaluated model: nothing selected or corrected yet. */
export function newRoundSummary(round: number, { trained, modelId }: TrainedModel, metrics: Record<string, number>): RoundSummary {
  return {
    round,
    modelUri: trained.model_uri,
    modelId,
    metrics,
    trainSeconds: trained.seconds ?? null,
    selected: [],
    corrected: 0,
    correctionActiveMs: 0,
    approved: false,
  };
}

/** Mean metrics of the model on the test images that have a reference mask (empty without any). */
export async function evaluate(
  config: CampaignConfig,
  test: ImageRef[],
  modelUri: string,
  outPrefix: string,
): Promise<Record<string, number>> {
  const withTruth = test.filter((t) => t.maskUri);
  if (withTruth.length === 0) return {};
  const gpu = gpuActivities(config, config.predictTimeoutMs);
  const fov = fovOf(withTruth);
  const predicted = await gpu.predict_masks({
    model_uri: modelUri,
    items: withTruth.map((t) => ({ image_id: t.imageId, image_uri: t.imageUri, ...fov(t.imageId) })),
    out_prefix: outPrefix,
    ...(config.threshold !== undefined ? { threshold: config.threshold } : {}),
    uncertainty: false,
  });
  const truth = new Map(withTruth.map((t) => [t.imageId, t.maskUri as string]));
  const evaluation = await gpu.evaluate_masks({
    items: predicted.items.map((p) => ({
      image_id: p.image_id,
      pred_uri: p.mask_uri,
      prob_uri: p.prob_uri,
      truth_uri: truth.get(p.image_id) as string,
      ...fov(p.image_id),
    })),
  });
  return evaluation.mean;
}

/**
 * Predicts the pool with uncertainty and stores each prediction as a version (the start of a
 * correction); returns the predictions and the stored version id per image.
 */
export async function predictPool(args: {
  campaignId: string;
  config: CampaignConfig;
  round: number;
  modelId: string;
  modelUri: string;
  pool: ImageRef[];
  outPrefix: string;
}): Promise<{ items: PredictedItem[]; versions: Record<string, string> }> {
  const { config, pool } = args;
  const fov = fovOf(pool);
  const predicted = await gpuActivities(config, config.predictTimeoutMs).predict_masks({
    model_uri: args.modelUri,
    items: pool.map((p) => ({ image_id: p.imageId, image_uri: p.imageUri, ...fov(p.imageId) })),
    out_prefix: args.outPrefix,
    ...(config.threshold !== undefined ? { threshold: config.threshold } : {}),
    uncertainty: true,
  });
  const { versions } = await store.recordPredictions({
    campaignId: args.campaignId,
    round: args.round,
    modelId: args.modelId,
    items: predicted.items.map((p) => ({
      imageId: p.image_id,
      maskUri: p.mask_uri,
      probUri: p.prob_uri,
      uncertainty: p.uncertainty,
    })),
  });
  return { items: predicted.items, versions };
}
