// The trainer of a continuous campaign, a child of the campaign workflow: whenever labelled
// images exist that the newest model has not seen, it fine-tunes from the newest model
// (the campaign's training budget per update), evaluates on the test images, predicts the
// unlabelled pool and signals the published model to the campaign. Labels that arrive during an
// update are coalesced into the next one. A gpu worker killed mid-update is Temporal's retry of
// the training activity, which resumes from its last checkpoint (ml/src/medloop_ml/worker.py);
// a stop of the campaign cancels this workflow (the activity in flight with it).
//
// It does not continue-as-new: an update adds about thirty history events, so the history stays
// under Temporal's limits for well over a thousand updates, and a continue-as-new could drop a
// label signalled in the same workflow task.
import { condition, getExternalWorkflowHandle, setHandler } from "@temporalio/workflow";
import { evaluate, newRoundSummary, predictPool, trainModel } from "./modelSteps.js";
import { store } from "./storeProxy.js";
import {
  labelsAddedSignal,
  modelPublishedSignal,
  trainerStatusQuery,
  type ImageRef,
  type LabelledImage,
  type ModelPublished,
  type TrainerInput,
  type TrainerStatus,
} from "./types.js";

export async function campaignTrainer(input: TrainerInput): Promise<void> {
  const labelled: LabelledImage[] = [...input.labelled];
  let pending: LabelledImage[] = [];
  let pool: ImageRef[] = input.pool;
  let previousModelUri = input.previousModelUri;
  const status: TrainerStatus = { training: false, pendingLabels: 0, nextVersion: input.nextVersion, trainedOn: 0 };
  setHandler(labelsAddedSignal, ({ labelled: added }) => {
    // A label repeated (a retried signal) is taken once.
    const known = new Set([...labelled, ...pending].map((l) => l.imageId));
    pending = [...pending, ...added.filter((l) => !known.has(l.imageId))];
    status.pendingLabels = pending.length;
  });
  setHandler(trainerStatusQuery, () => ({ ...status }));
  const campaign = getExternalWorkflowHandle(input.campaignWorkflowId);

  for (let first = true; ; first = false) {
    if (!first) await condition(() => pending.length > 0);
    labelled.push(...pending);
    const taken = new Set(labelled.map((l) => l.imageId));
    pool = pool.filter((p) => !taken.has(p.imageId));
    pending = [];
    status.pendingLabels = 0;
    status.training = true;
    const published = await publishModel(input, status.nextVersion, labelled, pool, previousModelUri);
    previousModelUri = published.summary.modelUri;
    status.training = false;
    status.trainedOn = published.trainedOn;
    status.nextVersion += 1;
    await campaign.signal(modelPublishedSignal, published);
  }
}

/** One update: train on everything labelled, evaluate, predict the pool; the model's summary is recorded. */
async function publishModel(
  input: TrainerInput,
  version: number,
  labelled: LabelledImage[],
  pool: ImageRef[],
  previousModelUri: string | null,
): Promise<ModelPublished> {
  const { campaignId, config } = input;
  const prefix = `blob://runs/${campaignId}/round-${version}/`;
  const { trained, modelId } = await trainModel({ campaignId, config, round: version, labelled: [...labelled], previousModelUri });
  // The test metrics, and how many labelled images this version learnt from (the learning curve's x).
  const metrics = { ...(await evaluate(config, input.test, trained.model_uri, `${prefix}test/`)), labelled_images: labelled.length };
  const summary = newRoundSummary(version, { trained, modelId }, metrics);
  await store.recordRound({ campaignId, summary });
  const predicted =
    pool.length > 0
      ? await predictPool({ campaignId, config, round: version, modelId, modelUri: trained.model_uri, pool, outPrefix: `${prefix}pool/` })
      : { items: [], versions: {} as Record<string, string> };
  return {
    summary,
    trainedOn: labelled.length,
    predictions: predicted.items.map((p) => ({
      imageId: p.image_id,
      uncertainty: p.uncertainty,
      embedding: p.embedding ?? null,
      maskUri: p.mask_uri,
      versionId: predicted.versions[p.image_id] as string,
    })),
  };
}
