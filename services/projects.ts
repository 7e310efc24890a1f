// Projects: a named set of images that campaigns run on.
import type { Queryable } from "../db/pool.js";
import { appendAudit } from "./audit.js";
import { badRequest, conflict, notFound, uniqueViolation } from "./errors.js";

export interface Project {
  id: number;
  name: string;
  description: string;
  created_by: number | null;
  created_at: Date;
  image_count: number;
}

const SELECT = `SELECT p.id, p.name, p.description, p.created_by, p.created_at,
  (SELECT count(*) FROM images i WHERE i.project_id = p.id)::int AS image_count FROM projects p`;

export async function createProject(
  db: Queryable,
  input: { name: string; description?: string },
  actorId: number | null,
): Promise<Project> {
  const name = input.name.trim();
  if (!name) throw badRequest("project name must not be empty");
  try {
    const { rows } = await db.query<{ id: number }>(
      "INSERT INTO projects (name, description, created_by) VALUES ($1, $2, $3) RETURNING id",
      [name, input.description ?? "", actorId],
    );
    const id = rows[0]!.id;
    await appendAudit(db, { actorId, action: "project.create", entity: "project", entityId: id, details: { name } });
    return getProject(db, id);
  } catch (err) {
    if (uniqueViolation(err)) throw conflict(`a project named "${name}" already exists`);
    throw err;
  }
}

export async function getProject(db: Queryable, id: number): Promise<Project> {
  const { rows } = await db.query<Project>(`${SELECT} WHERE p.id = $1`, [id]);
  if (!rows[0]) throw notFound("project", id);
  return rows[0];
}

export async function findProjectByName(db: Queryable, name: string): Promise<Project | null> {
  const { rows } = await db.query<Project>(`${SELECT} WHERE p.name = $1`, [name]);
  return rows[0] ?? null;
}

export async function listProjects(db: Queryable): Promise<Project[]> {
  const { rows } = await db.query<Project>(`${SELECT} ORDER BY p.id`);
  return rows;
}
