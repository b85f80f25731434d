import { messages } from '../change-stream.messages.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type { ResumeToken } from '../interfaces/position-store.interface.js';
import type { ChangeCursor, ChangeEvent } from '../common/change-event.js';
import type { DispatchOutcome, MaybePromise } from './change-dispatcher.js';
import type { EventScheduler } from './event-scheduler.js';
import type { LagTracker } from './lag-tracker.js';

/** How a read of one cursor ended (a broken stream throws instead). */
export type ReadEnd =
  | { kind: 'stopped' }
  | { kind: 'failed' }
  | { kind: 'invalidated'; token: ResumeToken }
  /** Idle, nothing in flight, and `reopenWhenIdle` asked for it. */
  | { kind: 'reopen' };

/**
 * The server refused to open the stream, or failed its first read (a history-lost answer may come
 * with the first getMore): the only moment an error can mean "this position is gone".
 */
export class StreamOpenError extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** The server closed the cursor without an error. */
export class StreamClosedError extends Error {}

export interface ReaderDeps {
  cursor: ChangeCursor;
  /** The stream was opened from a stored position (else it starts from now). */
  fromStoredPosition: boolean;
  /**
   * The invalidate token the cursor was opened after (`startAfter`). mongod answers with it as the
   * post-batch token until the oplog moves past it, and it is no resume point: never stored as idle.
   */
  notAPosition?: ResumeToken | null;
  checkpointer: Checkpointer;
  scheduler: EventScheduler;
  /** Resolves once every provider the handlers depend on finished `onApplicationBootstrap`. */
  handlersReady: Promise<void>;
  /** Stop reading (shutdown, lease lost, hand-over). */
  signal: AbortSignal;
  /** Told when events are read and when the stream caught up. */
  lag?: LagTracker;
  /** The server accepted the stream. */
  onOpen(): void;
  /** The first read after the open succeeded (an event, or a batch without one): the stream is past what broke it last time. */
  onProgress?(): void;
  /** Asked when the stream is idle with nothing in flight: true ends the read so the cursor is opened anew. */
  reopenWhenIdle?(): boolean;
}

/**
 * With batch handlers, the reader yields to the event loop once per this many events (a
 * `setImmediate`: a few µs). Without it, a reply the driver holds is read in one synchronous run
 * up to the run-ahead bound: the batches' handlers (their timers, their I/O), their
 * acknowledgements and the position saves wait until then, and reading then waits for them.
 */
const YIELD_AFTER_EVENTS = 64;

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Reads one cursor until stopped, a handler fails for good, or an invalidate event arrives.
 * Throws `StreamOpenError` if the open fails, any other error if the stream breaks later.
 */
export async function readChanges(deps: ReaderDeps): Promise<ReadEnd> {
  const { cursor, checkpointer, scheduler, signal } = deps;
  let change = await open(deps);
  if (change === undefined) return { kind: 'stopped' };
  let ready = false;
  let readSinceYield = 0;
  while (!signal.aborted && !scheduler.failed) {
    if (change === null) {
      if (cursor.closed) throw new StreamClosedError(messages.streamClosedByServer());
      if (scheduler.events.length === 0) {
        deps.lag?.idle();
        // Nothing in flight: the post-batch token keeps a quiet collection's position fresh.
        const idle = cursor.resumeToken;
        if (idle && !sameToken(idle, deps.notAPosition)) checkpointer.advanceIdle({ token: idle });
        if (checkpointer.position !== null && deps.reopenWhenIdle?.()) return { kind: 'reopen' };
      }
    } else {
      deps.lag?.read(change);
      if (!ready && !(ready = await untilReady(deps))) break;
      if (
        scheduler.sequential &&
        !scheduler.batching &&
        change.operationType !== 'invalidate' &&
        checkpointer.hasRunAheadRoom(scheduler.dispatchedSeq)
      ) {
        // The hot path one at a time (`dispatch` would add a callback per event): no waiting, no keys, no await for a handler that did not.
        const outcome = scheduler.runAlone(change, true);
        if (!(outcome instanceof Promise ? await outcome : outcome).ok) break;
      } else {
        const dispatched = dispatch(change, deps);
        const end = dispatched instanceof Promise ? await dispatched : dispatched;
        if (end) return end;
      }
      if (scheduler.batching && ++readSinceYield >= YIELD_AFTER_EVENTS) {
        // Let batches run beside reading: their handlers' timers and I/O, the acknowledgements and the saves these start.
        readSinceYield = 0;
        await yieldToEventLoop();
      }
    }
    if (signal.aborted || scheduler.failed) break;
    change = cursor.nextBuffered() ?? (await cursor.tryNext());
  }
  return ended(scheduler);
}

