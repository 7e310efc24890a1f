// Active annotation time, as honest as a browser can measure it.
//
// Time counts from one sign of activity (pointer, key, wheel, the task opening, the
// tab coming back) to the next. A gap longer than the idle limit (30 s) counts only
// up to the limit: the doctor may have been looking at the image for a while, but
// not for minutes. While the tab is hidden nothing counts. The clock is injected so
// tests can drive it.

export const IDLE_LIMIT_MS = 30_000;

export type Clock = () => number;

export class ActiveTimer {
  private totalMs = 0;
  private lastActive: number | null = null;
  private hidden = false;
  private firstActivity: number | null = null;
  private lastActivity: number | null = null;
  private editCount = 0;

  constructor(
    private readonly now: Clock = () => Date.now(),
    readonly idleLimitMs = IDLE_LIMIT_MS,
    initialMs = 0,
  ) {
    this.totalMs = initialMs;
  }

  /** Any sign of the user working: closes the open interval and starts a new one. */
  activity(): void {
    if (this.hidden) return;
    const t = this.now();
    this.close(t);
    this.lastActive = t;
    this.firstActivity ??= t;
    this.lastActivity = t;
  }

  /** An edit to the mask: counts as activity and is counted for the submission. */
  edit(): void {
    this.activity();
    if (!this.hidden) this.editCount++;
  }

  /** The tab was hidden or shown (document.visibilityState). */
  setVisible(visible: boolean): void {
    const t = this.now();
    if (!visible) {
      this.close(t);
      this.lastActive = null;
      this.hidden = true;
    } else if (this.hidden) {
      this.hidden = false;
      this.lastActive = t;
    }
  }

  /**
   * Stops the clock at `at`, one reading the caller also uses as the work's end time, and
   * returns the active milliseconds up to that instant. Reading the active time and the end
   * time separately let a slow machine put the active time past the end (a submission's
   * active_ms longer than ended_at − started_at). The next sign of activity starts counting
   * again (a submission that failed and is retried).
   */
  stopAt(at: number): number {
    if (!this.hidden) {
      this.close(at);
      this.lastActivity = this.lastActivity === null ? at : Math.max(this.lastActivity, at);
      this.firstActivity ??= at;
    }
    return Math.round(this.totalMs);
  }

  /** Active milliseconds so far, the open interval included (capped at the idle limit). */
  activeMs(): number {
    if (this.lastActive === null) return Math.round(this.totalMs);
    return Math.round(this.totalMs + Math.min(this.now() - this.lastActive, this.idleLimitMs));
  }

  get edits(): number {
    return this.editCount;
  }

  /** First and last activity as Date (null before any activity). */
  span(): { startedAt: Date | null; endedAt: Date | null } {
    return {
      startedAt: this.firstActivity === null ? null : new Date(this.firstActivity),
      endedAt: this.lastActivity === null ? null : new Date(this.lastActivity),
    };
  }

  private close(t: number): void {
    if (this.lastActive === null) return;
    this.totalMs += Math.min(Math.max(0, t - this.lastActive), this.idleLimitMs);
    this.lastActive = null;
  }
}

/** Wires a timer to the document: input events are activity, visibility pauses it. */
export function attachActiveTimer(timer: ActiveTimer, target: Document = document): () => void {
  const onActivity = (): void => timer.activity();
  const onVisibility = (): void => timer.setVisible(target.visibilityState === "visible");
  const events = ["pointerdown", "pointermove", "keydown", "wheel"] as const;
  for (const e of events) target.addEventListener(e, onActivity, { passive: true });
  target.addEventListener("visibilitychange", onVisibility);
  onVisibility();
  return () => {
    for (const e of events) target.removeEventListener(e, onActivity);
    target.removeEventListener("visibilitychange", onVisibility);
  };
}
