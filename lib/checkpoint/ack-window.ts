import type { ResumeToken } from '../interfaces/resume-token-store.interface.js';

/**
 * Events numbered 1, 2, 3… in stream order finish in any order; the position may only move to
 * an event such that it and every earlier event finished. `complete` returns that event
 * (token and number) when it moved, else null.
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

  complete(seq: number, token: ResumeToken | null): { token: ResumeToken; seq: number } | null {
    if (seq <= this.contiguous) return null;
    this.finished.set(seq, token);
    const before = this.contiguous;
    while (this.finished.has(this.contiguous + 1)) {
      const next = this.finished.get(this.contiguous + 1)!;
      this.finished.delete(this.contiguous + 1);
      this.contiguous++;
      if (next !== null) this.lastToken = next;
    }
    return this.contiguous > before && this.lastToken !== null ? { token: this.lastToken, seq: this.contiguous } : null;
  }
}
