/**
 * The nonces of accepted invokes, in memory for this process, so that a captured invoke cannot be
 * replayed. A nonce is kept 10 minutes after it was accepted: an invoke is fresh for 5 minutes either
 * side of its `t`, and it was accepted within 5 minutes of `t`, so a replay is refused as stale by the
 * time its nonce is dropped.
 *
 * The store is bounded. When it is full the oldest nonce is dropped and its `t` raises a watermark:
 * from then on an invoke whose `t` is not after the watermark is refused too, since it might be the
 * dropped one. An engine stamps `t` with its clock at send time, so that costs only invokes that were
 * overtaken by newer accepted ones, and only under a flood of invokes.
 */

/** How long an accepted nonce is remembered. */
export const NONCE_TTL_MS = 10 * 60 * 1000;
/** How many nonces the store holds (about 10 MB): 10 minutes of 160 invokes a second. */
export const NONCE_CAPACITY = 100_000;

/** A bounded set of nonces, each with an expiry; Map order is acceptance order. */
export class NonceStore {
  readonly #capacity: number;
  readonly #seen = new Map<string, { expires: number; t: number }>();
  #watermark = -Infinity;

  constructor(capacity = NONCE_CAPACITY) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new Error(`NonceStore: capacity must be a positive integer, got ${capacity}`);
    this.#capacity = capacity;
  }

  /** How many nonces are held (expired ones included until the next `accept`). */
  get size(): number {
    return this.#seen.size;
  }

  /**
   * Accept nonce `n` of a message stamped `t`, at `now`: true when it is new (it is then remembered),
   * false when it was accepted before or cannot be told apart from a dropped one.
   */
  accept(n: string, t: number, now: number): boolean {
    for (const [nonce, entry] of this.#seen) {
      if (entry.expires > now) break; // acceptance order: the rest expire later (with a clock that moves forward)
      this.#seen.delete(nonce);
    }
    if (this.#seen.has(n) || t <= this.#watermark) return false;
    while (this.#seen.size >= this.#capacity) {
      const [oldest, entry] = this.#seen.entries().next().value as [string, { expires: number; t: number }];
      this.#seen.delete(oldest);
      this.#watermark = Math.max(this.#watermark, entry.t);
    }
    this.#seen.set(n, { expires: now + NONCE_TTL_MS, t });
    return true;
  }
}

/** The store every `serve()` handler of this process shares: a nonce accepted by one is refused by all. */
export const processNonces = new NonceStore();
