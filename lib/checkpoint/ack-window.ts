import type { ResumeToken } from '../interfaces/position-store.interface.js';

/**
 * Events numbered 1, 2, 3… in stream order finish in any order; the position may only move to
 * an event such that it and every earlier event finished. `complete` returns true when it
 * moved; then `acknowledgedSeq` and `token` describe the new position.
 */
export class AckWindow {
  /** Finished events beyond the contiguous prefix, by number; null token: finished but not a resume point. */
  private readonly finished = new Map<number, ResumeToken | null>();
  private contiguous = 0;
  private lastToken: ResumeToken | null = null;

  /** The highest number such that it and every earlier event finished. */
  get acknowledgedSeq(): number {
    return this.contiguous;
  }

  /** The resume token of the newest resume point in the contiguous prefix. */
  get token(): ResumeToken | null {
    return this.lastToken;
  }

  complete(seq: number, token: ResumeToken | null): boolean {
    if (seq <= this.contiguous) return false;
    if (seq === this.contiguous + 1 && this.finished.size === 0) {
      // In order (always so one at a time): no bookkeeping needed.
      this.contiguous = seq;
      if (token !== null) this.lastToken = token;
      return this.lastToken !== null;
    }
    this.finished.set(seq, token);
    const before = this.contiguous;
    while (this.finished.has(this.contiguous + 1)) {
      const next = this.finished.get(this.contiguous + 1)!;
      this.finished.delete(this.contiguous + 1);
      this.contiguous++;
      if (next !== null) this.lastToken = next;
    }
    return this.contiguous > before && this.lastToken !== null;
  }
}
