// Token buckets for message rates: `burst` tokens, one more every `refillMs`. Lazy refill on take (no timers),
// so a bucket per user costs a few numbers.
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly burst: number,
    private readonly refillMs: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  /** Takes one token; returns 0 when taken, else the ms until one is available. */
  take(now = Date.now()): number {
    const refilled = (now - this.updatedAt) / this.refillMs;
    if (refilled > 0) {
      this.tokens = Math.min(this.burst, this.tokens + refilled);
      this.updatedAt = now;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.tokens) * this.refillMs);
  }

  /** Full again (an idle bucket can be forgotten). */
  isFull(now = Date.now()): boolean {
    return this.tokens + (now - this.updatedAt) / this.refillMs >= this.burst;
  }
}
