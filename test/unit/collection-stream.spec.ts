import { afterEach, describe, expect, it } from '@jest/globals';
import {
  InMemoryDeadLetterStore,
  InMemoryPositionStore,
  type ResumeTokenStore,
} from '../../lib/index.js';
import {
  insert,
  lifecycle,
  networkError,
  type Reply,
  serverError,
  timestamp,
  token,
} from '../fixtures/fake-change-stream.js';
import {
  deferred,
  KEY,
  logs,
  positionOf,
  setup,
  stopAllStreams,
} from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

const at = (change: ReturnType<typeof insert>, t: number) =>
  ({ ...change, clusterTime: timestamp(t) }) as ReturnType<typeof insert>;
const stored = async (tokens: ResumeTokenStore) => JSON.stringify(await tokens.load(KEY));

describe('CollectionStream: start position', () => {
  it('stores the aggregate post-batch token before the first event of a busy collection is handled', async () => {
    const firstHandled = deferred();
    const { stream, tokens, seen } = setup({
      scripts: [
        {
          aggregate: { postBatchResumeToken: token('p0'), operationTime: timestamp(5) },
          getMores: [[insert(1), insert(2)]],
        },
      ],
      handle: (id) => (id === 1 ? firstHandled.promise : undefined),
    });
    stream.start();
    await eventually('handler of event 1 running', () => stream.status().inFlightEvents === 1);
    // A crash now must resume before event 1: the stored position is the stream's start.
    expect(await tokens.load(KEY)).toEqual(positionOf('p0'));
    firstHandled.resolve();
    await eventually('both handled', () => seen.length === 2);
  });

  it('stores the aggregate operationTime when the server gives no post-batch token, and the next start uses startAtOperationTime', async () => {
    const firstHandled = deferred();
    const tokens = new InMemoryPositionStore();
    const first = setup({
      tokens,
      scripts: [{ aggregate: { operationTime: timestamp(7) }, getMores: [[insert(1)]] }],
      handle: () => firstHandled.promise,
    });
    first.stream.start();
    await eventually(
      'handler of event 1 running',
      () => first.stream.status().inFlightEvents === 1,
    );
    expect(await tokens.load(KEY)).toEqual({ operationTime: timestamp(7) });
    // The process dies here: a new one resumes at that cluster time, so event 1 comes again.
    const second = setup({ tokens, scripts: [{ getMores: [[insert(1)]] }] });
    second.stream.start();
    await eventually('event 1 delivered again', () => second.seen.includes(1));
    expect(second.server.opens[0]).toMatchObject({ startAtOperationTime: timestamp(7) });
    expect(second.server.opens[0].resumeAfter).toBeUndefined();
    firstHandled.resolve();
  });

  it("a first batch that already holds events stores the first event's clusterTime, never the later operationTime", async () => {
    const firstHandled = deferred();
    const tokens = new InMemoryPositionStore();
    // Writes raced the open: the aggregate's batch holds events at t=5 and t=6, its operationTime is t=7.
    const batch = [at(insert(1), 5), at(insert(2), 6)];
    const first = setup({
      tokens,
      scripts: [{ aggregate: { batch, operationTime: timestamp(7) } }],
      handle: () => firstHandled.promise,
    });
    first.stream.start();
    await eventually(
      'handler of event 1 running',
      () => first.stream.status().inFlightEvents === 1,
    );
    expect(await tokens.load(KEY)).toEqual({ operationTime: timestamp(5) });
    // The process dies here: the next start begins at event 1's cluster time (inclusive), so events 1 and 2 come again.
    const second = setup({ tokens, scripts: [{ aggregate: { batch } }] });
    second.stream.start();
    await eventually('events 1 and 2 delivered again', () => second.seen.length === 2);
    expect(second.server.opens[0]).toMatchObject({ startAtOperationTime: timestamp(5) });
    firstHandled.resolve();
  });

  it('a first batch of events without a clusterTime stores nothing until the first acknowledgement', async () => {
    const firstHandled = deferred();
    const { stream, tokens } = setup({
      scripts: [{ aggregate: { batch: [insert(1)], operationTime: timestamp(7) } }],
      handle: () => firstHandled.promise,
    });
    stream.start();
    await eventually('handler of event 1 running', () => stream.status().inFlightEvents === 1);
    expect(await tokens.load(KEY)).toBeNull();
    firstHandled.resolve();
    await eventually(
      't1 stored',
      async () => (await stored(tokens)) === JSON.stringify(positionOf(1)),
    );
  });

  it('without a post-batch token or operationTime nothing is stored until the first event is handled', async () => {
    const firstHandled = deferred();
    const { stream, tokens } = setup({
      scripts: [{ getMores: [[insert(1)]] }],
      handle: () => firstHandled.promise,
    });
    stream.start();
    await eventually('handler of event 1 running', () => stream.status().inFlightEvents === 1);
    expect(await tokens.load(KEY)).toBeNull();
    firstHandled.resolve();
    await eventually(
      't1 stored',
      async () => (await stored(tokens)) === JSON.stringify(positionOf(1)),
    );
  });

  it('stores newer post-batch tokens while the collection is idle', async () => {
    const tokens = new InMemoryPositionStore();
    const saved: unknown[] = [];
    const save = tokens.save.bind(tokens);
    tokens.save = async (key, position) => {
      saved.push(position);
      await save(key, position);
    };
    const { stream } = setup({
      tokens,
      scripts: [
        {
          aggregate: { postBatchResumeToken: token('p0') },
          getMores: [
            { batch: [], postBatchResumeToken: token('p1') },
            { batch: [], postBatchResumeToken: token('p2') },
          ],
          idleToken: token('p3'),
        },
      ],
    });
    stream.start();
    await eventually(
      'p3 stored',
      async () => (await stored(tokens)) === JSON.stringify(positionOf('p3')),
    );
    expect(saved[0]).toEqual(positionOf('p0'));
    expect(new Set(saved.map((p) => JSON.stringify(p))).size).toBe(saved.length); // each position once
  });
});

