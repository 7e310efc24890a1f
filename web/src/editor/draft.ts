// The local draft of a task: the mask being edited, the active time so far and the
// submission id, kept in the browser (IndexedDB) until the server confirms the
// submission. A reload, a crash or a failed request never loses strokes, and a
// retried submission reuses its id so the server can recognise a duplicate.

import type { Action } from "../../../services/correction/effort.js";

export interface Draft {
  taskId: string;
  width: number;
  height: number;
  mask: Uint8Array;
  activeMs: number;
  edits: number;
  startedAt: string | null;
  submissionId: string;
  savedAt: string;
  /** The editor actions so far (services/correction/effort.ts), sent with the submission. */
  actions?: Action[];
}

export interface DraftBackend {
  get(taskId: string): Promise<Draft | null>;
  put(draft: Draft): Promise<void>;
  delete(taskId: string): Promise<void>;
}

/** In-memory backend: for tests and for browsers without IndexedDB (private modes). */
export class MemoryDraftBackend implements DraftBackend {
  private readonly drafts = new Map<string, Draft>();
  async get(taskId: string): Promise<Draft | null> {
    const d = this.drafts.get(taskId);
    return d ? { ...d, mask: d.mask.slice() } : null;
  }
  async put(draft: Draft): Promise<void> {
    this.drafts.set(draft.taskId, { ...draft, mask: draft.mask.slice() });
  }
  async delete(taskId: string): Promise<void> {
    this.drafts.delete(taskId);
  }
}

const DB_NAME = "medloop";
const STORE = "drafts";

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
  });
}

/** IndexedDB backend: structured clone stores the mask bytes as they are. */
export class IndexedDbDraftBackend implements DraftBackend {
  private db: Promise<IDBDatabase> | null = null;

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "taskId" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error("cannot open IndexedDB"));
    });
    return this.db;
  }

  async get(taskId: string): Promise<Draft | null> {
    const db = await this.open();
    const got = await request(db.transaction(STORE).objectStore(STORE).get(taskId));
    return (got as Draft | undefined) ?? null;
  }

  async put(draft: Draft): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).put(draft);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error("draft not saved"));
    });
  }

  async delete(taskId: string): Promise<void> {
    const db = await this.open();
    await request(db.transaction(STORE, "readwrite").objectStore(STORE).delete(taskId));
  }
}

export function defaultDraftBackend(): DraftBackend {
  return typeof indexedDB === "undefined" ? new MemoryDraftBackend() : new IndexedDbDraftBackend();
}

/**
 * A random idempotency key (a submission's or a review decision's id). crypto.randomUUID exists
 * only in secure contexts (https, localhost); elsewhere 16 random bytes in hex.
 */
export function newSubmissionId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
}

/**
 * Saves drafts of one task, at most once per `delayMs` while edits keep coming, and
 * deletes the draft only once the server has confirmed the submission.
 */
export class DraftKeeper {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pending: (() => Draft) | null = null;
  private confirmed = false;

  constructor(
    private readonly backend: DraftBackend,
    private readonly delayMs = 500,
  ) {}

  /** Schedules a save; `snapshot` is called when the save happens, not now. */
  schedule(snapshot: () => Draft): void {
    if (this.confirmed) return;
    this.pending = snapshot;
    this.timer ??= setTimeout(() => void this.flush(), this.delayMs);
  }

  /** Writes the pending draft now (before a submission, on page hide). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const snap = this.pending;
    this.pending = null;
    if (snap && !this.confirmed) await this.backend.put(snap());
  }

  /** The server stored the submission: the draft is no longer needed. */
  async confirm(taskId: string): Promise<void> {
    this.confirmed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
    await this.backend.delete(taskId);
  }
}
