import { z } from "zod";
import { createProject, getProject, listProjects } from "../../services/projects.js";
import { READERS, STAFF } from "../present.js";
import { defineRoute } from "../route.js";
import { idParam, projectSchema } from "../schemas.js";

export const projectRoutes = [
  defineRoute({
    method: "get",
    path: "/projects",
    operationId: "listProjects",
    summary: "List projects",
    tag: "projects",
    access: READERS,
    responses: { 200: { description: "projects", schema: z.array(projectSchema) } },
    async handler({ deps }) {
      return listProjects(deps.pool);
    },
  }),
  defineRoute({
    method: "post",
    path: "/projects",
    operationId: "createProject",
    summary: "Create a project",
    tag: "projects",
    access: STAFF,
    status: 201,
    body: {
      kind: "json",
      schema: z.object({ name: z.string().min(1).max(200), description: z.string().max(2000).optional() }).meta({ id: "NewProject" }),
    },
    responses: { 201: { description: "created", schema: projectSchema }, 409: { description: "a project of this name exists" } },
    async handler({ deps, body, user }) {
      return createProject(deps.pool, body as { name: string; description?: string }, user!.id);
    },
  }),
  defineRoute({
    method: "get",
    path: "/projects/:id",
    operationId: "getProject",
    summary: "One project",
    tag: "projects",
    access: READERS,
    params: idParam,
    responses: { 200: { description: "the project", schema: projectSchema } },
    async handler({ deps, params }) {
      return getProject(deps.pool, params.id);
    },
  }),
];