describe('CollectionStream: duplicate bound', () => {
  it('never dispatches more than 2 × maxEvents events past the stored position, even with synchronous handlers over one buffered batch', async () => {
    const maxEvents = 10;
    const tokens = new InMemoryPositionStore();
    let storedUpTo = 0;
    let worst = 0;
    const save = tokens.save.bind(tokens);
    tokens.save = async (key, position) => {
      await new Promise((resolve) => setTimeout(resolve, 5)); // a slow store: its reply needs the event loop
      await save(key, position);
      storedUpTo = Number(String((position as { token: { _data: string } }).token._data).slice(1));
    };
    const batch = Array.from({ length: 500 }, (_, i) => insert(i + 1));
    const { stream, seen } = setup({
      tokens,
      scripts: [{ getMores: [batch] }],
      options: { checkpoint: { maxEvents, intervalMs: 1000 } },
      handle: (id) => {
        worst = Math.max(worst, id - storedUpTo);
      },
    });
    stream.start();
    await eventually('500 handled', () => seen.length === 500, 20_000);
    expect(worst).toBeLessThanOrEqual(2 * maxEvents);
    expect(worst).toBeGreaterThan(maxEvents); // reading did go on while a save was in flight
  });
});

describe('CollectionStream: reopening and history lost', () => {
  it('reopens from the last acknowledged event when the server closes the cursor without an error', async () => {
    const { stream, seen, server } = setup({
      scripts: [{ getMores: [[insert(1), insert(2)], 'closed'] }, { getMores: [[insert(3)]] }],
    });
    stream.start();
    await eventually('3 handled', () => seen.length === 3);
    expect(seen).toEqual([1, 2, 3]);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([null, token(2)]);
  });

  it('reopens after a network error, showing reconnecting meanwhile', async () => {
    const { stream, seen, server, states } = setup({
      scripts: [
        { getMores: [[insert(1)], { error: networkError() }] },
        { getMores: [[insert(2)]] },
      ],
    });
    stream.start();
    await eventually('2 handled', () => seen.length === 2);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([null, token(1)]);
    expect(states()).toEqual(['open', 'reconnecting', 'open']);
  });

  it('history lost (286) at open with the default policy: failed, stored token kept, never reopened', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf('old'));
    const { stream, server, events } = setup({
      tokens,
      scripts: [
        { aggregate: { error: serverError(286, 'Resume of change stream was not possible') } },
      ],
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(stream.status().lastError).toContain('the oplog no longer holds it');
    expect(server.opens).toHaveLength(1);
    expect(await tokens.load(KEY)).toEqual(positionOf('old'));
    expect(events.find((e) => e.type === 'history-lost')).toMatchObject({
      action: 'fail',
      position: positionOf('old'),
    });
  });

  it('a code-less server error mid-stream is a broken stream, not history lost: it reopens from the newest acknowledged event', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf('old'));
    const { stream, seen, server, events } = setup({
      tokens,
      options: { onHistoryLost: 'restart-from-now' },
      scripts: [
        {
          getMores: [
            [insert(1), insert(2)],
            { error: serverError(undefined, 'odd error without a code') },
          ],
        },
        { getMores: [[insert(3)]] },
      ],
    });
    stream.start();
    await eventually('3 handled', () => seen.length === 3);
    expect(server.opens.map((o) => o.resumeAfter)).toEqual([token('old'), token(2)]);
    expect(events.some((e) => e.type === 'history-lost')).toBe(false);
    expect(logs.messages('error').some((m) => m.includes('DATA LOSS'))).toBe(false);
  });

  it('history lost when reopening reports the newest acknowledged position, not the one the stream first opened with', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf('old'));
    const { stream, events } = setup({
      tokens,
      scripts: [
        { getMores: [[insert(1), insert(2)], { error: networkError() }] },
        { aggregate: { error: serverError(286, 'history lost') } },
      ],
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(events.find((e) => e.type === 'history-lost')).toMatchObject({
      action: 'fail',
      position: positionOf(2),
    });
  });

  it('history lost with restart-from-now: logs the gap, emits an event and reads on from now', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf('old'));
    const { stream, seen, server, events } = setup({
      tokens,
      options: { onHistoryLost: 'restart-from-now' },
      scripts: [
        { aggregate: { error: serverError(286, 'history lost') } },
        { getMores: [[insert(7)]] },
      ],
    });
    stream.start();
    await eventually('7 handled', () => seen.length === 1);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([token('old'), null]);
    expect(events.find((e) => e.type === 'history-lost')).toMatchObject({
      action: 'restart-from-now',
      collection: 'orders',
    });
    expect(logs.messages('error').some((m) => m.startsWith(`DATA LOSS on ${KEY}`))).toBe(true);
    await eventually(
      'new position stored',
      async () => (await stored(tokens)) === JSON.stringify(positionOf(7)),
    );
  });

  it('a callback decides: here it resyncs, then restarts from now', async () => {
    const decisions: string[] = [];
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf('old'));
    const { stream, seen } = setup({
      tokens,
      scripts: [
        { aggregate: { error: serverError(260, 'Invalid resume token') } },
        { getMores: [[insert(1)]] },
      ],
      options: {
        onHistoryLost: async (lost) => {
          decisions.push(lost.reason);
          return 'restart-from-now' as const;
        },
      },
    });
    stream.start();
    await eventually('handled after restart', () => seen.length === 1);
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toContain('Invalid resume token');
  });

  it('does not treat a server error at open as history lost when no position was used', async () => {
    const { stream, seen, server } = setup({
      scripts: [
        { aggregate: { error: serverError(undefined, 'odd') } },
        { getMores: [[insert(1)]] },
      ],
    });
    stream.start();
    await eventually('handled', () => seen.length === 1);
    expect(server.opens).toHaveLength(2);
    expect(stream.status().state).toBe('open');
  });

  it('waits quietly for an unreachable store at startup instead of starting from now', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf(1));
    const load = tokens.load.bind(tokens);
    let failures = 3;
    tokens.load = async (key) => {
      if (failures-- > 0) throw new Error('connect ECONNREFUSED');
      return load(key);
    };
    const { stream, seen, server } = setup({ tokens, scripts: [{ getMores: [[insert(2)]] }] });
    stream.start();
    await eventually('handled', () => seen.length === 1);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([token(1)]);
    expect(logs.messages('warn').filter((m) => m.includes('ECONNREFUSED'))).toEqual([]);
  });
});

