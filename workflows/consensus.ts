// Several annotators per image (issue 14): where a campaign had more than one doctor annotate or
// correct an image, their masks become one training mask by STAPLE or majority vote (the gpu
// activity `consensus_masks`, ml/src/medloop_ml/consensus.py), stored as a `consensus` version
// with each annotator's sensitivity and specificity. An image with one annotator keeps that
// doctor's mask, and a campaign without several annotators runs no activity here at all, so the
// histories recorded before this module replay unchanged.
import { proxyActivities } from "@temporalio/workflow";
import { store } from "./storeProxy.js";
import {
  GPU_TASK_QUEUE,
  type AnnotationTaskResult,
  type CampaignConfig,
  type GpuConsensusActivities,
  type ImageRef,
  type LabelledImage,
} from "./types.js";

function consensusActivities(config: CampaignConfig): GpuConsensusActivities {
  return proxyActivities<GpuConsensusActivities>({
    taskQueue: GPU_TASK_QUEUE,
    startToCloseTimeout: config.predictTimeoutMs,
    heartbeatTimeout: config.heartbeatTimeoutMs,
    retry: { initialInterval: "30 seconds", backoffCoefficient: 2, maximumAttempts: 3 },
  });
}

export interface AnsweredTask {
  image: ImageRef;
  result: AnnotationTaskResult;
}

/**
 * One labelled image per distinct image of `answers`, in their first-seen order: the doctor's mask
 * where one doctor answered, the consensus version where several did.
 */
export async function labelsWithConsensus(args: {
  campaignId: string;
  config: CampaignConfig;
  round: number;
  answers: AnsweredTask[];
}): Promise<LabelledImage[]> {
  const byImage = new Map<string, AnsweredTask[]>();
  for (const a of args.answers) byImage.set(a.image.imageId, [...(byImage.get(a.image.imageId) ?? []), a]);
  const several = [...byImage.values()].filter((group) => group.length > 1);
  const consensus = new Map<string, { maskUri: string; versionId: string }>();
  if (several.length > 0) {
    const method = args.config.consensus ?? "staple";
    const { items } = await consensusActivities(args.config).consensus_masks({
      items: several.map((group) => ({ image_id: group[0]!.image.imageId, mask_uris: group.map((a) => a.result.maskUri) })),
      method,
      out_prefix: `blob://runs/${args.campaignId}/round-${args.round}/consensus/`,
    });
    for (const item of items) {
      const group = byImage.get(item.image_id)!;
      const { versionId } = await store.recordConsensus({
        campaignId: args.campaignId,
        round: args.round,
        imageId: item.image_id,
        method: item.method,
        maskUri: item.mask_uri,
        probUri: item.prob_uri,
        sources: group.map((a, i) => ({ versionId: a.result.versionId, ...item.annotators[i]! })),
      });
      consensus.set(item.image_id, { maskUri: item.mask_uri, versionId });
    }
  }
  return [...byImage.values()].map((group) => {
    const { image, result } = group[0]!;
    const made = consensus.get(image.imageId);
    return {
      imageId: image.imageId,
      imageUri: image.imageUri,
      maskUri: made?.maskUri ?? result.maskUri,
      versionId: made?.versionId ?? result.versionId,
      ...(image.fovUri ? { fovUri: image.fovUri } : {}),
    };
  });
}
