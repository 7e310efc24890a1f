// The workflow bundle of the TypeScript worker (task queue `medloop`).
export { campaign } from "./campaign.js";
export { annotationTask } from "./annotationTask.js";
export { campaignTrainer } from "./trainer.js";