describe('CollectionStream: drop, rename and invalidate', () => {
  it('after an invalidate event, reopens with startAfter and does not store the invalidate token', async () => {
    const { stream, seen, server, tokens } = setup({
      scripts: [
        { getMores: [[insert(1), lifecycle(2, 'drop'), lifecycle(3, 'invalidate')]] },
        { getMores: [[insert(4)]] },
      ],
    });
    stream.start();
    await eventually('4 handled', () => seen.includes(4));
    expect(seen).toEqual([1, -1, -1, 4]);
    expect(server.opens[1]).toMatchObject({ startAfter: token(3) });
    expect(server.opens[1].resumeAfter).toBeUndefined();
    expect(stream.status().lastInvalidatedAt).toBeInstanceOf(Date);
    await eventually(
      't4 stored',
      async () => (await stored(tokens)) === JSON.stringify(positionOf(4)),
    );
  });

  it("a quiet collection after an invalidate never takes the invalidate's token as its idle position", async () => {
    // mongod answers a stream opened with `startAfter` with that token as its post-batch token
    // (`expCtx->initialPostBatchResumeToken`) until the oplog moves past the drop, and the driver
    // starts from it too. Stored, it cannot be resumed from: `resumeAfter` an invalidate is refused
    // with InvalidResumeToken (260), which would read as history lost at the next open or restart.
    const afterInvalidate = {
      aggregate: { postBatchResumeToken: token(3) },
      getMores: [
        { batch: [], postBatchResumeToken: token(3) },
        { error: networkError() }, // the reopened stream breaks before any new write
      ],
      idleToken: token(3),
    };
    const { stream, seen, server, tokens } = setup({
      scripts: [
        { getMores: [[insert(1), lifecycle(2, 'drop'), lifecycle(3, 'invalidate')]] },
        afterInvalidate,
        { getMores: [[insert(4)]] },
      ],
    });
    stream.start();
    await eventually('4 handled', () => seen.includes(4));
    expect(server.opens[1]).toMatchObject({ startAfter: token(3) });
    // Opened again after the invalidate, not from its token as a position.
    expect(server.opens[2]).toMatchObject({ startAfter: token(3) });
    expect(server.opens[2].resumeAfter).toBeUndefined();
    expect(stream.status().state).toBe('open');
    await eventually(
      't4 stored',
      async () => (await stored(tokens)) === JSON.stringify(positionOf(4)),
    );
  });

  it("a restart after an invalidate, with nothing written since, does not resume from the invalidate's token", async () => {
    const tokens = new InMemoryPositionStore();
    const idleRead = deferred();
    const afterInvalidate = {
      aggregate: { postBatchResumeToken: token(3) },
      getMores: [
        { batch: [], postBatchResumeToken: token(3) },
        { after: idleRead.promise },
      ] as Reply[],
    };
    const first = setup({
      tokens,
      scripts: [
        { getMores: [[insert(1), lifecycle(2, 'drop'), lifecycle(3, 'invalidate')]] },
        afterInvalidate,
      ],
    });
    first.stream.start();
    // The second getMore was asked for: the reader has taken the first (empty) one's answer.
    await eventually(
      'an idle read after the invalidate',
      () => afterInvalidate.getMores.length === 0,
    );
    const stopping = first.stream.stop(1000); // the final flush stores the newest position
    idleRead.resolve();
    await stopping;
    expect(await tokens.load(KEY)).toEqual(positionOf(2));

    const second = setup({ tokens, scripts: [{ getMores: [[insert(4)]] }] });
    second.stream.start();
    await eventually('4 handled', () => second.seen.includes(4));
    expect(second.server.opens[0]).toMatchObject({ resumeAfter: token(2) });
  });

  it('lets lifecycle events through the server filter, and routes them only to handlers that asked for them', async () => {
    const { stream, seen, server } = setup({
      handlerOptions: { operationTypes: ['insert'] },
      scripts: [
        { getMores: [[insert(1), lifecycle(2, 'drop'), lifecycle(3, 'invalidate')]] },
        { getMores: [[insert(4)]] },
      ],
    });
    stream.start();
    await eventually('4 handled', () => seen.includes(4));
    expect(seen).toEqual([1, 4]);
    expect(server.pipelines[0]).toEqual([
      {
        $match: {
          operationType: { $in: ['insert', 'drop', 'rename', 'dropDatabase', 'invalidate'] },
        },
      },
    ]);
    expect(server.opens[1]).toMatchObject({ startAfter: token(3) });
  });
});

