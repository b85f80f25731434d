import { afterEach, describe, expect, it } from '@jest/globals';
import { type ChangeContext, InMemoryPositionStore, type StreamPosition } from '../../lib/index.js';
import { insert, update } from '../fixtures/fake-change-stream.js';
import { deferred, KEY, positionOf, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

/**
 * A handler that returns no promise is answered without a microtask (the module's hot path), so
 * a whole buffered batch can be dispatched without the event loop reaching I/O. These specs hold
 * that path to the same guarantees as the asynchronous one.
 */
const numberOf = (position: StreamPosition | null) =>
  position && 'token' in position
    ? Number(String((position.token as { _data: string })._data).slice(1))
    : 0;

describe.each([1, 8])('handlers that return no promise, concurrency %i', (concurrency) => {
  it.each([
    ['every handler returns no promise', false],
    ['every third returns a promise', true],
  ])(
    'handles every event once, in order per document, never two of one document at once, and stores the last position (%s)',
    async (_name, mixed) => {
      // 5 documents, each event 5 after its previous one: closer than `concurrency`, so ordering is exercised.
      const events = Array.from({ length: 200 }, (_, i) =>
        i < 5 ? insert(i + 1, i + 1) : update(i + 1, (i % 5) + 1),
      );
      const handled = new Map<number, number[]>(); // document → its events' numbers, in handling order
      const running = new Set<number>();
      let overlaps = 0;
      const { stream, seen, tokens } = setup({
        synchronous: true,
        options: { concurrency, checkpoint: { maxEvents: 10, intervalMs: 10 } },
        scripts: [{ getMores: [events.slice(0, 120), events.slice(120)] }],
        handle: (id: number, _context: ChangeContext, change) => {
          const n = numberOf({ token: change._id });
          if (running.has(id)) overlaps++;
          handled.set(id, [...(handled.get(id) ?? []), n]);
          if (!mixed || n % 3 !== 0) return undefined;
          running.add(id);
          return new Promise<void>((resolve) => setTimeout(resolve, 1)).then(
            () => void running.delete(id),
          );
        },
      });
      stream.start();
      await eventually('all 200 handled', () => seen.length === 200);
      expect(overlaps).toBe(0);
      // Document d's events are d, d+5, d+10, …: handled exactly in that order.
      for (let d = 1; d <= 5; d++)
        expect(handled.get(d)).toEqual(Array.from({ length: 40 }, (_, k) => d + 5 * k));
      await eventually('position 200 stored', async () => numberOf(await tokens.load(KEY)) === 200);
      expect(stream.status().eventsHandled).toBe(200);
    },
  );

  it('waits for a slow save: never more than 2 × maxEvents dispatched past the stored position', async () => {
    const tokens = new InMemoryPositionStore();
    const save = tokens.save.bind(tokens);
    const gate = deferred();
    let storedUpTo = 0;
    tokens.save = async (key, position) => {
      if (storedUpTo === 0) await gate.promise; // the first save hangs until released
      await save(key, position);
      storedUpTo = Math.max(storedUpTo, numberOf(position));
    };
    const pastStored: number[] = [];
    const { stream, seen } = setup({
      synchronous: true,
      tokens,
      options: { concurrency, checkpoint: { maxEvents: 5, intervalMs: 10_000 } },
      scripts: [{ getMores: [Array.from({ length: 50 }, (_, i) => insert(i + 1))] }],
      handle: (id: number) => void pastStored.push(id - storedUpTo),
    });
    stream.start();
    await eventually('the bound reached while the first save hangs', () => seen.length === 10);
    gate.resolve();
    await eventually('all 50 handled', () => seen.length === 50);
    // Every event, when it started, was at most 2 × maxEvents past what was stored then.
    expect(Math.max(...pastStored)).toBeLessThanOrEqual(10);
    expect(stream.status().eventsHandled).toBe(50);
  });

  it('a throw is retried with a fresh context, then handled per policy; the position moves past it only once recorded', async () => {
    const attempts: number[] = [];
    const { stream, seen, deadLetters, tokens } = setup({
      synchronous: true,
      options: {
        concurrency,
        onHandlerFailure: 'dead-letter',
        handlerRetry: { retries: 2, initialDelayMs: 1, maxDelayMs: 2 },
      },
      scripts: [{ getMores: [[insert(1), insert(2), insert(3)]] }],
      handle: (id: number, context: ChangeContext) => {
        if (id !== 2) return;
        attempts.push(context.attempt);
        throw new Error(`bad order ${id}`);
      },
    });
    stream.start();
    // Event 3 (another document) may finish first at concurrency 8: wait for the dead letter and the position past it.
    await eventually(
      't3 stored',
      async () => JSON.stringify(await tokens.load(KEY)) === JSON.stringify(positionOf(3)),
    );
    expect(seen).toContain(3);
    expect(attempts).toEqual([1, 2, 3]);
    const [letter] = await deadLetters.list();
    expect(letter).toMatchObject({ attempts: 3, error: { message: 'bad order 2' } });
    expect(seen).not.toContain(2);
  });

  it('under the stop policy nothing after the failed event is acknowledged', async () => {
    const { stream, seen, tokens } = setup({
      synchronous: true,
      options: {
        concurrency,
        onHandlerFailure: 'stop',
        handlerRetry: { retries: 0 },
        checkpoint: { maxEvents: 1, intervalMs: 10 },
      },
      scripts: [{ getMores: [[insert(1), insert(2), insert(3), insert(4)]] }],
      handle: (id: number) => {
        if (id === 2) throw new Error('bad order 2');
      },
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    await stream.stop(1000);
    expect(seen).not.toContain(2);
    expect(numberOf(await tokens.load(KEY))).toBe(1);
  });
});
