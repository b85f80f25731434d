import mongoose from 'mongoose';
import type { BackfillEvent } from '../interfaces/backfill.interface.js';
import type { ChangeEvent } from '../stream/change-cursor.js';

const { EJSON } = mongoose.mongo.BSON;

/** The handlers a backfill event is for: kept off the event's enumerable fields (the handler sees the public shape). */
const TARGETS = Symbol('backfill targets');

type Targeted = BackfillEvent & { [TARGETS]?: ReadonlySet<string> };

/** A backfill event for `targets`, typed as a stream event so it travels the scheduler's path. */
export function backfillEvent(
  document: { _id: unknown } & Record<string, unknown>,
  ns: { db: string; coll: string },
  run: string,
  targets: ReadonlySet<string>,
): ChangeEvent {
  const event: Targeted = {
    operationType: 'backfill',
    documentKey: { _id: document._id },
    fullDocument: document,
    ns,
    backfill: { run },
  };
  Object.defineProperty(event, TARGETS, { value: targets, enumerable: false });
  return event as unknown as ChangeEvent;
}

export function isBackfillEvent(change: unknown): change is BackfillEvent {
  return (change as { operationType?: unknown } | null)?.operationType === 'backfill';
}

/** The handlers a backfill event goes to (an event rebuilt elsewhere, e.g. a replayed dead letter, has none). */
export function backfillTargets(change: unknown): ReadonlySet<string> | undefined {
  return (change as Targeted)[TARGETS];
}

/**
 * What identifies an event in logs, traces and dead-letter ids: its resume token, or for a
 * backfill event (which has none) its run and document.
 */
export function eventIdentity(change: ChangeEvent): unknown {
  const event: unknown = change;
  if (!isBackfillEvent(event)) return change._id;
  return { backfill: event.backfill.run, _id: event.documentKey._id };
}

/** `eventIdentity` as text. */
export function eventIdText(change: ChangeEvent): string {
  const id = eventIdentity(change);
  return String((id as { _data?: unknown })?._data ?? EJSON.stringify(id, { relaxed: false }));
}
