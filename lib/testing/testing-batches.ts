import type { mongo } from 'mongoose';
import type { ChangeHandler } from '../stream/change-handler.js';
import type { DispatchOutcome } from '../stream/change-dispatcher.js';
import type { DispatchScope, EventInFlight } from '../stream/event-in-flight.js';
import { hasDocumentKey } from '../common/document-key.js';
import type { TestingStream } from './testing-streams.js';

type ChangeEvent = mongo.ChangeStreamDocument;

const OK: DispatchOutcome = { ok: true };
const ABORTED: DispatchOutcome = { ok: false, aborted: true };

/**
 * How the testing module hands events to a stream with `@OnChangeBatch` handlers: the events of
 * one `emit`/`emitMany` call are one run of the stream. Each per-event handler gets them one at a
 * time, as ever; each batch handler gets those it wants in batches cut at its `maxSize` and around
 * an event without a document (alone), through the production batch dispatch (retries, bisection,
 * failure policy per event). `maxWaitMs` does not apply: a test's call is the batch's end.
 * Returns each event's combined outcome, in order.
 */
export async function dispatchWithBatches(
  stream: TestingStream,
  changes: ChangeEvent[],
  scope: DispatchScope,
): Promise<DispatchOutcome[]> {
  const flights: EventInFlight[] = changes.map((change) => ({
    change,
    startedAt: Date.now(),
    pending: new Set<string>(),
    abort: stream.abort,
    attempts: null,
  }));
  const outcomes = flights.map(() => OK);
  // After a per-event handler failed for good (`'stop'`), nothing later is dispatched.
  let read = flights.length;
  for (let i = 0; i < read; i++) {
    if (stream.dispatcher.hasPerEventHandlers(changes[i]))
      outcomes[i] = await stream.dispatcher.dispatch(flights[i], scope);
    if ('error' in outcomes[i]) read = i + 1;
  }
  for (let i = read; i < flights.length; i++) outcomes[i] = ABORTED;
  for (const [handler, batches] of batchesOf(flights.slice(0, read), stream)) {
    for (const batch of batches) {
      const results = await stream.dispatcher.dispatchBatch(handler, batch, scope);
      batch.forEach((flight, j) => {
        const i = flights.indexOf(flight);
        outcomes[i] = worse(outcomes[i], results[j]);
      });
    }
  }
  return outcomes;
}

/** Each batch handler's batches of `flights`: the ones it wants, cut at `maxSize` and around an event without a document. */
function batchesOf(
  flights: EventInFlight[],
  stream: TestingStream,
): Map<ChangeHandler, EventInFlight[][]> {
  const batches = new Map<ChangeHandler, EventInFlight[][]>();
  const open = new Map<ChangeHandler, EventInFlight[]>();
  const cut = (handler: ChangeHandler) => {
    const current = open.get(handler);
    if (current && current.length > 0) batches.get(handler)!.push(current);
    open.set(handler, []);
  };
  for (const flight of flights) {
    for (const handler of stream.dispatcher.batchHandlersFor(flight.change)) {
      if (!batches.has(handler)) batches.set(handler, []);
      if (!hasDocumentKey(flight.change)) {
        cut(handler);
        batches.get(handler)!.push([flight]);
        continue;
      }
      const current = open.get(handler) ?? [];
      current.push(flight);
      open.set(handler, current);
      if (current.length >= handler.batch!.maxSize) cut(handler);
    }
  }
  for (const handler of batches.keys()) cut(handler);
  return batches;
}

function worse(a: DispatchOutcome, b: DispatchOutcome): DispatchOutcome {
  if (a.ok) return b;
  if (b.ok || 'aborted' in a) return a;
  return 'aborted' in b ? b : a;
}
