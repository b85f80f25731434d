import { afterEach, describe, expect, it } from '@jest/globals';
import {
  type ChangeContext,
  InMemoryDeadLetterStore,
  InMemoryPositionStore,
  type StreamPosition,
} from '../../lib/index.js';
import type { HandlerFailedError } from '../../lib/change-stream.errors.js';
import type { Checkpointer } from '../../lib/checkpoint/checkpointer.js';
import type { HandlerFailurePolicy } from '../../lib/interfaces/failure-policies.interface.js';
import { ChangeDispatcher, type DispatchOutcome } from '../../lib/stream/change-dispatcher.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { EventScheduler } from '../../lib/stream/event-scheduler.js';
import type { SchedulerDeps } from '../../lib/stream/scheduler-deps.js';
import { StuckHandlerWatch } from '../../lib/stream/stuck-handler-watch.js';
import { insert, update } from '../fixtures/fake-change-stream.js';
import { FencedMemoryStore } from '../fixtures/memory-lease-store.js';
import { deferred, KEY, logs, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

const tokenNumber = (position: StreamPosition | null) =>
  position && 'token' in position
    ? Number(String((position.token as { _data: string })._data).slice(1))
    : 0;

/** A scheduler and dispatcher for one stream, as `CollectionStream` wires them, over handlers given as functions. */
function scheduler(
  handlers: Record<string, (context: ChangeContext) => unknown>,
  {
    onFailure = 'stop',
    retries = 0,
    mayDispatch,
    signalPerAttempt = false,
  }: {
    onFailure?: HandlerFailurePolicy;
    retries?: number;
    mayDispatch?: () => boolean;
    signalPerAttempt?: boolean;
  } = {},
) {
  const acked: unknown[] = [];
  const failures: HandlerFailedError[] = [];
  const deadLetters = new InMemoryDeadLetterStore();
  const dispatcher = new ChangeDispatcher(
    Object.entries(handlers).map(([name, run]): ChangeHandler => ({
      name,
      collection: 'orders',
      connectionName: 'default',
      options: {},
      invoke: (_change, context) => run(context as ChangeContext),
    })),
    { retries, initialDelayMs: 20, maxDelayMs: 20, onFailure, deadLetters, hasUserPipeline: false },
    { consumer: 'svc', connectionName: 'default', database: 'db', collection: 'orders' },
    KEY,
  );
  const deps: SchedulerDeps = {
    concurrency: 4,
    signalPerAttempt,
    dispatcher,
    checkpointer: { ack: (token: unknown) => acked.push(token) } as unknown as Checkpointer,
    stopping: new AbortController().signal,
    mayDispatch,
    fence: 7,
    onHandled: () => undefined,
    onFailed: (error) => failures.push(error),
  };
  return { scheduler: new EventScheduler(deps), acked, failures, deadLetters };
}

const outcomeOf = (run: DispatchOutcome | Promise<DispatchOutcome>) => Promise.resolve(run);

describe('retries and failure policies start only under a confirmed lease', () => {
  it('a retry due after the lease lapsed (a pause) does not start, and the event is not acknowledged', async () => {
    let leaseValid = true;
    let calls = 0;
    const {
      scheduler: events,
      acked,
      failures,
    } = scheduler(
      {
        'Listener.onOrder': () => {
          calls++;
          leaseValid = false; // the process paused past its lease during the backoff
          throw new Error('boom');
        },
      },
      { retries: 3, mayDispatch: () => leaseValid },
    );
    const outcome = await outcomeOf(events.runAlone(insert(1), true));
    expect(outcome).toEqual({ ok: false, aborted: true });
    expect(calls).toBe(1);
    expect(acked).toEqual([]);
    expect(failures).toEqual([]);
  });

  it.each([
    ['a failure callback', 'callback'],
    ['dead-lettering', 'dead-letter'],
  ])(
    '%s does not run once the lease lapsed; the event stays unacknowledged',
    async (_name, kind) => {
      let leaseValid = true;
      const recorded: unknown[] = [];
      const onFailure: HandlerFailurePolicy =
        kind === 'callback' ? async ({ change }) => void recorded.push(change) : 'dead-letter';
      const {
        scheduler: events,
        acked,
        deadLetters,
      } = scheduler(
        {
          'Listener.onOrder': () => {
            leaseValid = false;
            throw new Error('boom');
          },
        },
        { onFailure, mayDispatch: () => leaseValid },
      );
      const outcome = await outcomeOf(events.runAlone(insert(1), true));
      expect(outcome).toEqual({ ok: false, aborted: true });
      expect(recorded).toEqual([]);
      expect(await deadLetters.list()).toEqual([]);
      expect(acked).toEqual([]);
    },
  );

  it('under a lease that stays valid, retries and the policy run as before', async () => {
    let calls = 0;
    const {
      scheduler: events,
      deadLetters,
      acked,
    } = scheduler(
      {
        'Listener.onOrder': () => {
          calls++;
          throw new Error('boom');
        },
      },
      { retries: 2, onFailure: 'dead-letter', mayDispatch: () => true },
    );
    expect(await outcomeOf(events.runAlone(insert(1), true))).toEqual({ ok: true });
    expect(calls).toBe(3);
    expect((await deadLetters.list()).map((l) => l.attempts)).toEqual([3]);
    expect(acked).toHaveLength(1);
  });
});

describe("a signal per handler call (onHandlerTimeout: 'abort')", () => {
  it('a retry after a timed-out call starts with a fresh signal, and the timed-out call counted as one failed attempt', async () => {
    const signals: boolean[] = [];
    const { stream, seen, tokens } = setup({
      options: {
        handlerTimeoutMs: 40,
        onHandlerTimeout: 'abort',
        handlerRetry: { retries: 1, initialDelayMs: 1, maxDelayMs: 1 },
      },
      scripts: [{ getMores: [[insert(1)]] }],
      handle: async (_id, context) => {
        signals.push(context.signal.aborted);
        if (context.attempt === 1) {
          await new Promise((resolve) =>
            context.signal.addEventListener('abort', resolve, { once: true }),
          );
          throw context.signal.reason;
        }
      },
    });
    stream.start();
    await eventually('handled on the retry', () => seen.includes(1));
    expect(signals).toEqual([false, false]);
    await eventually('position stored', async () => tokenNumber(await tokens.load(KEY)) === 1);
    expect(
      logs
        .messages('warn')
        .some((m) => m.includes('attempt 1') && m.includes('context.signal was aborted')),
    ).toBe(true);
  });

  it("another handler of the event is not aborted by one handler's timeout", async () => {
    const slow = deferred();
    const retried: boolean[] = [];
    const { scheduler: events } = scheduler(
      {
        'Listener.slow': async (context) => {
          if (context.attempt > 1) return;
          await Promise.race([
            slow.promise,
            new Promise((resolve) =>
              context.signal.addEventListener('abort', resolve, { once: true }),
            ),
          ]);
          if (context.signal.aborted) throw new Error('timed out');
        },
        'Listener.flaky': (context) => {
          if (context.attempt === 1) throw new Error('flaky');
          retried.push(context.signal.aborted);
        },
      },
      { retries: 1, signalPerAttempt: true, onFailure: async () => undefined },
    );
    const watch = new StuckHandlerWatch(
      KEY,
      { handlerTimeoutMs: 10, onHandlerTimeout: 'abort' },
      () => events.events,
      () => undefined,
    );
    const outcome = outcomeOf(events.runAlone(insert(1), true));
    // Listener.slow has run past the timeout; Listener.flaky waits for its retry (20 ms backoff).
    watch.check(Date.now() + 10);
    expect(await outcome).toEqual({ ok: true });
    expect(retried).toEqual([false]);
  });

  it("each call's own signal is still aborted by a lost lease or a shutdown past its timeout (abortInFlight)", async () => {
    const signals: AbortSignal[] = [];
    const untilAborted = (context: ChangeContext) => {
      signals.push(context.signal);
      return new Promise((resolve) =>
        context.signal.addEventListener('abort', resolve, { once: true }),
      );
    };
    const { scheduler: events } = scheduler(
      { 'Listener.a': untilAborted, 'Listener.b': untilAborted },
      { signalPerAttempt: true },
    );
    const outcome = outcomeOf(events.runAlone(insert(1), true));
    await eventually('both calls running', () => signals.length === 2);
    expect(signals[0]).not.toBe(signals[1]);
    events.abortInFlight();
    await outcome;
    expect(signals.map((signal) => signal.aborted)).toEqual([true, true]);
  });
});

describe('context.fence', () => {
  it("is the lease's fencing number under leases", async () => {
    const fences: Array<number | null> = [];
    const tokens = new FencedMemoryStore();
    const { stream, seen } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1), insert(2)]] }],
      handle: (_id, context) => void fences.push(context.fence),
    });
    stream.start();
    await eventually('both handled', () => seen.length === 2);
    expect(stream.status().fence).toBe(1);
    expect(fences).toEqual([1, 1]);
  });

  it('is null without leases', async () => {
    const fences: Array<number | null> = [];
    const { stream, seen } = setup({
      scripts: [{ getMores: [[insert(1)]] }],
      handle: (_id, context) => void fences.push(context.fence),
    });
    stream.start();
    await eventually('handled', () => seen.length === 1);
    expect(fences).toEqual([null]);
  });

  it('is given to handlers by the scheduler as its tenure has it', async () => {
    const fences: Array<number | null> = [];
    const { scheduler: events } = scheduler({
      'Listener.onOrder': (context) => void fences.push(context.fence),
    });
    await outcomeOf(events.runAlone(insert(1), true));
    expect(fences).toEqual([7]);
  });
});

