import type { LoggerService } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { messages } from '../change-stream.messages.js';
import type { StreamPosition } from '../interfaces/position-store.interface.js';
import { clusterTimeOfToken } from '../position/resume-token-time.js';
import type { OplogWindowReading } from './oplog-window.js';

/** What status shows of a stream's history headroom. */
export interface HeadroomSnapshot {
  historyHeadroomMs: number | null;
  oplogWindowMs: number | null;
  historyHeadroomUnknown: string | null;
}

/** What a stream's headroom is computed from and acts on. */
export interface StreamHeadroomSources {
  key: string;
  /** Below this headroom (ms) a holder turns `degraded`; 0 never. */
  warnMs: number;
  /** The position this instance knows: its own (holding) or the holder's from the store (standby). */
  position(): Promise<StreamPosition | null>;
  /** This instance consumes the stream: only then does low headroom degrade it (a standby reports). */
  holding(): boolean;
  /** Sets (a reason) or clears (null) the stream's `headroom` degradation. */
  degrade(reason: string | null): void;
  logger: Pick<LoggerService, 'log' | 'warn'>;
}

/**
 * One stream's history headroom: how long until its position falls off the oplog (the position's
 * cluster time minus the oldest oplog entry's time), and the oplog's window (newest minus oldest).
 * Updated by its connection's `OplogWindowSampler`; a holder whose headroom is below `warnMs` while
 * the oplog is dropping entries turns `degraded` with one warning, and recovers above it.
 */
export class StreamHeadroom {
  private shown: HeadroomSnapshot;
  private low = false;

  constructor(
    private readonly sources: StreamHeadroomSources,
    initialReason = messages.headroomNotSampled(),
  ) {
    this.shown = {
      historyHeadroomMs: null,
      oplogWindowMs: null,
      historyHeadroomUnknown: initialReason,
    };
  }

  get key(): string {
    return this.sources.key;
  }

  get snapshot(): HeadroomSnapshot {
    return this.shown;
  }

  /**
   * Takes one sample of the oplog's window. `rolling`: the oldest entry moved since this
   * connection's first sample, so history is being dropped; a fresh oplog that never rolled over
   * (its oldest entry the replica set's first) puts no position at risk, however close.
   */
  async update(window: OplogWindowReading, rolling: boolean): Promise<void> {
    if ('unknown' in window) return this.unknown(null, window.unknown);
    const oplogWindowMs = secondsBetween(window.oldest, window.newest);
    let position: StreamPosition | null;
    try {
      position = await this.sources.position();
    } catch (error) {
      return this.unknown(oplogWindowMs, messages.headroomPositionUnreadable(String(error)));
    }
    if (!position) return this.unknown(oplogWindowMs, messages.headroomNoPosition());
    const time = positionTime(position);
    if (!time) return this.unknown(oplogWindowMs, messages.headroomPositionWithoutTime());
    const historyHeadroomMs = secondsBetween(window.oldest, time);
    this.shown = { historyHeadroomMs, oplogWindowMs, historyHeadroomUnknown: null };
    const { warnMs, key, logger } = this.sources;
    const low = warnMs > 0 && rolling && historyHeadroomMs < warnMs && this.sources.holding();
    if (low) {
      if (!this.low)
        logger.warn(messages.historyHeadroomLow(key, historyHeadroomMs, oplogWindowMs, warnMs));
      this.sources.degrade(messages.historyHeadroomLowReason(historyHeadroomMs, oplogWindowMs));
    } else if (this.low) {
      this.sources.degrade(null);
      logger.log(messages.historyHeadroomRecovered(key, historyHeadroomMs, oplogWindowMs));
    }
    this.low = low;
  }

  /** Not knowing the headroom never degrades a stream: a degradation of ours is lifted. */
  private unknown(oplogWindowMs: number | null, reason: string): void {
    this.shown = { historyHeadroomMs: null, oplogWindowMs, historyHeadroomUnknown: reason };
    if (this.low) this.sources.degrade(null);
    this.low = false;
  }
}

/** The cluster time of a position: its token's (mongod's `_data`), or its `operationTime`. */
export function positionTime(position: StreamPosition): mongo.Timestamp | null {
  return 'operationTime' in position ? position.operationTime : clusterTimeOfToken(position.token);
}

/** Milliseconds from `from` to `to`, at the seconds precision of cluster times. */
function secondsBetween(from: mongo.Timestamp, to: mongo.Timestamp): number {
  return (to.t - from.t) * 1000;
}
