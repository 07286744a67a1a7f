// A token bucket: `rate` bytes per second with a `burst` allowance, on an injected clock.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly nowMs: () => number,
  ) {
    this.tokens = burst;
    this.last = nowMs();
  }

  private refill(): void {
    const now = this.nowMs();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }

  /** Takes n bytes if they are available; returns whether it did. */
  tryTake(n: number): boolean {
    this.refill();
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Takes n bytes even into debt (throttle): the debt is paid back before anything else passes. */
  takeDebt(n: number): void {
    this.refill();
    this.tokens -= n;
  }

  /** Bytes available now. */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Milliseconds until the bucket is out of debt (0 when it has tokens). */
  waitMs(): number {
    this.refill();
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }
}
