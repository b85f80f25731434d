import type { LoggerService } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { messages } from '../change-stream.messages.js';
import { type OplogCollection, type OplogWindowReading, readOplogWindow } from './oplog-window.js';
import type { StreamHeadroom } from './stream-headroom.js';

/**
 * Samples one connection's oplog window every `intervalMs` (one pair of queries per interval,
 * whatever the number of streams, never per event) and hands it to that connection's streams.
 * A server that refuses is named once in the log; status shows why on every stream.
 */
export class OplogWindowSampler {
  private readonly streams: StreamHeadroom[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** The oldest entry of the first sample: once it moved, the oplog is dropping history. */
  private firstOldest: mongo.Timestamp | null = null;
  private rolling = false;
  private refusalSaid = false;
  private lastFailed = false;
  private stopped = false;

  constructor(
    private readonly connectionName: string,
    private readonly oplog: () => OplogCollection,
    private readonly intervalMs: number,
    private readonly logger: Pick<LoggerService, 'log' | 'warn'>,
  ) {}

  add(stream: StreamHeadroom): void {
    this.streams.push(stream);
  }

  /** Samples now, then every `intervalMs`. */
  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
    void this.sample();
  }

  /**
   * No sample after this. One under way is not waited for (a server that does not answer would hold
   * the shutdown for its server selection timeout): its answer is dropped.
   */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopped = true;
  }

  /** One sample (skipped while the previous one still runs). Public for tests. */
  sample(): Promise<void> {
    this.running ??= this.take().finally(() => (this.running = undefined));
    return this.running;
  }

  private async take(): Promise<void> {
    let window: OplogWindowReading;
    try {
      window = await readOplogWindow(this.oplog());
    } catch (error) {
      window = { unknown: messages.oplogUnreadable(String(error)), refused: false };
    }
    if (this.stopped) return;
    this.report(window);
    await Promise.all(this.streams.map((s) => s.update(window, this.rolling)));
  }

  private report(window: OplogWindowReading): void {
    if (!('unknown' in window)) {
      this.lastFailed = false;
      if (!this.firstOldest) this.firstOldest = window.oldest;
      else if (later(window.oldest, this.firstOldest)) this.rolling = true;
      return;
    }
    const streams = this.streams.map((s) => s.key);
    if (window.refused) {
      if (!this.refusalSaid)
        this.logger.warn(
          messages.headroomUnavailable(this.connectionName, streams, window.unknown),
        );
      this.refusalSaid = true;
    } else if (!this.lastFailed) {
      this.logger.warn(messages.headroomUnavailable(this.connectionName, streams, window.unknown));
    }
    this.lastFailed = !window.refused;
  }
}

function later(a: mongo.Timestamp, b: mongo.Timestamp): boolean {
  return a.t > b.t || (a.t === b.t && a.i > b.i);
}
