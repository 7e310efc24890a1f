// Deployments: approving a model freezes its ONNX export and model card as the next version of a
// named deployment; API keys open a deployment. `registryProvider` serves what is deployed.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { withTransaction, type Pool, type PoolClient, type Queryable } from "../db/pool.js";
import { appendAudit } from "../services/audit.js";
import { joinUri, type BlobStore } from "../services/blobs.js";
import { AppError, badRequest, notFound, uniqueViolation } from "../services/errors.js";
import { approveModel, modelFolderUri, type Model } from "../services/models.js";
import { keyMatches, keyPrefix, newApiKey } from "./keys.js";
import { buildModelCard, modelCardMarkdown, type ModelCard } from "./modelCard.js";
import { loadModel, modelMetaSchema, type LoadedModel, type ModelMeta } from "./model.js";
import type { ModelProvider, ServedModel } from "./server.js";

export const DEPLOYMENT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface DeploymentVersion {
  id: number;
  name: string;
  version: number;
  model_id: number;
  /** The frozen files' folder URI, `blob://deployments/<name>/v<version>/` (older rows lack the "/"). */
  artifact_uri: string;
  onnx_sha256: string;
  model_meta: ModelMeta;
  card: ModelCard;
  card_markdown: string;
  status: "active" | "retired";
  deployed_by: number | null;
  deployed_at: Date;
}

const VERSION_SELECT = `SELECT v.id, d.name, v.version, v.model_id, v.artifact_uri, v.onnx_sha256, v.model_meta, v.card,
  v.card_markdown, v.status, v.deployed_by, v.deployed_at FROM deployment_versions v JOIN deployments d ON d.id = v.deployment_id`;

export interface RegistryDeps {
  pool: Pool;
  blobs: BlobStore;
}

/** A deployment name from free text: lower case, runs of other characters become "-". */
export function slugName(text: string): string {
  const slug = text.toLowerCase().replace(/[^a-z0-9._]+/g, "-").replace(/^[-._]+|[-._]+$/g, "").slice(0, 63);
  return DEPLOYMENT_NAME.test(slug) ? slug : "";
}

async function defaultName(db: Queryable, model: Model): Promise<string> {
  if (model.campaign_id !== null) {
    const { rows } = await db.query<{ name: string }>("SELECT name FROM campaigns WHERE id = $1", [model.campaign_id]);
    const slug = rows[0] ? slugName(rows[0].name) : "";
    if (slug) return slug;
  }
  return `model-${model.id}`;
}

/**
 * The run folder's model.json and model.onnx (the row's onnx_uri when set), read before anything
 * is written. URIs are resolved as docs/architecture.md "Blob URIs" says: the campaign records
 * `blob://runs/<id>/round-<r>/model/`, older rows and tests the same folder without the "/".
 */
async function modelFiles(blobs: BlobStore, model: Model): Promise<{ meta: ModelMeta; metaText: string; onnx: Buffer }> {
  const folder = await modelFolderUri(blobs, model.uri);
  const onnxUri = model.onnx_uri ?? joinUri(folder, "model.onnx");
  const metaUri = joinUri(folder, "model.json");
  const onnx = await readFile(blobs.pathOf(onnxUri)).catch(() => {
    throw badRequest(`model ${model.id} has no ONNX export (${onnxUri})`);
  });
  const metaText = await readFile(blobs.pathOf(metaUri), "utf8").catch(() => {
    throw badRequest(`model ${model.id} has no model.json (${metaUri})`);
  });
  let raw: unknown;
  try {
    raw = JSON.parse(metaText);
  } catch {
    throw badRequest(`model ${model.id}: model.json is not valid JSON`);
  }
  const parsed = modelMetaSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badRequest(`model ${model.id}: model.json ${issue.path.join(".")}: ${issue.message}`);
  }
  return { meta: parsed.data, metaText, onnx };
}

export interface DeployOptions {
  /** Deployment name (default: the campaign's name as a slug, else model-<id>). */
  name?: string;
}

/**
 * Approves a model and deploys it as the next version of its deployment, with a frozen copy of
 * model.onnx/model.json and the model card under `deployments/<name>/v<version>/`. Idempotent: a
 * model already deployed gives back its version. The rows change together or not at all.
 */
