import mongoose from 'mongoose';
import type { BackfillEvent } from '../interfaces/backfill.interface.js';
import type { ChangeEvent } from '../common/change-event.js';

const { EJSON } = mongoose.mongo.BSON;

/** The handlers a backfill event is for: kept off the event's enumerable fields (the handler sees the public shape). */
const TARGETS = Symbol('backfill targets');

type Targeted = BackfillEvent & { [TARGETS]?: ReadonlySet<string> };

/** Per set of targets, the class of its events: the targets sit on its prototype, not on each event. */
const classes = new WeakMap<ReadonlySet<string>, new (...args: EventArgs) => BackfillEvent>();
type EventArgs = [
  document: { _id: unknown },
  ns: { db: string; coll: string },
  tag: Readonly<{ run: string }>,
];

function classFor(targets: ReadonlySet<string>): new (...args: EventArgs) => BackfillEvent {
  let made = classes.get(targets);
  if (!made) {
    made = class implements BackfillEvent {
      readonly operationType = 'backfill' as const;
      readonly documentKey: { _id: unknown };
      constructor(
        readonly fullDocument: { _id: unknown },
        readonly ns: { db: string; coll: string },
        readonly backfill: Readonly<{ run: string }>,
      ) {
        this.documentKey = { _id: fullDocument._id };
      }
    };
    Object.defineProperty(made.prototype, TARGETS, { value: targets });
    classes.set(targets, made);
  }
  return made;
}

/** A backfill event for `targets`, typed as a stream event so it travels the scheduler's path; `tag` is its run's `{ run }`, shared by its events. */
export function backfillEvent(
  document: { _id: unknown } & Record<string, unknown>,
  ns: { db: string; coll: string },
  tag: Readonly<{ run: string }>,
  targets: ReadonlySet<string>,
): ChangeEvent {
  const Event = classFor(targets);
  return new Event(document, ns, tag) as unknown as ChangeEvent;
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
