// Token bucket per API key: `burst` requests at once, refilled at `perSecond`. In memory, per
// process: each serving process enforces its own limit.

export interface RateLimitOptions {
  /** Tokens added per second. */
  perSecond: number;
  /** Bucket size: the largest burst. */
  burst: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly opts: RateLimitOptions,
    private readonly now: () => number = () => performance.now() / 1000,
  ) {
    if (!(opts.perSecond > 0) || !(opts.burst >= 1)) throw new Error("rate limit needs perSecond > 0 and burst >= 1");
  }

  take(id: string): RateDecision {
    const t = this.now();
    const b = this.buckets.get(id) ?? { tokens: this.opts.burst, at: t };
    b.tokens = Math.min(this.opts.burst, b.tokens + (t - b.at) * this.opts.perSecond);
    b.at = t;
    this.buckets.set(id, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.opts.perSecond)) };
  }
}
