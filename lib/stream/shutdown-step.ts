import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { settlesWithin } from '../common/backoff.js';

/** How long a shutdown step may take before the log says what shutdown waits for. */
const SHUTDOWN_NOTICE_MS = 1000;

/**
 * Waits for one shutdown step of stream `key` within what is `left`; says what it waits for once
 * that takes more than a moment. True if `work` settled in time.
 */
export async function shutdownStep(
  logger: Logger,
  key: string,
  what: string,
  work: Promise<unknown>,
  left: () => number,
): Promise<boolean> {
  const notice = setTimeout(
    () => logger.log(messages.shutdownWaiting(key, what, left())),
    SHUTDOWN_NOTICE_MS,
  );
  notice.unref();
  try {
    return await settlesWithin(work, left());
  } finally {
    clearTimeout(notice);
  }
}