describe('CollectionStream: handler failures', () => {
  it('dead-letters a failing event and moves on, acknowledging past it', async () => {
    const { stream, seen, deadLetters, tokens, events } = setup({
      scripts: [{ getMores: [[insert(1), insert(2), insert(3)]] }],
      options: { onHandlerFailure: 'dead-letter' },
      handle: (id) => {
        if (id === 2) throw new Error('bad order 2');
      },
    });
    stream.start();
    await eventually('3 handled', () => seen.includes(3));
    const [letter] = await deadLetters.list();
    expect(letter).toMatchObject({
      handler: 'Listener.onOrder',
      streamKey: KEY,
      attempts: 1,
      error: { message: 'bad order 2' },
    });
    expect((letter.change as { documentKey: { _id: number } }).documentKey._id).toBe(2);
    expect(events.some((e) => e.type === 'dead-lettered' && e.id === letter.id)).toBe(true);
    await eventually(
      't3 stored',
      async () => (await stored(tokens)) === JSON.stringify(positionOf(3)),
    );
  });

  it('the same failure delivered again after a crash is one dead letter, not two', async () => {
    const deadLetters = new InMemoryDeadLetterStore();
    const failOn2 = (id: number) => {
      if (id === 2) throw new Error('bad order 2');
    };
    const options = { onHandlerFailure: 'dead-letter' as const };
    const first = setup({
      deadLetters,
      options,
      handle: failOn2,
      scripts: [{ getMores: [[insert(1), insert(2)]] }],
    });
    first.stream.start();
    await eventually('dead-lettered once', async () => (await deadLetters.list()).length === 1);
    // The position was not stored past event 1 before the "crash": event 2 comes again and fails again.
    const second = setup({
      deadLetters,
      options,
      handle: failOn2,
      scripts: [{ getMores: [[insert(2), insert(3)]] }],
    });
    second.stream.start();
    await eventually('3 handled', () => second.seen.includes(3));
    expect(await deadLetters.list()).toHaveLength(1);
  });

  it('a failure once shutdown began is neither dead-lettered nor fatal: the event is simply not acknowledged', async () => {
    const handlerStarted = deferred();
    const releaseHandler = deferred();
    const { stream, deadLetters, tokens, seen } = setup({
      scripts: [{ getMores: [[insert(1), insert(2)]] }],
      options: { onHandlerFailure: 'dead-letter', handlerRetry: { retries: 3, initialDelayMs: 1 } },
      handle: async (id) => {
        if (id !== 2) return;
        handlerStarted.resolve();
        await releaseHandler.promise;
        throw new Error('client already closed');
      },
    });
    stream.start();
    await handlerStarted.promise;
    const stopping = stream.stop(5000);
    releaseHandler.resolve();
    await stopping;
    expect(seen).toEqual([1]);
    expect(await deadLetters.list()).toEqual([]);
    expect(stream.status().state).toBe('closed');
    expect(await tokens.load(KEY)).toEqual(positionOf(1));
  });

  it('a stuck handler shows: time in flight in the status, degraded past handlerTimeoutMs, a log naming handler and event', async () => {
    const release = deferred();
    const signals: AbortSignal[] = [];
    const { stream, states, seen } = setup({
      scripts: [{ getMores: [[insert(1)]] }],
      options: { handlerTimeoutMs: 50, onHandlerTimeout: 'abort' },
      handle: async (_id, context) => {
        signals.push(context.signal);
        await release.promise;
      },
    });
    stream.start();
    await eventually('degraded', () => stream.status().state === 'degraded');
    expect(stream.status().inFlightForMs).toBeGreaterThanOrEqual(50);
    expect(stream.status().lastError).toContain('Listener.onOrder');
    expect(
      logs
        .messages('warn')
        .some((m) => m.includes('Listener.onOrder') && m.includes('{"_data":"t1"}')),
    ).toBe(true);
    expect(signals[0].aborted).toBe(true);
    release.resolve();
    await eventually('handled', () => seen.length === 1);
    await eventually('open again', () => stream.status().state === 'open');
    expect(states()).toEqual(['open', 'degraded', 'open']);
  });
});