describe('a stuck document holds back only its own events', () => {
  it('events queued behind a busy document take no slot: the others are handled while it is stuck', async () => {
    const stuck = deferred();
    const others: number[] = [];
    const stuckDocument = [
      insert(1, 1000),
      ...Array.from({ length: 10 }, (_, i) => update(i + 2, 1000)),
    ];
    const rest = Array.from({ length: 100 }, (_, i) => insert(i + 12));
    const { stream } = setup({
      // 2 × maxEvents = 200: room for all 111 events past the stored position.
      options: { concurrency: 4, checkpoint: { maxEvents: 100, intervalMs: 10 } },
      scripts: [{ getMores: [[...stuckDocument, ...rest]] }],
      handle: async (id) => {
        if (id === 1000) await stuck.promise;
        else others.push(id);
      },
    });
    stream.start();
    await eventually(
      'the 100 other documents handled while document 1000 is stuck',
      () => others.length === 100,
      10_000,
    );
    expect(stream.status().inFlightEvents).toBe(11); // the stuck document's events, still unacknowledged
    stuck.resolve();
    await eventually('all handled', () => stream.status().eventsHandled === 111);
  });

  it('the unsaved-events bound still stops reading behind a stuck document', async () => {
    const stuck = deferred();
    let released = false;
    const handledWhileStuck: number[] = [];
    const { stream } = setup({
      options: { concurrency: 4, checkpoint: { maxEvents: 10, intervalMs: 10 } },
      scripts: [
        { getMores: [[insert(1, 1000), ...Array.from({ length: 60 }, (_, i) => insert(i + 2))]] },
      ],
      handle: async (id, _context, change) => {
        if (id === 1000) await stuck.promise;
        else if (!released) handledWhileStuck.push(tokenNumber({ token: change._id }));
      },
    });
    stream.start();
    // 2 × maxEvents = 20 events may be dispatched past the stored position (nothing stored: event 1 is stuck).
    await eventually('events 2 to 20 handled', () => handledWhileStuck.length === 19);
    released = true;
    stuck.resolve();
    await eventually('all handled', () => stream.status().eventsHandled === 61);
    expect(Math.max(...handledWhileStuck)).toBe(20); // nothing past the bound started before event 1 finished
  });
});

