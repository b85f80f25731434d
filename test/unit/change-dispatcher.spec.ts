import { afterAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import {
  type ChangeContext,
  HandlerFailedError,
  InMemoryDeadLetterStore,
  type OnChangeOptions,
} from '../../lib/index.js';
import type { DeadLetter } from '../../lib/interfaces/dead-letter.interface.js';
import type { HandlerFailurePolicy } from '../../lib/interfaces/failure-policies.interface.js';
import { deadLetterId } from '../../lib/dead-letter/dead-letter-id.js';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import {
  ChangeDispatcher,
  type DispatchOutcome,
  type DispatchSettings,
  type EventInFlight,
} from '../../lib/stream/change-dispatcher.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { CapturingLogger } from '../fixtures/capturing-logger.js';
import { insert, lifecycle, update } from '../fixtures/fake-change-stream.js';

const KEY = 'cs:{svc:shop:orders}';
const logs = new CapturingLogger();
Logger.overrideLogger(logs);
beforeEach(() => {
  logs.lines.splice(0);
});
afterAll(() => Logger.overrideLogger(false));

type Run = (change: ChangeEvent, context: ChangeContext) => unknown;

/** A dispatcher over handlers given as functions; every call is recorded as `name#attempt`. */
function dispatcher(
  handlers: Record<string, Run | { run: Run; options: OnChangeOptions }>,
  settings: Partial<DispatchSettings> = {},
) {
  const calls: string[] = [];
  const contexts: ChangeContext[] = [];
  const deadLetters = new InMemoryDeadLetterStore();
  const list = Object.entries(handlers).map(([name, spec]): ChangeHandler => {
    const { run, options } = typeof spec === 'function' ? { run: spec, options: {} } : spec;
    return {
      name,
      collection: 'orders',
      connectionName: 'default',
      options,
      invoke: (change, context) => {
        calls.push(`${name}#${(context as ChangeContext).attempt}`);
        contexts.push(context as ChangeContext);
        return run(change as ChangeEvent, context as ChangeContext);
      },
    };
  });
  const subject = new ChangeDispatcher(
    list,
    {
      retries: 0,
      initialDelayMs: 1,
      maxDelayMs: 1,
      onFailure: 'stop',
      deadLetters,
      hasUserPipeline: false,
      ...settings,
    },
    { consumer: 'svc', connectionName: 'default', database: 'shop', collection: 'orders' },
    KEY,
  );
  return { subject, calls, contexts, deadLetters };
}

const flight = (change: ChangeEvent): EventInFlight => ({
  change,
  startedAt: Date.now(),
  pending: new Set<string>(),
  abort: new AbortController(),
  attempts: null,
});
const scope = (
  overrides: { stopping?: AbortSignal; mayDispatch?: () => boolean; fence?: number | null } = {},
) => ({ stopping: new AbortController().signal, fence: null, ...overrides });
const fail = (message: string) => () => {
  throw new Error(message);
};
const failuresThen =
  (failures: number): Run =>
  (_change, context) => {
    if (context.attempt <= failures) throw new Error(`attempt ${context.attempt} failed`);
  };

describe('ChangeDispatcher: which handlers get an event', () => {
  it('a handler gets the operation types it lists, and every type when it lists none', async () => {
    const { subject, calls } = dispatcher({
      'L.inserts': { run: () => undefined, options: { operationTypes: ['insert'] } },
      'L.all': () => undefined,
    });
    await subject.dispatch(flight(insert(1)), scope());
    await subject.dispatch(flight(update(2, 1)), scope());
    expect(calls).toEqual(['L.inserts#1', 'L.all#1', 'L.all#1']);
  });

  it('lifecycle events reach a handler that lists no types only when the stream has no pipeline of its own', async () => {
    const plain = dispatcher({ 'L.all': () => undefined });
    await plain.subject.dispatch(flight(lifecycle(1, 'drop')), scope());
    expect(plain.calls).toEqual(['L.all#1']);
    const piped = dispatcher(
      {
        'L.all': () => undefined,
        'L.drops': { run: () => undefined, options: { operationTypes: ['drop'] } },
      },
      { hasUserPipeline: true },
    );
    await piped.subject.dispatch(flight(lifecycle(1, 'drop')), scope());
    expect(piped.calls).toEqual(['L.drops#1']);
  });

  it('an event no handler wants succeeds at once', () => {
    const { subject, calls } = dispatcher({
      'L.inserts': { run: () => undefined, options: { operationTypes: ['insert'] } },
    });
    expect(subject.dispatch(flight(update(1, 1)), scope())).toEqual({ ok: true });
    expect(calls).toEqual([]);
  });
});

describe('ChangeDispatcher: calls', () => {
  it('gives the outcome synchronously when the handler returns no promise, and leaves nothing pending', () => {
    const { subject } = dispatcher({ 'L.sync': () => undefined });
    const event = flight(insert(1));
    expect(subject.dispatch(event, scope(), (outcome) => ['then', outcome])).toEqual([
      'then',
      { ok: true },
    ]);
    expect(event.pending.size).toBe(0);
  });

  it("gives each call the stream's context, the handler's name, the attempt, the event's signal and the scope's fence", async () => {
    const { subject, contexts } = dispatcher({ 'L.on': () => undefined });
    const event = flight(insert(1));
    await subject.dispatch(event, scope({ fence: 9 }));
    expect(contexts).toEqual([
      {
        consumer: 'svc',
        connectionName: 'default',
        database: 'shop',
        collection: 'orders',
        handler: 'L.on',
        attempt: 1,
        signal: event.abort.signal,
        fence: 9,
      },
    ]);
  });

  it('a thenable whose then throws is a handler failure, not a dispatch bug', async () => {
    const thenable = {
      then: () => {
        throw new Error('bad thenable');
      },
    };
    const { subject } = dispatcher({ 'L.on': () => thenable });
    const outcome = (await subject.dispatch(flight(insert(1)), scope())) as DispatchOutcome;
    expect(outcome.ok).toBe(false);
    expect((outcome as { error: HandlerFailedError }).error.message).toContain('bad thenable');
  });

  it('runs every interested handler; the event fails when one of them does, with that failure', async () => {
    const { subject, calls } = dispatcher({ 'L.ok': () => undefined, 'L.bad': fail('poison') });
    const outcome = (await subject.dispatch(flight(insert(1)), scope())) as {
      ok: false;
      error: HandlerFailedError;
    };
    expect(calls.sort()).toEqual(['L.bad#1', 'L.ok#1']);
    expect(outcome.ok).toBe(false);
    expect(outcome.error.message).toContain('L.bad');
  });

  it('invokeOnce calls one handler once, outside any stream (dead-letter replay)', async () => {
    const seen: ChangeContext[] = [];
    const handler: ChangeHandler = {
      name: 'L.on',
      collection: 'orders',
      connectionName: 'default',
      options: {},
      invoke: (_change, context) => seen.push(context as ChangeContext),
    };
    await ChangeDispatcher.invokeOnce(
      handler,
      insert(1),
      { consumer: 'svc', connectionName: 'default', database: 'shop', collection: 'orders' },
      4,
    );
    expect(seen).toEqual([expect.objectContaining({ handler: 'L.on', attempt: 1, fence: 4 })]);
  });
});

describe('ChangeDispatcher: retries and failure policies', () => {
  it('retries a failing handler (module setting, or the handler its own) and succeeds on a later attempt', async () => {
    const { subject, calls } = dispatcher(
      { 'L.module': failuresThen(2), 'L.own': { run: failuresThen(3), options: { retries: 3 } } },
      { retries: 2 },
    );
    expect(await subject.dispatch(flight(insert(1)), scope())).toEqual({ ok: true });
    expect(calls.sort()).toEqual([
      'L.module#1',
      'L.module#2',
      'L.module#3',
      'L.own#1',
      'L.own#2',
      'L.own#3',
      'L.own#4',
    ]);
    expect(logs.messages('warn').filter((m) => m.includes('attempt'))).toHaveLength(5);
  });

  it("'stop': after the last retry the event fails with HandlerFailedError naming handler, event and stream, its cause the handler's error", async () => {
    const { subject, calls } = dispatcher({ 'L.on': fail('poison') }, { retries: 1 });
    const outcome = (await subject.dispatch(flight(insert(1)), scope())) as {
      ok: false;
      error: HandlerFailedError;
    };
    expect(calls).toEqual(['L.on#1', 'L.on#2']);
    expect(outcome.error).toBeInstanceOf(HandlerFailedError);
    expect(outcome.error.message).toMatch(
      /^Handler L\.on failed on insert of document 1 \(token \{"_data":"t1"\}\) of cs:\{svc:shop:orders\} after 2 attempt\(s\): .*poison/,
    );
    expect((outcome.error.cause as Error).message).toBe('poison');
    expect(logs.messages('error')).toEqual([outcome.error.message]);
  });

  it("'dead-letter': the event succeeds once its letter is stored, under the id of (consumer, stream, event, handler)", async () => {
    const lettered: string[] = [];
    const { subject, deadLetters } = dispatcher(
      { 'L.on': fail('poison') },
      {
        retries: 1,
        onFailure: 'dead-letter',
        onDeadLetter: (id, handler) => lettered.push(`${handler}:${id}`),
      },
    );
    expect(await subject.dispatch(flight(insert(1)), scope())).toEqual({ ok: true });
    const id = deadLetterId('svc', KEY, insert(1)._id, 'L.on');
    const [letter] = (await deadLetters.list()) as DeadLetter[];
    expect(letter).toMatchObject({
      id,
      streamKey: KEY,
      connectionName: 'default',
      database: 'shop',
      collection: 'orders',
      handler: 'L.on',
      change: insert(1),
      attempts: 2,
      error: { name: 'Error', message: 'poison' },
    });
    expect(lettered).toEqual([`L.on:${id}`]);
  });

  it("'dead-letter' keeps trying to store the letter while the store fails, and acknowledges only once it is stored", async () => {
    const { subject, deadLetters } = dispatcher(
      { 'L.on': fail('poison') },
      { onFailure: 'dead-letter' },
    );
    const add = deadLetters.add.bind(deadLetters);
    let refusals = 2;
    deadLetters.add = async (letter) => {
      if (refusals-- > 0) throw new Error('store down');
      return add(letter);
    };
    expect(await subject.dispatch(flight(insert(1)), scope())).toEqual({ ok: true });
    expect(await deadLetters.list()).toHaveLength(1);
    expect(logs.messages('warn').filter((m) => m.includes('store down'))).toHaveLength(2);
  });

  it('a callback policy gets the change, the error and the context; the event succeeds when it does and fails when it throws', async () => {
    const received: unknown[] = [];
    const recorder: HandlerFailurePolicy = async ({ change, error, context }) =>
      void received.push([change, (error as Error).message, context.attempt]);
    const recorded = dispatcher({ 'L.on': fail('poison') }, { onFailure: recorder });
    expect(await recorded.subject.dispatch(flight(insert(1)), scope())).toEqual({ ok: true });
    expect(received).toEqual([[insert(1), 'poison', 1]]);

    const throwing = dispatcher({ 'L.on': fail('poison') }, { onFailure: fail('callback broke') });
    const outcome = (await throwing.subject.dispatch(flight(insert(1)), scope())) as {
      ok: false;
      error: HandlerFailedError;
    };
    expect(outcome.error.message).toMatch(
      /^The onFailure callback for L\.on threw on insert of document 1 .*callback broke/,
    );
    expect((outcome.error.cause as Error).message).toBe('callback broke');
  });

  it('once shutdown began, a failure is neither retried nor recorded: the event is only not acknowledged', async () => {
    const stopping = new AbortController();
    const { subject, calls, deadLetters } = dispatcher(
      {
        'L.on': () => {
          stopping.abort();
          throw new Error('poison');
        },
      },
      { retries: 3, onFailure: 'dead-letter' },
    );
    expect(await subject.dispatch(flight(insert(1)), scope({ stopping: stopping.signal }))).toEqual(
      { ok: false, aborted: true },
    );
    expect(calls).toEqual(['L.on#1']);
    expect(await deadLetters.list()).toEqual([]);
  });

  it('a retry, or the policy, does not run once this instance may no longer dispatch (lease lost)', async () => {
    let mayDispatch = true;
    const { subject, calls, deadLetters } = dispatcher(
      {
        'L.on': () => {
          mayDispatch = false;
          throw new Error('poison');
        },
      },
      { retries: 3, onFailure: 'dead-letter' },
    );
    expect(
      await subject.dispatch(flight(insert(1)), scope({ mayDispatch: () => mayDispatch })),
    ).toEqual({ ok: false, aborted: true });
    expect(calls).toEqual(['L.on#1']);
    expect(await deadLetters.list()).toEqual([]);
  });
});
