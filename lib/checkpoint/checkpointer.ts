import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { ResumeToken, ResumeTokenStore } from '../interfaces/resume-token-store.interface.js';
import { backoffDelay } from '../stream/backoff.js';
import { errorText } from '../stream/change-dispatcher.js';

export interface CheckpointSettings {
  maxEvents: number;
  intervalMs: number;
}

/**
 * Holds one stream's position. `ack` is called in stream order once every handler of an
 * event succeeded; saves are batched by count and time, never run concurrently, and a
 * failed save is retried with backoff while the position stays in memory.
 */
export class Checkpointer {
  private readonly logger = new Logger(Checkpointer.name);
  private acked: ResumeToken | null = null;
  private unsaved = 0;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<boolean> | undefined;
  private again = false;
  private failures = 0;
  private disposed = false;
  lastSavedAt: Date | null = null;
  /** Told when saving starts failing (with the error) and when it works again (null). */
  onSaveTrouble: (error: string | null) => void = () => undefined;

  constructor(
    private readonly store: ResumeTokenStore,
    readonly key: string,
    private readonly settings: CheckpointSettings,
  ) {}

  /** Where a reopened stream must resume: the newest acknowledged position, else the stored one. */
  get position(): ResumeToken | null {
    return this.acked;
  }

  /** Reads the stored position (throws `InvalidStoredTokenError` for a bad value). */
  async load(): Promise<void> {
    this.restore(await this.store.load(this.key));
  }

  /** The position read from the store at start (or null to start over); it counts as saved. */
  restore(token: ResumeToken | null): void {
    this.acked = token;
    this.unsaved = 0;
  }

  /** Every handler of the event with this token succeeded (and of all before it). */
  ack(token: ResumeToken): void {
    if (this.disposed) return;
    this.acked = token;
    this.unsaved++;
    // After a failed save, wait for the backoff timer instead of hammering the store.
    if (this.unsaved >= this.settings.maxEvents && this.failures === 0) void this.flush();
    else this.schedule(this.settings.intervalMs);
  }

  /**
   * A position with no event behind it (a post-batch token while idle, or the start
   * position of a fresh stream): worth saving, but not worth an immediate write.
   */
  advanceIdle(token: ResumeToken): void {
    if (this.disposed || sameToken(token, this.acked)) return;
    this.acked = token;
    this.unsaved = Math.max(this.unsaved, 1);
    this.schedule(this.settings.intervalMs);
  }

  /** Saves the newest acknowledged position if it is not saved yet; true once it is stored. */
  flush(): Promise<boolean> {
    this.clearTimer();
    if (this.saving) {
      this.again = true;
      return this.saving;
    }
    this.saving = this.saveUntilCurrent().finally(() => (this.saving = undefined));
    return this.saving;
  }

  private async saveUntilCurrent(): Promise<boolean> {
    do {
      this.again = false;
      if (this.unsaved === 0 || this.acked === null) return true;
      const token = this.acked;
      const count = this.unsaved;
      try {
        await this.store.save(this.key, token);
      } catch (error) {
        if (this.failures++ === 0) this.onSaveTrouble(errorText(error));
        this.logger.warn(messages.checkpointFailed(this.key, errorText(error)));
        this.schedule(backoffDelay(this.failures, this.settings.intervalMs, 30_000));
        return false;
      }
      this.unsaved -= count;
      if (this.failures > 0) this.onSaveTrouble(null);
      this.failures = 0;
      this.lastSavedAt = new Date();
    } while (this.again);
    if (this.unsaved > 0) this.schedule(this.settings.intervalMs);
    return true;
  }

  /** Acknowledged events not stored yet. */
  get unsavedCount(): number {
    return this.unsaved;
  }

  /** True from a failed save until the next successful one. */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** After the final flush: a handler that outlived the drain timeout can no longer move the position. */
  dispose(): void {
    this.disposed = true;
    this.clearTimer();
  }

  private schedule(delayMs: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function sameToken(a: ResumeToken | null, b: ResumeToken | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
