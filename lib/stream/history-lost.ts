import { Logger } from '@nestjs/common';
import { isInvalidStoredTokenError } from '../change-stream.errors.js';
import type { ChangeStreamEvent } from '../change-stream.events.js';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../change-stream.options.js';
import { errorText } from '../common/errors.js';
import type { HistoryLost, HistoryLostAction } from '../interfaces/failure-policies.interface.js';
import type { StreamPosition } from '../interfaces/resume-token-store.interface.js';
import type { StreamPlan } from './stream-plan.js';

/**
 * Server answers, when a stream is opened from a stored position, meaning "this position cannot
 * be resumed from", so reopening would fail forever: ChangeStreamHistoryLost (286),
 * InvalidResumeToken (260), ChangeStreamFatalError (280), and a token mongod cannot parse
 * (FailedToParse 9, 40647, 40649, 50811). A server error without a numeric code (some
 * MongoDB-compatible servers reject a token that way) counts too; network errors never do.
 */
const CODES = new Set([286, 260, 280, 9, 40647, 40649, 50811]);

export function isHistoryLost(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, code } = error as { name?: string; code?: unknown };
  if (name !== 'MongoServerError') return false;
  return typeof code !== 'number' || CODES.has(code);
}

export interface HistoryLostContext {
  key: string;
  plan: StreamPlan;
  database: string;
  options: ResolvedChangeStreamOptions;
  emit: (event: ChangeStreamEvent) => void;
  /** The newest acknowledged position, the one that could not be used. */
  position: StreamPosition | null;
}

export type HistoryLostVerdict = { action: 'fail'; reason: string } | { action: 'restart-from-now' } | null;

const logger = new Logger('ChangeStreamModule');

/**
 * Judges a broken stream: a stored value that is not a position, or a history-lost answer to
 * opening from a position, gets the `onHistoryLost` policy; anything else (null) is reopened.
 * Only the open is judged: the same errors mid-stream are a broken stream.
 */
export async function decideHistoryLost(error: unknown, atOpen: unknown, openedFromPosition: boolean, context: HistoryLostContext): Promise<HistoryLostVerdict> {
  const badValue = isInvalidStoredTokenError(error);
  if (!badValue && !(atOpen !== undefined && openedFromPosition && isHistoryLost(atOpen))) return null;
  const { key, plan, database, options } = context;
  const reason = badValue ? error.message : messages.historyLost(key, errorText(atOpen));
  const lost: HistoryLost = { key, connectionName: plan.connectionName, database, collection: plan.collection, reason, position: badValue ? null : context.position };
  let action: HistoryLostAction;
  try {
    action = typeof options.onHistoryLost === 'function' ? await options.onHistoryLost(lost) : options.onHistoryLost;
  } catch (callbackError) {
    logger.error(`onHistoryLost callback threw: ${errorText(callbackError)}`, (callbackError as Error)?.stack);
    action = 'fail';
  }
  context.emit({ type: 'history-lost', action, ...lost });
  if (action !== 'restart-from-now') return { action: 'fail', reason };
  logger.error(messages.historyLostRestart(key, errorText(badValue ? error : atOpen)));
  return { action: 'restart-from-now' };
}
