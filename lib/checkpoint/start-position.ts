import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { orphanStore } from '../redis/left-position.js';
import { oldestReplacedPosition } from './replaced-position.js';

/** Where a lease term starts, and where that came from: a left position, the stored one, or this instance's memory. */
export interface StartPosition {
  position: StreamPosition | null;
  from: 'left' | 'stored' | 'memory' | 'replaced';
}

/**
 * Reads where a lease term starts (throws `InvalidStoredTokenError` for a bad value). A position
 * an instance left when Redis lost the stream's data comes first (see `PositionStore.leaveOrphan`;
 * only with leases). If nothing is stored but this instance handled events before (Redis restarted
 * empty, say), it resumes from the last of those (`remembered`) instead of from "now": at worst
 * duplicates, never a gap. A stream with no position of its own that replaces others (`replaced`:
 * their keys, after a switch of the `streams` mode) starts at the oldest of theirs.
 */
export async function readStartPosition(
  store: PositionStore,
  key: string,
  withLease: boolean,
  remembered: StreamPosition | null,
  logger: Logger,
  replaced: readonly string[] = [],
): Promise<StartPosition> {
  const leftPositions = orphanStore(store);
  const left = withLease && leftPositions ? await leftPositions.loadOrphan(key) : null;
  if (left) {
    logger.warn(messages.leaseReload(key));
    return { position: left, from: 'left' };
  }
  const stored = await store.load(key);
  if (stored === null && remembered !== null) {
    logger.warn(messages.positionMissingResumingFromMemory(key));
    return { position: remembered, from: 'memory' };
  }
  if (stored === null && remembered === null && replaced.length > 0) {
    const oldest = await oldestReplacedPosition(store, replaced);
    if (oldest) {
      const at =
        'operationTime' in oldest.position
          ? `cluster time ${oldest.position.operationTime.t}.${oldest.position.operationTime.i}`
          : 'its resume token';
      logger.warn(
        oldest.unordered === undefined || oldest.unordered < 2
          ? messages.startingFromReplacedPosition(key, oldest.from, at)
          : messages.startingFromUnorderedPosition(key, oldest.from, oldest.unordered),
      );
      return { position: oldest.position, from: 'replaced' };
    }
  }
  return { position: stored, from: 'stored' };
}

/** A left position a lease term resumed from (`pending`) until it is stored and then removed. */
export class AdoptedLeftPosition {
  pending = false;
  private readonly store: ReturnType<typeof orphanStore>;

  constructor(
    store: PositionStore,
    private readonly key: string,
  ) {
    this.store = orphanStore(store);
  }

  /** It is stored now (the position is at or after it): remove it; if that fails, again after the next save of the same term. */
  drop(sameTerm: () => boolean): void {
    this.pending = false;
    void this.store?.dropOrphan(this.key).catch(() => {
      if (sameTerm()) this.pending = true;
    });
  }
}
