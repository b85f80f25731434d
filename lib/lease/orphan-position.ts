import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { ResumeTokenStore, StreamPosition } from '../interfaces/resume-token-store.interface.js';

/** As long as the store keeps what is left: after that nobody would see it. */
const GIVE_UP_AFTER_MS = 3_600_000;

/**
 * After losing `lease`: leaves `position` for the next holder if the store lost the stream's data
 * (see `ResumeTokenStore.leaveOrphan`). The lease is often lost because Redis is away, so this
 * retries until Redis answers, the stream stops (`signal`) or an hour has passed.
 */
export async function leaveOrphanPosition(
  store: ResumeTokenStore,
  key: string,
  position: StreamPosition,
  lease: StreamLease,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  if (!store.leaveOrphan) return;
  const deadline = Date.now() + GIVE_UP_AFTER_MS;
  for (let attempt = 1; !signal.aborted && Date.now() < deadline; attempt++) {
    try {
      if (await store.leaveOrphan(key, position, lease)) logger.warn(messages.orphanLeft(key, lease.holder));
      return;
    } catch (error) {
      logger.debug(messages.orphanNotLeftYet(key, errorText(error)));
      if (!(await sleep(backoffDelay(attempt, 500, 30_000), signal))) return;
    }
  }
}
