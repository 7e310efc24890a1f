// Starts the real HTTP app on a loopback port over a throw-away database and a temporary
// data folder, with the demo users logged in, for the API tests.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import type { Server } from "node:http";
import { createApp } from "../../api/app.js";
import type { AppDeps } from "../../api/deps.js";
import { BlobStore } from "../../services/blobs.js";
import { loadConfig } from "../../services/config.js";
import { login } from "../../services/auth.js";
import { seedDemoUsers, type Role, type User } from "../../services/users.js";
import { createTestDatabase, type TestDatabase } from "./db.js";

export interface TestApi {
  db: TestDatabase;
  deps: AppDeps;
  baseUrl: string;
  dataDir: string;
  tokens: Record<Role, string>;
  users: Record<string, User>;
  /** Token of the second demo doctor. */
  doctor2Token: string;
  call(method: string, urlPath: string, opts?: CallOptions): Promise<CallResult>;
  /** A new token for the first demo user of a role. */
  freshToken(role: Role): Promise<string>;
  close(): Promise<void>;
}

export interface CallOptions {
  token?: string | null;
  json?: unknown;
  body?: Buffer | FormData;
  contentType?: string;
}

export interface CallResult {
  status: number;
  headers: Headers;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  bytes: Buffer;
}

export async function startTestApi(overrides: Partial<AppDeps> = {}, env: Record<string, string> = {}): Promise<TestApi> {
  const db = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "medloop-api-"));
  // The machine's settings (MEDLOOP_CHASE_DIR, …) apply, but all state goes to the temporary folder.
  const config = loadConfig({
    ...process.env,
    MEDLOOP_DATA_DIR: dataDir,
    MEDLOOP_BLOB_ROOT: path.join(dataDir, "blobs"),
    MEDLOOP_DATABASE_URL: db.url,
    MEDLOOP_MAX_UPLOAD_MB: "",
    ...env,
  });
  const deps: AppDeps = {
    pool: db.pool,
    blobs: new BlobStore(config.blobRoot),
    config,
    campaigns: null,
    notifySubmission: null,
    linkSecret: null,
    checkResponses: true,
    ...overrides,
  };
  const server: Server = await new Promise((resolve) => {
    const s = createApp(deps).listen(0, "127.0.0.1", () => resolve(s));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const demo = await seedDemoUsers(db.pool);
  const tokens = {} as Record<Role, string>;
  const users: Record<string, User> = {};
  let doctor2Token = "";
  for (const u of demo) {
    users[u.email.split("@")[0]!] = u;
    const { token } = await login(db.pool, u.email, u.password, 3600);
    if (u.email.startsWith("doctor2")) doctor2Token = token;
    else tokens[u.role] = token;
  }
  const call = async (method: string, urlPath: string, opts: CallOptions = {}): Promise<CallResult> => {
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? null : opts.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let body: BodyInit | undefined;
    if (opts.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.body instanceof FormData) {
      body = opts.body;
    } else if (opts.body) {
      headers["content-type"] = opts.contentType ?? "application/octet-stream";
      body = new Uint8Array(opts.body);
    }
    const res = await fetch(`${baseUrl}${urlPath}`, { method, headers, body });
    const bytes = Buffer.from(await res.arrayBuffer());
    const isJson = (res.headers.get("content-type") ?? "").includes("application/json");
    return { status: res.status, headers: res.headers, json: isJson ? JSON.parse(bytes.toString("utf8")) : null, bytes };
  };
  return {
    db,
    deps,
    baseUrl,
    dataDir,
    tokens,
    users,
    doctor2Token,
    call,
    async freshToken(role: Role) {
      const user = demo.find((u) => u.role === role)!;
      return (await login(db.pool, user.email, user.password, 3600)).token;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every file below a folder (relative paths, sorted): "nothing written" checks compare these. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(root, p));
    }
  };
  await walk(root);
  return out.sort();
}
