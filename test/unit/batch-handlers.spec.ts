import { afterEach, describe, expect, it } from '@jest/globals';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import { insert, token, update } from '../fixtures/fake-change-stream.js';
import { idOf, setupBatch, stopBatchStreams } from '../fixtures/batch-harness.js';
import { deferred } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopBatchStreams);

const inserts = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => insert(from + i));
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** An event without a document (DDL): it runs alone. */
const ddl = (n: number) =>
  ({ _id: token(n), operationType: 'createIndexes' }) as unknown as ChangeEvent;
/** Long enough never to cut a batch within a spec: a cut seen must have another cause. */
const NEVER = 60_000;

describe('@OnChangeBatch: cutting batches', () => {
  it('cuts at maxSize, in stream order, also at concurrency 1 (events waiting in a batch take no slot)', async () => {
    const { stream, batches, stored } = setupBatch({
      limits: { maxSize: 4, maxWaitMs: 30 },
      scripts: [{ getMores: [inserts(1, 10)] }],
    });
    stream.start();
    await eventually('10 events in batches', () => batches.flat().length === 10);
    expect(batches).toEqual([range(1, 4), range(5, 8), [9, 10]]);
    await eventually('position at 10 stored', async () => (await stored()) === 10);
  });

  it('cuts after maxWaitMs without a new event, not before', async () => {
    const gap = deferred();
    const { stream, batches } = setupBatch({
      limits: { maxSize: 100, maxWaitMs: 20 },
      scripts: [
        { getMores: [inserts(1, 3), { after: gap.promise, then: { batch: inserts(4, 5) } }] },
      ],
    });
    stream.start();
    await eventually('the first three cut by quiet', () => batches.length === 1);
    expect(batches).toEqual([[1, 2, 3]]);
    gap.resolve();
    await eventually('the next two cut by quiet', () => batches.length === 2);
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('cuts before an event without a document, which comes as a batch of one; shutdown flushes at once', async () => {
    const { stream, batches, stored } = setupBatch({
      limits: { maxSize: 100, maxWaitMs: NEVER },
      scripts: [{ getMores: [[insert(1), insert(2), ddl(3), insert(4), insert(5)]] }],
    });
    stream.start();
    await eventually('the batch before the DDL event, and it alone', () => batches.length === 2);
    expect(batches).toEqual([[1, 2], [-1]]);
    await eventually('position at 3 stored', async () => (await stored()) === 3);
    const started = Date.now();
    await stream.stop(5000);
    expect(Date.now() - started).toBeLessThan(5000); // not waiting out maxWaitMs nor the shutdown timeout
    expect(batches).toEqual([[1, 2], [-1], [4, 5]]);
    expect(await stored()).toBe(5);
  });
});

describe('@OnChangeBatch beside a per-event handler on one stream', () => {
  it('stores the position only past events both handlers finished, and runs per-event calls one at a time', async () => {
    const third = deferred();
    let running = 0;
    let overlaps = 0;
    const { stream, batches, perEventSeen, stored } = setupBatch({
      limits: { maxSize: 3, maxWaitMs: 10 },
      scripts: [{ getMores: [[...inserts(1, 4), update(5, 1), update(6, 2)]] }],
      perEvent: {
        handle: async (id) => {
          if (running++ > 0) overlaps++;
          if (id === 3) await third.promise;
          running--;
        },
      },
    });
    stream.start();
    await eventually('the batch handler got 1..3', () => batches.flat().length >= 3);
    await eventually('position at 2 stored', async () => (await stored()) === 2);
    // The batch handler finished 1..3 and the per-event one waits on 3: nothing past 2 is stored.
    expect(perEventSeen).toEqual([1, 2]);
    third.resolve();
    await eventually('position at 6 stored', async () => (await stored()) === 6);
    expect(batches.flat()).toEqual([1, 2, 3, 4, 1, 2]);
    expect(perEventSeen).toEqual([1, 2, 3, 4, 1, 2]);
    expect(overlaps).toBe(0);
  });
});

describe('@OnChangeBatch failures: retries, then bisection', () => {
  const failingOn5 = (ids: number[]) => {
    if (ids.includes(5)) throw new Error('cannot index 5');
  };

  it("'dead-letter': retries the whole batch, then dead-letters only the failing event", async () => {
    const { stream, calls, batches, deadLetters, stored } = setupBatch({
      limits: { maxSize: 8, maxWaitMs: 10 },
      options: {
        onHandlerFailure: 'dead-letter',
        handlerRetry: { retries: 1, initialDelayMs: 1, maxDelayMs: 2 },
      },
      scripts: [{ getMores: [inserts(1, 8)] }],
      handleBatch: failingOn5,
    });
    stream.start();
    await eventually('position at 8 stored', async () => (await stored()) === 8);
    const letters = await deadLetters.list();
    expect(letters.map((l) => [idOf(l.change), l.handler])).toEqual([[5, 'Sink.onOrders']]);
    expect(batches.flat().sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 6, 7, 8]);
    // The whole batch twice (retries: 1), then halves down to 5 alone, which gets its retry too.
    expect(calls.slice(0, 2)).toEqual([range(1, 8), range(1, 8)]);
    expect(calls.slice(2)).toEqual([range(1, 4), range(5, 8), [5, 6], [5], [5], [6], [7, 8]]);
  });

  it("'stop': events before the failing one count as handled, it and later ones are not acknowledged", async () => {
    const { stream, batches, stored } = setupBatch({
      limits: { maxSize: 8, maxWaitMs: 10 },
      options: { onHandlerFailure: 'stop' },
      scripts: [{ getMores: [inserts(1, 8)] }],
      handleBatch: failingOn5,
    });
    stream.start();
    await eventually('the stream failed', () => stream.state === 'failed');
    expect(batches.flat()).toEqual([1, 2, 3, 4]);
    await eventually('position at 4 stored', async () => (await stored()) === 4);
    await stream.stop(1000);
    expect(await stored()).toBe(4);
  });

  it('a function policy is called once per failing event; the rest count as handled', async () => {
    const failed: number[] = [];
    const { stream, stored } = setupBatch({
      limits: { maxSize: 8, maxWaitMs: 10 },
      batchOptions: {
        onFailure: ({ change }) => void failed.push(idOf(change)),
      },
      scripts: [{ getMores: [inserts(1, 8)] }],
      handleBatch: (ids) => {
        if (ids.includes(2) || ids.includes(7)) throw new Error('bad');
      },
    });
    stream.start();
    await eventually('position at 8 stored', async () => (await stored()) === 8);
    expect(failed).toEqual([2, 7]);
  });

  it('a failure during shutdown is not recorded: those events are not acknowledged', async () => {
    const gate = deferred();
    const { stream, deadLetters, stored } = setupBatch({
      limits: { maxSize: 100, maxWaitMs: NEVER },
      options: { onHandlerFailure: 'dead-letter' },
      scripts: [{ getMores: [inserts(1, 3)] }],
      handleBatch: async () => {
        await gate.promise;
        throw new Error('sink gone');
      },
    });
    stream.start();
    await eventually('stream open', () => stream.state === 'open');
    const stopping = stream.stop(5000);
    gate.resolve();
    await stopping;
    expect(await deadLetters.list()).toEqual([]);
    expect(await stored()).toBe(0);
  });
});

describe('@OnChangeBatch with onHandlerTimeout: abort', () => {
  it('aborts a stuck batch call on its own signal; the retry gets a fresh one and the batch is handled', async () => {
    const signals: AbortSignal[] = [];
    const { stream, calls, stored } = setupBatch({
      limits: { maxSize: 10, maxWaitMs: 10 },
      options: {
        handlerTimeoutMs: 100,
        onHandlerTimeout: 'abort',
        leases: false,
        handlerRetry: { retries: 1, initialDelayMs: 1, maxDelayMs: 2 },
      },
      scripts: [{ getMores: [inserts(1, 3)] }],
      handleBatch: (_ids, context) => {
        signals.push(context.signal);
        if (signals.length > 1) return undefined;
        // The first call hangs until its signal is aborted (the stuck-handler watch), then fails.
        return new Promise((_, reject) =>
          context.signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      },
    });
    stream.start();
    await eventually('position at 3 stored', async () => (await stored()) === 3);
    expect(calls).toEqual([
      [1, 2, 3],
      [1, 2, 3],
    ]);
    expect(signals[0].aborted).toBe(true);
    expect(signals[1].aborted).toBe(false);
  });
});

describe('@OnChangeBatch beside an async per-event handler at concurrency 1', () => {
  it('fills batches to maxSize: the slot a per-event call frees is taken by the next event at once', async () => {
    const { stream, batches, perEventSeen } = setupBatch({
      limits: { maxSize: 10, maxWaitMs: NEVER },
      scripts: [{ getMores: [inserts(1, 30)] }],
      perEvent: { handle: async () => undefined },
    });
    stream.start();
    // Waiting for a slot until the batch is cut (NEVER) would leave batches of one or two.
    await eventually('30 events in batches of 10', () => batches.flat().length === 30);
    expect(batches).toEqual([range(1, 10), range(11, 20), range(21, 30)]);
    expect(perEventSeen).toEqual(range(1, 30));
  });
});