export async function deployModel(
  deps: RegistryDeps,
  modelId: number,
  approvedBy: number | null,
  opts: DeployOptions = {},
): Promise<DeploymentVersion> {
  if (opts.name !== undefined && !DEPLOYMENT_NAME.test(opts.name)) {
    throw badRequest(`deployment name "${opts.name}" must be 1-63 of a-z 0-9 . _ - starting with a letter or digit`);
  }
  const written: string[] = [];
  try {
    return await withTransaction(deps.pool, async (db) => {
      const existing = await db.query<DeploymentVersion>(`${VERSION_SELECT} WHERE v.model_id = $1`, [modelId]);
      if (existing.rows[0]) return existing.rows[0];
      const model = await approveModel(db, modelId, approvedBy);
      const files = await modelFiles(deps.blobs, model);
      const name = opts.name ?? (await defaultName(db, model));
      const deploymentId = await lockDeployment(db, name);
      const { rows } = await db.query<{ next: number }>(
        "SELECT coalesce(max(version), 0) + 1 AS next FROM deployment_versions WHERE deployment_id = $1",
        [deploymentId],
      );
      const version = rows[0]!.next;
      const onnxSha256 = createHash("sha256").update(files.onnx).digest("hex");
      const card = await buildModelCard(db, { name, version, model, meta: files.meta, onnxSha256, deployedBy: approvedBy });
      const markdown = modelCardMarkdown(card);
      const folder = joinUri(`blob://deployments/${name}/v${version}`);
      for (const [file, data] of [
        ["model.onnx", files.onnx],
        ["model.json", files.metaText],
        ["model_card.json", JSON.stringify(card, null, 2)],
        ["model_card.md", markdown],
      ] as const) {
        written.push(await deps.blobs.put(joinUri(folder, file), Buffer.from(data)));
      }
      const inserted = await db.query<{ id: number }>(
        `INSERT INTO deployment_versions (deployment_id, version, model_id, artifact_uri, onnx_sha256, model_meta, card,
           card_markdown, deployed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
        [deploymentId, version, model.id, folder, onnxSha256, files.meta, card, markdown, approvedBy],
      );
      await appendAudit(db, {
        actorId: approvedBy,
        action: "model.deploy",
        entity: "deployment",
        entityId: name,
        details: { model_id: model.id, version },
      });
      return (await db.query<DeploymentVersion>(`${VERSION_SELECT} WHERE v.id = $1`, [inserted.rows[0]!.id])).rows[0]!;
    });
  } catch (err) {
    await Promise.all(written.map((uri) => deps.blobs.remove(uri)));
    // The same model deployed at the same moment by another caller: theirs is the version.
    if (uniqueViolation(err) === "deployment_versions_model_id_key") {
      return (await deps.pool.query<DeploymentVersion>(`${VERSION_SELECT} WHERE v.model_id = $1`, [modelId])).rows[0]!;
    }
    throw err;
  }
}

/** The deployment's id, created when new, row-locked so that two deploys number versions in turn. */
async function lockDeployment(db: PoolClient, name: string): Promise<number> {
  await db.query("INSERT INTO deployments (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [name]);
  const { rows } = await db.query<{ id: number }>("SELECT id FROM deployments WHERE name = $1 FOR UPDATE", [name]);
  return rows[0]!.id;
}

/** A version of a deployment; the latest active one when `version` is not given. */
export async function getDeploymentVersion(db: Queryable, name: string, version?: number): Promise<DeploymentVersion> {
  const { rows } =
    version === undefined
      ? await db.query<DeploymentVersion>(
          `${VERSION_SELECT} WHERE d.name = $1 AND v.status = 'active' ORDER BY v.version DESC LIMIT 1`,
          [name],
        )
      : await db.query<DeploymentVersion>(`${VERSION_SELECT} WHERE d.name = $1 AND v.version = $2`, [name, version]);
  if (!rows[0]) throw notFound(version === undefined ? "deployment" : `version ${version} of deployment`, name);
  return rows[0];
}

export async function listDeploymentVersions(db: Queryable, name?: string): Promise<DeploymentVersion[]> {
  const { rows } =
    name === undefined
      ? await db.query<DeploymentVersion>(`${VERSION_SELECT} ORDER BY d.name, v.version`)
      : await db.query<DeploymentVersion>(`${VERSION_SELECT} WHERE d.name = $1 ORDER BY v.version`, [name]);
  return rows;
}

async function deploymentId(db: Queryable, name: string): Promise<number> {
  const { rows } = await db.query<{ id: number }>("SELECT id FROM deployments WHERE name = $1", [name]);
  if (!rows[0]) throw notFound("deployment", name);
  return rows[0].id;
}

export interface ApiKeyInfo {
  id: number;
  deployment: string;
  label: string;
  prefix: string;
  created_by: number | null;
  created_at: Date;
  revoked_at: Date | null;
}

/** Creates a key for a deployment. The plain key is in the result only: it is never stored. */
export async function createApiKey(
  db: Queryable,
  name: string,
  opts: { label?: string; createdBy?: number | null } = {},
): Promise<ApiKeyInfo & { key: string }> {
  const id = await deploymentId(db, name);
  const { key, stored } = newApiKey();
  const { rows } = await db.query<ApiKeyInfo>(
    `INSERT INTO deployment_keys (deployment_id, label, prefix, salt, key_hash, created_by) VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING id, $7::text AS deployment, label, prefix, created_by, created_at, revoked_at`,
    [id, opts.label ?? "", stored.prefix, stored.salt, stored.hash, opts.createdBy ?? null, name],
  );
  await appendAudit(db, {
    actorId: opts.createdBy ?? null,
    action: "deployment.key.create",
    entity: "deployment",
    entityId: name,
    details: { key_id: rows[0]!.id, prefix: stored.prefix, label: opts.label ?? "" },
  });
  return { ...rows[0]!, key };
}

export async function listApiKeys(db: Queryable, name: string): Promise<ApiKeyInfo[]> {
  const id = await deploymentId(db, name);
  const { rows } = await db.query<ApiKeyInfo>(
    `SELECT id, $2::text AS deployment, label, prefix, created_by, created_at, revoked_at FROM deployment_keys
      WHERE deployment_id = $1 ORDER BY id`,
    [id, name],
  );
  return rows;
}

export async function revokeApiKey(db: Queryable, name: string, keyId: number, actorId: number | null = null): Promise<void> {
  const id = await deploymentId(db, name);
  const { rowCount } = await db.query(
    "UPDATE deployment_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND deployment_id = $2",
    [keyId, id],
  );
  if (!rowCount) throw notFound(`key of deployment ${name}`, keyId);
  await appendAudit(db, { actorId, action: "deployment.key.revoke", entity: "deployment", entityId: name, details: { key_id: keyId } });
}

/** The key's id when it is a live key of deployment `name`, else null. */
export async function verifyApiKey(db: Queryable, name: string, key: string): Promise<number | null> {
  const prefix = keyPrefix(key);
  if (!prefix) return null;
  const { rows } = await db.query<{ id: number; salt: string; key_hash: string }>(
    `SELECT k.id, k.salt, k.key_hash FROM deployment_keys k JOIN deployments d ON d.id = k.deployment_id
      WHERE k.prefix = $1 AND d.name = $2 AND k.revoked_at IS NULL`,
    [prefix, name],
  );
  const row = rows[0];
  return row && keyMatches(key, { prefix, salt: row.salt, hash: row.key_hash }) ? row.id : null;
}

export interface RegistryProviderOptions {
  /** Serve only these deployments (a `medloop serve-model` process); default all. */
  only?: string[];
  /** onnxruntime threads per session. */
  threads?: number;
  /** How long a verified key is trusted before the database is asked again (default 5 s). */
  keyCacheMs?: number;
}

/** Serves deployed versions, loading each on first use and keeping it loaded. */
export function registryProvider(deps: RegistryDeps, opts: RegistryProviderOptions = {}) {
  const loaded = new Map<number, Promise<LoadedModel>>();
  const keyCache = new Map<string, { id: number | null; until: number }>();
  const allowed = (name: string) => !opts.only || opts.only.includes(name);
  const find = async (name: string, version?: string): Promise<DeploymentVersion | null> => {
    if (!allowed(name)) return null;
    const v = version === undefined ? undefined : Number(version);
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) return null;
    // Only "no such deployment" means 404; a database failure must surface as a 500.
    return getDeploymentVersion(deps.pool, name, v).catch((err: unknown) => {
      if (err instanceof AppError && err.code === "not_found") return null;
      throw err;
    });
  };
  const load = (dv: DeploymentVersion): Promise<LoadedModel> => {
    let p = loaded.get(dv.id);
    if (!p) {
      p = loadModel(deps.blobs.pathOf(dv.artifact_uri), { threads: opts.threads });
      p.catch(() => loaded.delete(dv.id)); // a failed load is retried by the next request
      loaded.set(dv.id, p);
    }
    return p;
  };
  let readyNames = new Set<string>();
  const provider: ModelProvider & { preload(): Promise<void>; close(): Promise<void> } = {
    exists: async (name, version) => (await find(name, version)) !== null,
    async resolve(name, version): Promise<ServedModel> {
      const dv = await find(name, version);
      if (!dv) throw notFound("deployment", version ? `${name} v${version}` : name);
      return { name, version: String(dv.version), model: await load(dv) };
    },
    versions: async (name) => (await listDeploymentVersions(deps.pool, name)).map((v) => String(v.version)),
    async authenticate(name, key) {
      const cacheKey = `${name}\n${key}`;
      const hit = keyCache.get(cacheKey);
      const now = Date.now();
      if (hit && hit.until > now) return hit.id === null ? null : String(hit.id);
      const id = await verifyApiKey(deps.pool, name, key);
      if (keyCache.size > 10_000) keyCache.clear(); // bounded: random wrong keys must not grow it forever
      keyCache.set(cacheKey, { id, until: now + (opts.keyCacheMs ?? 5000) });
      return id === null ? null : String(id);
    },
    ready: () => (opts.only ?? []).every((n) => readyNames.has(n)),
    /** Loads the latest version of every `only` deployment (readiness waits for this). */
    async preload() {
      const names = new Set<string>();
      for (const name of opts.only ?? []) {
        await load(await getDeploymentVersion(deps.pool, name));
        names.add(name);
      }
      readyNames = names;
    },
    async close() {
      const models = await Promise.allSettled(loaded.values());
      await Promise.all(models.map((m) => (m.status === "fulfilled" ? m.value.close() : undefined)));
      loaded.clear();
    },
  };
  return provider;
}
