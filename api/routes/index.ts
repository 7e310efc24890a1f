import type { RouteDef } from "../route.js";
import { auditRoutes } from "./audit.js";
import { authRoutes } from "./auth.js";
import { campaignRoutes } from "./campaigns.js";
import { deploymentRoutes } from "./deployments.js";
import { healthRoutes } from "./health.js";
import { imageRoutes } from "./images.js";
import { modelRoutes } from "./models.js";
import { outboxRoutes } from "./outbox.js";
import { projectRoutes } from "./projects.js";
import { reportRoutes } from "./reports.js";
import { reviewRoutes } from "./reviews.js";
import { taskRoutes } from "./tasks.js";
import { userRoutes } from "./users.js";

/** Every route of the API; order matters only where paths overlap (/tasks/mine before /tasks/:id). */
export const allRoutes: RouteDef[] = [
  ...healthRoutes,
  ...authRoutes,
  ...userRoutes,
  ...projectRoutes,
  ...imageRoutes,
  ...taskRoutes,
  ...reviewRoutes,
  ...campaignRoutes,
  ...modelRoutes,
  ...deploymentRoutes,
  ...reportRoutes,
  ...auditRoutes,
  ...outboxRoutes,
];