describe('a failed stream reports its first failure', () => {
  it("keeps the failing handler's error in lastError and the log while other events drain (concurrency > 1)", async () => {
    const slow = deferred();
    const tokens = new InMemoryPositionStore();
    const { stream } = setup({
      tokens,
      // A 40 ms handler timeout: the stuck-handler watch looks every 10 ms while the slow event drains.
      options: { concurrency: 4, handlerTimeoutMs: 40 },
      scripts: [{ getMores: [[insert(1), insert(2)]] }],
      handle: async (id) => {
        if (id === 1) await slow.promise;
        if (id === 2) throw new Error('poison 2');
      },
    });
    stream.start();
    await eventually('event 2 failed', () =>
      logs.messages('error').some((m) => m.includes('poison 2')),
    );
    // The watch reports event 1 (the stream shows degraded), and clears it once event 1 finishes.
    await eventually('event 1 reported stuck', () =>
      logs.messages('warn').some((m) => m.includes('has been running')),
    );
    slow.resolve();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(stream.status().lastError).toContain('poison 2');
    const failedLines = logs.messages('error').filter((m) => m.includes(' failed: '));
    expect(
      failedLines.filter((m) => m.startsWith(`Stream ${KEY} failed: `) && m.includes('poison 2')),
    ).toHaveLength(1);
  });
});