/**
 * The first read runs the aggregate and a getMore. The start position is stored as soon as the
 * aggregate answered, before any event is dispatched, so a crash cannot skip the first writes.
 * Returns the first read's result, or undefined if stopped meanwhile.
 */
async function open(deps: ReaderDeps): Promise<ChangeEvent | null | undefined> {
  const { cursor, checkpointer, signal } = deps;
  const first = cursor.tryNext();
  const settled = first.then(
    () => undefined,
    () => undefined,
  );
  await Promise.race([cursor.whenOpen(), settled]);
  if (!cursor.isOpen) {
    try {
      await first;
    } catch (error) {
      throw new StreamOpenError(error);
    }
  }
  if (!deps.fromStoredPosition && cursor.startPosition) {
    if (!(await checkpointer.persistStart(cursor.startPosition, signal))) {
      await settled;
      return undefined;
    }
  }
  deps.onOpen();
  try {
    const change = await first;
    deps.onProgress?.();
    return change;
  } catch (error) {
    throw new StreamOpenError(error);
  }
}

/**
 * Hands one event to the scheduler once there is room; returns how reading ends, if it does.
 * Synchronous unless it must wait (the bound, the slots) or the event runs alone and its handlers
 * did not settle at once. Waits give up at shutdown and when a handler fails for good.
 */
function dispatch(change: ChangeEvent, deps: ReaderDeps): MaybePromise<ReadEnd | null> {
  const { checkpointer, scheduler } = deps;
  if (
    !checkpointer.hasRunAheadRoom(scheduler.dispatchedSeq) ||
    (!scheduler.hasSlot() && scheduler.needsSlot(change))
  )
    return dispatchAfterWaiting(change, deps);
  const key = scheduler.keyOf(change);
  if (key !== null) {
    scheduler.submit(change, key);
    return null;
  }
  // One at a time, or an event without a document (lifecycle, DDL: alone). An invalidate is handled but never a resume point.
  const invalidate = change.operationType === 'invalidate';
  const outcome = scheduler.runAlone(change, !invalidate);
  const end = (settled: DispatchOutcome): ReadEnd | null => {
    if (!settled.ok) return ended(scheduler);
    return invalidate ? { kind: 'invalidated', token: change._id } : null;
  };
  return outcome instanceof Promise ? outcome.then(end) : end(outcome);
}

async function dispatchAfterWaiting(
  change: ChangeEvent,
  deps: ReaderDeps,
): Promise<ReadEnd | null> {
  const { checkpointer, scheduler } = deps;
  // Nothing more is read until there is room: pending batches would only wait out their maxWaitMs.
  if (!checkpointer.hasRunAheadRoom(scheduler.dispatchedSeq)) scheduler.flushBatches();
  if (
    !checkpointer.hasRunAheadRoom(scheduler.dispatchedSeq) &&
    !(await checkpointer.waitForRunAheadRoom(scheduler.dispatchedSeq, scheduler.halted))
  )
    return ended(scheduler);
  if (
    !scheduler.hasSlot() &&
    scheduler.needsSlot(change) &&
    !(await scheduler.waitForSlot(scheduler.halted))
  )
    return ended(scheduler);
  return dispatch(change, deps); // only the reader dispatches: the room and the slot are still there
}

const ended = (scheduler: EventScheduler): ReadEnd =>
  scheduler.failed ? { kind: 'failed' } : { kind: 'stopped' };

async function untilReady({ handlersReady, signal }: ReaderDeps): Promise<boolean> {
  if (signal.aborted) return false;
  let onAbort!: () => void;
  const aborted = new Promise<void>((resolve) =>
    signal.addEventListener('abort', (onAbort = () => resolve()), { once: true }),
  );
  await Promise.race([handlersReady, aborted]);
  signal.removeEventListener('abort', onAbort);
  return !signal.aborted;
}

function sameToken(a: unknown, b: ResumeToken | null | undefined): boolean {
  return b != null && (a === b || JSON.stringify(a) === JSON.stringify(b));
}
