import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { LEFT_POSITION_RETRY_INITIAL_MS, RETRY_MAX_DELAY_MS } from '../options/defaults.js';
import { encodePosition } from '../position/position.codec.js';
import { LEFT_POSITION_TTL_SECONDS, leftPositionKey } from './redis-keys.js';

// Recovery from a Redis that lost a stream's data (restarted empty) while an instance was reading:
// the instance that loses its lease leaves the position it reached (a "left position"; the store
// methods keep their public names `leaveOrphan`/`loadOrphan`/`dropOrphan`), the next holder resumes from it.

/** As long as the store keeps what is left: after that nobody would see it. */
const GIVE_UP_AFTER_MS = LEFT_POSITION_TTL_SECONDS * 1000;

type OrphanStore = Required<Pick<PositionStore, 'leaveOrphan' | 'loadOrphan' | 'dropOrphan'>> &
  PositionStore;

/** The store supports recovery from lost data only with all three methods (see `PositionStore.leaveOrphan`). */
export function orphanStore(store: PositionStore | undefined): OrphanStore | undefined {
  return store?.leaveOrphan && store.loadOrphan && store.dropOrphan
    ? (store as OrphanStore)
    : undefined;
}

/** What an instance that lost its lease may have to leave; `settled` once that was decided or reported. */
export interface LeftPosition {
  position: StreamPosition;
  lease: StreamLease;
  /** A position was stored under `lease`. */
  saved: boolean;
  settled?: boolean;
}

/**
 * The Redis command that hands `position` to the stream's next holder by hand: with leases as a
 * left position (`leaveOrphan`), without them as the stored position itself.
 */
export function restoreCommand(key: string, position: StreamPosition, leases: boolean): string {
  const envelope = encodePosition(position);
  return leases
    ? `SET ${leftPositionKey(key)} '${envelope}' EX ${LEFT_POSITION_TTL_SECONDS}`
    : `SET ${key} '${envelope}'`;
}

/** Logs, once, the position that could not be left, with how to restore it by hand. */
export function reportOrphanNotLeft(
  key: string,
  left: LeftPosition,
  reason: string,
  logger: Logger,
): void {
  if (left.settled) return;
  left.settled = true;
  logger.warn(messages.orphanNotLeft(key, restoreCommand(key, left.position, true), reason));
}

/**
 * After losing `lease`: leaves `position` for the next holder if the store lost the stream's data
 * (see `PositionStore.leaveOrphan`). The lease is often lost because Redis is away, so this
 * retries until Redis answers or an hour has passed. Once `stopping` aborts (shutdown) it makes one
 * last attempt, and if that fails too, logs the position so that it is not lost without a word.
 */
export async function leaveOrphanPosition(
  store: OrphanStore,
  key: string,
  left: LeftPosition,
  stopping: AbortSignal,
  logger: Logger,
): Promise<void> {
  const deadline = Date.now() + GIVE_UP_AFTER_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      const kept = await store.leaveOrphan(key, left.position, left.lease, left.saved);
      left.settled = true;
      if (kept) logger.warn(messages.orphanLeft(key, left.lease.holder));
      return;
    } catch (error) {
      if (stopping.aborted || Date.now() >= deadline) {
        reportOrphanNotLeft(key, left, errorText(error), logger);
        return;
      }
      logger.debug(messages.orphanNotLeftYet(key, errorText(error)));
      await sleep(
        backoffDelay(attempt, LEFT_POSITION_RETRY_INITIAL_MS, RETRY_MAX_DELAY_MS),
        stopping,
      ); // cut short by shutdown: then one last attempt
    }
  }
}
