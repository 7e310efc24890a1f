// The store activities (activities/store.ts: the database side) as the campaign's workflows call
// them: short, retried with back-off until the database answers.
import { proxyActivities } from "@temporalio/workflow";
import type { StoreActivities } from "../activities/store.js";

export const store = proxyActivities<StoreActivities>({
  startToCloseTimeout: "1 minute",
  retry: { initialInterval: "2 seconds", maximumInterval: "5 minutes" },
});
