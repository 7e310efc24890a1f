// A small client of medloop's public HTTP API (api/routes), for the simulated doctors,
// the CLI and the integration tests: everything a lab lead or a doctor does in the UI.
import { probabilityFromUint16LE, type ProbabilityMap } from "../correction/assist.js";
import type { Action } from "../correction/effort.js";
import type { QualityReport } from "../qualityReport.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiTask {
  id: number;
  project_id: number;
  image_id: number;
  image_name: string;
  campaign_id: number | null;
  round: number | null;
  kind: "annotate" | "correct";
  assignee_id: number | null;
  state: "pending" | "open" | "submitted" | "done" | "cancelled";
  workflow_id: string | null;
  start_version_id: number | null;
  result_version_id: number | null;
}

export interface ApiCampaign {
  id: number;
  project_id: number;
  name: string;
  state: "created" | "running" | "paused" | "stopping" | "stopped" | "completed" | "failed";
  phase: string | null;
  round: number;
  k: number;
  workflow_id: string | null;
}

export interface ApiRound {
  round: number;
  phase: string;
  model_id: number | null;
  metrics: Record<string, unknown>;
  selected_image_ids: number[];
  tasks: { total: number; done: number };
}

export interface ApiImage {
  id: number;
  name: string;
  role: "seed" | "pool" | "test";
  width: number;
  height: number;
  has_mask: boolean;
}

export interface Submission {
  submission_id: string;
  parent_version_id: number | null;
  mask_png_base64: string;
  active_ms: number;
  started_at: string;
  ended_at: string;
  edits: number;
  simulated?: boolean;
  /** The editor actions (services/correction/effort.ts), priced by the effort model. */
  actions?: Action[];
}

export class MedloopClient {
  private token: string | null = null;
  userId: number | null = null;

  constructor(readonly baseUrl: string) {}

  async login(email: string, password: string): Promise<this> {
    const res = await this.json<{ token: string; user: { id: number } }>("POST", "/auth/login", { email, password });
    this.token = res.token;
    this.userId = res.user.id;
    return this;
  }

  createProject(name: string, description = ""): Promise<{ id: number; name: string }> {
    return this.json("POST", "/projects", { name, description });
  }

  listProjects(): Promise<Array<{ id: number; name: string; image_count: number }>> {
    return this.json("GET", "/projects");
  }

  /** Uploads an image (and its reference mask) as multipart/form-data. */
  async uploadImage(projectId: number, input: { name: string; role: string; image: Buffer; mask?: Buffer; filename?: string }): Promise<ApiImage> {
    const form = new FormData();
    form.set("name", input.name);
    form.set("role", input.role);
    form.set("image", new Blob([new Uint8Array(input.image)]), input.filename ?? `${input.name}.png`);
    if (input.mask) form.set("mask", new Blob([new Uint8Array(input.mask)], { type: "image/png" }), `${input.name}_mask.png`);
    return this.request<ApiImage>("POST", `/projects/${projectId}/images`, form);
  }

  listImages(projectId: number): Promise<ApiImage[]> {
    return this.json("GET", `/projects/${projectId}/images`);
  }

  startCampaign(projectId: number, name: string, config: Record<string, unknown>): Promise<ApiCampaign> {
    return this.json("POST", "/campaigns", { project_id: projectId, name, config });
  }

  getCampaign(id: number): Promise<ApiCampaign> {
    return this.json("GET", `/campaigns/${id}`);
  }

  campaignStatus(id: number): Promise<Record<string, unknown>> {
    return this.json("GET", `/campaigns/${id}/status`);
  }

  rounds(id: number): Promise<ApiRound[]> {
    return this.json("GET", `/campaigns/${id}/rounds`);
  }

  control(id: number, action: "pause" | "resume" | "stop", body: Record<string, unknown> = {}): Promise<unknown> {
    return this.json("POST", `/campaigns/${id}/${action}`, body);
  }

  /** "Next image" of a continuous campaign: the correction task created for this doctor (POST /campaigns/:id/pull). */
  pull(campaignId: number): Promise<{ task: ApiTask; image_id: number; model_version: number; existing: boolean }> {
    return this.json("POST", `/campaigns/${campaignId}/pull`, {});
  }

