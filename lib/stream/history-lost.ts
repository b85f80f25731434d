import { Logger } from '@nestjs/common';
import { isInvalidStoredTokenError } from '../change-stream.errors.js';
import type { ChangeStreamEvent } from '../change-stream.events.js';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../options/module-options.js';
import { errorText } from '../common/errors.js';
import type { HistoryLost, HistoryLostAction } from '../interfaces/failure-policies.interface.js';
import type { StreamPosition } from '../interfaces/position-store.interface.js';
import type { FellOffCollection } from '../checkpoint/start-rule.js';
import type { mongo } from 'mongoose';
import type { StreamPlan } from './stream-plan.js';

/**
 * Server answers, when a stream is opened from a stored position, meaning "this position cannot
 * be resumed from", so reopening would fail forever: ChangeStreamHistoryLost (286),
 * CappedPositionLost (136), InvalidResumeToken (260) and the codes of a token mongod cannot
 * decode (40647, 40649, 50811). ChangeStreamFatalError (280) only when the token was not found
 * (its other causes are not about the position). Not: FailedToParse (9) and errors without a
 * code (a bad pipeline or option, a proxy's own error), an error labelled resumable, network errors.
 */
const LOST_CODES = new Set([286, 136, 260, 40647, 40649, 50811]);
const TOKEN_NOT_FOUND = 280;

/** How an error at open (or at the first read after it) bears on the position it started from. */
export type OpenErrorKind = 'history-lost' | 'token-not-found' | 'other';

export function classifyOpenError(error: unknown): OpenErrorKind {
  if (typeof error !== 'object' || error === null) return 'other';
  const { name, code, message, errorLabels } = error as {
    name?: string;
    code?: unknown;
    message?: unknown;
    errorLabels?: unknown;
  };
  if (name !== 'MongoServerError' || typeof code !== 'number') return 'other';
  if (Array.isArray(errorLabels) && errorLabels.includes('ResumableChangeStreamError'))
    return 'other';
  if (LOST_CODES.has(code)) return 'history-lost';
  if (code === TOKEN_NOT_FOUND && /resume token was not found/i.test(String(message)))
    return 'token-not-found';
  return 'other';
}

/** The position can never be resumed from (a token not found counts: see `decideHistoryLost`). */
export function isHistoryLost(error: unknown): boolean {
  return classifyOpenError(error) !== 'other';
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

export type HistoryLostVerdict =
  { action: 'fail'; reason: string } | { action: 'restart-from-now' } | null;

const logger = new Logger('ChangeStreamModule');

/**
 * Judges a broken stream: a stored value that is not a position, or a history-lost answer to
 * opening from a position, gets the `onHistoryLost` policy; anything else (null) is reopened.
 * Only the open is judged: the same errors mid-stream are a broken stream.
 */
export async function decideHistoryLost(
  error: unknown,
  atOpen: unknown,
  openedFromPosition: boolean,
  context: HistoryLostContext,
): Promise<HistoryLostVerdict> {
  const badValue = isInvalidStoredTokenError(error);
  if (!badValue && !(atOpen !== undefined && openedFromPosition && isHistoryLost(atOpen)))
    return null;
  const { key, plan, database, options } = context;
  const reason = badValue ? error.message : messages.historyLost(key, errorText(atOpen));
  const lost: HistoryLost = {
    key,
    connectionName: plan.connectionName,
    database,
    collection: plan.collection,
    reason,
    position: badValue ? null : context.position,
  };
  const action = await askPolicy(options.onHistoryLost, lost);
  context.emit({ type: 'history-lost', action, ...lost });
  if (action !== 'restart-from-now') return { action: 'fail', reason };
  logger.error(messages.historyLostRestart(key, errorText(badValue ? error : atOpen)));
  return { action: 'restart-from-now' };
}

/** A database stream's collections whose history fell off the oplog, for which `onHistoryLost` said `fail`: the stream fails with this message. */
export class CollectionsHistoryLostError extends Error {}

/**
 * Lets the collections of a database stream whose newest position fell off the oplog go, when the
 * stream itself can resume (see `databaseStreamStart`) at `startsAt`: `onHistoryLost` is asked for
 * each, then a `history-lost` event is emitted for each with the action taken. `restart-from-now`
 * from all: each goes on from the stream's start, logged as data loss for it. `fail` from any: the
 * action is `fail` for all, and this throws `CollectionsHistoryLostError` naming those that said
 * it, before anything is stored.
 */
export async function letFellOffCollectionsGo(
  fellOff: readonly FellOffCollection[],
  oplogOldest: mongo.Timestamp,
  startsAt: mongo.Timestamp,
  context: Omit<HistoryLostContext, 'position'>,
): Promise<void> {
  const { key, plan, database, options } = context;
  const failed: Parameters<typeof messages.collectionsHistoryLostFailed>[1] = [];
  const asked: HistoryLost[] = [];
  for (const { collection, key: recordKey, position, time, streamCovers } of fellOff) {
    const lost: HistoryLost = {
      key,
      connectionName: plan.connectionName,
      database,
      collection,
      reason: messages.collectionHistoryFellOff(
        key,
        collection,
        recordKey,
        clusterTime(time),
        clusterTime(oplogOldest),
        clusterTime(startsAt),
      ),
      position,
      startsAt,
    };
    asked.push(lost);
    if ((await askPolicy(options.onHistoryLost, lost)) !== 'restart-from-now')
      failed.push({
        collection,
        at: `${clusterTime(time)} under ${recordKey}`,
        // Deleting its own key makes it new to the stream, unless the stream's record covers it too (an older retired time).
        ownKey: recordKey === key || streamCovers ? null : recordKey,
      });
  }
  // Only now is the action known: one `fail` fails the stream, and no collection is let go.
  const action: HistoryLostAction = failed.length > 0 ? 'fail' : 'restart-from-now';
  for (const lost of asked) context.emit({ type: 'history-lost', action, ...lost });
  if (failed.length > 0)
    throw new CollectionsHistoryLostError(messages.collectionsHistoryLostFailed(key, failed));
  for (const lost of asked)
    logger.error(
      messages.collectionHistoryLostRestart(
        key,
        lost.collection,
        lost.reason,
        clusterTime(startsAt),
      ),
    );
}

function clusterTime(time: mongo.Timestamp): string {
  return `cluster time ${time.t}.${time.i}`;
}

/** The policy's answer; a callback that throws counts as `fail`. */
async function askPolicy(
  policy: ResolvedChangeStreamOptions['onHistoryLost'],
  lost: HistoryLost,
): Promise<HistoryLostAction> {
  try {
    return typeof policy === 'function' ? await policy(lost) : policy;
  } catch (callbackError) {
    logger.error(
      `onHistoryLost callback threw: ${errorText(callbackError)}`,
      (callbackError as Error)?.stack,
    );
    return 'fail';
  }
}