describe('CollectionStream: saves failing or hanging', () => {
  it('pauses reading once maxUnsavedEvents are unsaved, shows degraded, and catches up when the store is back', async () => {
    const tokens = new InMemoryPositionStore();
    const save = tokens.save.bind(tokens);
    let storeUp = false;
    tokens.save = async (key, position) => {
      if (!storeUp) throw new Error('store down');
      return save(key, position);
    };
    const { stream, seen, states } = setup({
      tokens,
      scripts: [{ getMores: [[1, 2, 3, 4, 5, 6].map((n) => insert(n))] }],
      options: { checkpoint: { maxEvents: 1, intervalMs: 10, maxUnsavedEvents: 3 } },
    });
    stream.start();
    await eventually(
      'paused after three',
      () => seen.length === 3 && logs.messages('warn').some((m) => m.includes('reading paused')),
    );
    expect(stream.status()).toMatchObject({ state: 'degraded', unsavedEvents: 3 });
    expect(seen).toEqual([1, 2, 3]);
    storeUp = true;
    await eventually('all handled', () => seen.length === 6, 5000);
    await eventually(
      't6 stored',
      async () => (await stored(tokens)) === JSON.stringify(positionOf(6)),
      5000,
    );
    expect(stream.status().state).toBe('open');
    expect(states()).toEqual(['open', 'degraded', 'open']);
  });

  it('stop() is bounded by its timeout even when the final save never answers', async () => {
    const tokens = new InMemoryPositionStore();
    const { stream, seen } = setup({
      tokens,
      scripts: [{ getMores: [[insert(1)]] }],
      options: { checkpoint: { maxEvents: 100, intervalMs: 60_000 } },
    });
    tokens.save = () => new Promise(() => undefined); // a client queueing commands while Redis is down
    stream.start();
    await eventually('handled', () => seen.length === 1);
    const started = Date.now();
    await stream.stop(300);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(
      logs.messages('warn').some((m) => m.includes('final position could not be stored')),
    ).toBe(true);
  });
});