  /** The live learning curve (GET /campaigns/:id/live): per model version, its corrected predictions against the final masks. */
  live(campaignId: number): Promise<Array<{ model_id: number; round: number | null; corrections: number; f1_mean: number; effort_minutes_mean: number | null }>> {
    return this.json("GET", `/campaigns/${campaignId}/live`);
  }

  /** Pending reviews of a campaign (GET /reviews): the reviewers' queue. */
  pendingReviews(campaignId: number): Promise<Array<{ id: number; task_id: number; version_id: number; doctor_id: number }>> {
    return this.json("GET", `/reviews?state=pending&campaign_id=${campaignId}`);
  }

  decideReview(reviewId: number, decision: { decision: "accept" | "return"; comment?: string; active_ms: number; decision_id: string }): Promise<unknown> {
    return this.json("POST", `/reviews/${reviewId}/decision`, decision);
  }

  /** The campaign's quality report (GET /reports/quality): consensus, agreement, reviews, honeypots. */
  quality(campaignId: number): Promise<QualityReport> {
    return this.json("GET", `/reports/quality?campaign_id=${campaignId}`);
  }

  myTasks(state?: ApiTask["state"]): Promise<ApiTask[]> {
    return this.json("GET", `/tasks/mine${state ? `?state=${state}` : ""}`);
  }

  tasks(query: { campaign_id?: number; state?: ApiTask["state"] } = {}): Promise<ApiTask[]> {
    const qs = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
    return this.json("GET", `/tasks${qs.size ? `?${qs}` : ""}`);
  }

  /** The mask a correction task starts from (the prediction), as PNG bytes. */
  startMask(taskId: number): Promise<Buffer> {
    return this.bytes(`/tasks/${taskId}/start-mask`);
  }

  /**
   * The probability map of the prediction a correction task starts from (GET
   * /tasks/:id/probability: 16-bit samples), or null when the task has none.
   */
  async probability(taskId: number): Promise<ProbabilityMap | null> {
    const res = await fetch(`${this.baseUrl}/api/tasks/${taskId}/probability`, { headers: this.headers() });
    if (res.status === 404) return null;
    if (!res.ok) throw await this.error(res, "GET", `/tasks/${taskId}/probability`);
    return probabilityFromUint16LE(await res.arrayBuffer(), Number(res.headers.get("x-image-width")), Number(res.headers.get("x-image-height")));
  }

  submit(taskId: number, submission: Submission): Promise<{ version: { id: number; pixels_changed: number | null }; duplicate: boolean; workflow_notified: boolean }> {
    return this.json("POST", `/tasks/${taskId}/submissions`, submission);
  }

  outbox(): Promise<Array<{ id: string; to: string; subject: string }>> {
    return this.json("GET", "/outbox");
  }

  async bytes(path: string): Promise<Buffer> {
    const res = await fetch(`${this.baseUrl}/api${path}`, { headers: this.headers() });
    if (!res.ok) throw await this.error(res, "GET", path);
    return Buffer.from(await res.arrayBuffer());
  }

  json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.request<T>(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { "content-type": "application/json" });
  }

  private async request<T>(method: string, path: string, body?: string | FormData, extra: Record<string, string> = {}): Promise<T> {
    const res = await fetch(`${this.baseUrl}/api${path}`, { method, body, headers: { ...this.headers(), ...extra } });
    if (!res.ok) throw await this.error(res, method, path);
    return (await res.json()) as T;
  }

  private headers(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private async error(res: Response, method: string, path: string): Promise<ApiError> {
    const text = await res.text();
    let code = "http_error";
    let message = text.slice(0, 300);
    try {
      const parsed = JSON.parse(text) as { error?: { code: string; message: string } };
      if (parsed.error) ({ code, message } = parsed.error);
    } catch {
      // Not JSON: keep the text.
    }
    return new ApiError(res.status, code, `${method} /api${path}: ${res.status} ${message}`);
  }
}
