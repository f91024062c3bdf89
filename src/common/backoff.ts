/**
 * The one retry policy: exponential backoff with ±50 % jitter, so that many clients cut off at
 * once (a kernel restart, a metadata service that is not up yet) do not come back in step.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly firstMs = 500,
    private readonly maxMs = 10_000,
  ) {}

  /** The delay before the next attempt; each call doubles the base, up to the cap. */
  next(): number {
    const base = Math.min(this.maxMs, this.firstMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return base * (0.5 + Math.random());
  }

  /** After a success: the next failure starts from the first delay again. */
  reset(): void {
    this.attempt = 0;
  }
}
