import { afterEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { InMemoryPositionStore, type StreamPosition } from '../../lib/index.js';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import { documentKeyOf } from '../../lib/common/document-key.js';
import { insert, lifecycle, update } from '../fixtures/fake-change-stream.js';
import { deferred, KEY, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

/** The number n of the fake's token `t<n>`. */
const numberOf = (token: unknown) => Number(String((token as { _data: string })._data).slice(1));
const tokenNumber = (position: StreamPosition | null) =>
  position && 'token' in position ? numberOf(position.token) : 0;

/** A store that records every saved event number. */
function recordingStore() {
  const tokens = new InMemoryPositionStore();
  const saved: number[] = [];
  const save = tokens.save.bind(tokens);
  tokens.save = async (key, position) => {
    saved.push(tokenNumber(position));
    await save(key, position);
  };
  return { tokens, saved };
}

describe('concurrency: events of different documents at once, of one document in order', () => {
  it('out-of-order completion never moves the stored position past an unfinished event', async () => {
    const { tokens, saved } = recordingStore();
    const third = deferred();
    const { stream, seen } = setup({
      tokens,
      // maxEvents 5: up to 10 events may be dispatched past the stored position, enough for all of them.
      options: { concurrency: 8, checkpoint: { maxEvents: 5, intervalMs: 10 } },
      scripts: [{ getMores: [Array.from({ length: 10 }, (_, i) => insert(i + 1))] }],
      handle: (id) => (id === 3 ? third.promise : undefined),
    });
    stream.start();
    await eventually('every event but 3 handled', () => seen.length === 9);
    await eventually('position at 2 stored', async () => tokenNumber(await tokens.load(KEY)) === 2);
    expect(saved.every((n) => n < 3)).toBe(true);
    third.resolve();
    await eventually(
      'position at 10 stored',
      async () => tokenNumber(await tokens.load(KEY)) === 10,
    );
    expect(saved).toEqual([...saved].sort((a, b) => a - b)); // never backwards
  });

  it('never runs two events of one document at once, and keeps their order', async () => {
    const events: ChangeEvent[] = [];
    for (let n = 1; n <= 300; n++)
      events.push(n <= 20 ? insert(n, n) : update(n, ((n - 1) % 20) + 1));
    const running = new Set<number>();
    const order = new Map<number, number[]>();
    let overlaps = 0;
    let peak = 0;
    const { stream, seen } = setup({
      options: { concurrency: 32, checkpoint: { maxEvents: 50, intervalMs: 10 } },
      scripts: [{ getMores: [events.slice(0, 150), events.slice(150)] }],
      handle: async (id, _context, change) => {
        if (running.has(id)) overlaps++;
        running.add(id);
        peak = Math.max(peak, running.size);
        order.set(id, [...(order.get(id) ?? []), numberOf(change._id)]);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
        running.delete(id);
      },
    });
    stream.start();
    await eventually('300 handled', () => seen.length === 300, 20_000);
    expect(overlaps).toBe(0);
    for (const [, sequence] of order) expect(sequence).toEqual([...sequence].sort((a, b) => a - b));
    expect(peak).toBeGreaterThan(1); // documents did run concurrently
  });

  it('keeps at most `concurrency` events in flight and at most 2 × maxEvents past the stored position', async () => {
    const { tokens } = recordingStore();
    let stored = 0;
    const save = tokens.save.bind(tokens);
    tokens.save = async (key, position) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await save(key, position);
      stored = tokenNumber(position);
    };
    let inFlight = 0;
    let peakInFlight = 0;
    let worstAhead = 0;
    const { stream, seen } = setup({
      tokens,
      options: { concurrency: 4, checkpoint: { maxEvents: 10, intervalMs: 1000 } },
      scripts: [{ getMores: [Array.from({ length: 400 }, (_, i) => insert(i + 1))] }],
      handle: async (id) => {
        inFlight++;
        peakInFlight = Math.max(peakInFlight, inFlight);
        worstAhead = Math.max(worstAhead, id - stored);
        await new Promise((resolve) => setImmediate(resolve));
        inFlight--;
      },
    });
    stream.start();
    await eventually('400 handled', () => seen.length === 400, 20_000);
    expect(peakInFlight).toBeLessThanOrEqual(4);
    expect(worstAhead).toBeLessThanOrEqual(20);
  });

  it('with the stop policy a failure ends the stream (failed, not stuck), acknowledging nothing past it', async () => {
    const { tokens } = recordingStore();
    const { stream } = setup({
      tokens,
      options: {
        concurrency: 8,
        checkpoint: { maxEvents: 10, intervalMs: 10 },
        handlerRetry: { retries: 2, initialDelayMs: 20, maxDelayMs: 40 },
      },
      scripts: [{ getMores: [Array.from({ length: 500 }, (_, i) => insert(i + 1))] }],
      handle: (id) => {
        if (id === 50) throw new Error('poison 50');
      },
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed', 10_000);
    expect(stream.status().lastError).toContain('poison 50');
    expect(tokenNumber(await tokens.load(KEY))).toBeLessThan(50);
    expect(stream.status().inFlightEvents).toBe(0);
  });

  it('after stop() begins, events queued behind their document do not start', async () => {
    const first = deferred();
    const started: number[] = [];
    const { stream } = setup({
      options: { concurrency: 4 },
      scripts: [{ getMores: [[insert(1, 7), update(2, 7), update(3, 7)]] }],
      handle: async (_id, _context, change) => {
        const n = numberOf(change._id);
        started.push(n);
        if (n === 1) await first.promise;
      },
    });
    stream.start();
    await eventually('first started', () => started.length === 1);
    const stopping = stream.stop(2000);
    first.resolve();
    await stopping;
    expect(started).toEqual([1]);
  });

  it('runs a delete of _id 1 and an insert of _id Decimal128("1") one after the other (one document to MongoDB)', async () => {
    const first = deferred();
    const log: string[] = [];
    const asDecimal = {
      ...insert(2, 1),
      documentKey: { _id: mongoose.mongo.BSON.Decimal128.fromString('1') },
    } as unknown as ChangeEvent;
    const remove = { ...update(1, 1), operationType: 'delete' } as unknown as ChangeEvent;
    const { stream, seen } = setup({
      options: { concurrency: 4, checkpoint: { maxEvents: 10, intervalMs: 10 } },
      scripts: [{ getMores: [[remove, asDecimal, insert(3, 3)]] }],
      handle: async (_id, _context, change) => {
        const n = numberOf(change._id);
        log.push(`start ${n}`);
        if (n === 1) await first.promise;
        log.push(`end ${n}`);
      },
    });
    stream.start();
    await eventually('event 3 handled (the reader got past event 2)', () => log.includes('end 3'));
    first.resolve();
    await eventually('all handled', () => seen.length === 3);
    expect(log.indexOf('start 2')).toBeGreaterThan(log.indexOf('end 1'));
  });

  it('runs an event without a document (drop) alone, after the events before it finished', async () => {
    const first = deferred();
    const log: string[] = [];
    const { stream, seen } = setup({
      options: { concurrency: 4 },
      scripts: [{ getMores: [[insert(1), insert(2), lifecycle(3, 'drop'), insert(4)]] }],
      handle: async (id) => {
        log.push(`start ${id}`);
        if (id === 1) await first.promise;
        log.push(`end ${id}`);
      },
    });
    stream.start();
    await eventually('1 and 2 started', () => log.includes('start 1') && log.includes('end 2'));
    first.resolve();
    await eventually('4 handled', () => seen.includes(4));
    expect(log.indexOf('start -1')).toBeGreaterThan(log.indexOf('end 1'));
    expect(log.indexOf('start 4')).toBeGreaterThan(log.indexOf('end -1'));
  });
});

describe('documentKeyOf', () => {
  const change = (documentKey: unknown) =>
    ({ _id: { _data: 'x' }, operationType: 'update', documentKey }) as unknown as ChangeEvent;
  const id = new mongoose.mongo.ObjectId();

  it('keys by _id alone: a shard key change keeps the document in order', () => {
    expect(documentKeyOf(change({ region: 'eu', _id: id }))).toBe(
      documentKeyOf(change({ region: 'us', _id: id })),
    );
    expect(documentKeyOf(change({ _id: 5 }))).not.toBe(documentKeyOf(change({ _id: '5' })));
    expect(documentKeyOf(change({ _id: { a: 1, b: 2 } }))).toBe(
      documentKeyOf(change({ _id: { a: 1, b: 2 } })),
    );
  });

  it('gives numerically equal _ids of any BSON number type one key, as the unique _id index does', () => {
    const { Decimal128, Long, Int32, Double } = mongoose.mongo.BSON;
    const keyOf = (_id: unknown) => documentKeyOf(change({ _id }));
    const same = (ids: unknown[]) => expect(new Set(ids.map(keyOf)).size).toBe(1);
    same([
      1,
      1.0,
      Decimal128.fromString('1'),
      Decimal128.fromString('1.00'),
      Decimal128.fromString('0.1E+1'),
      Long.fromNumber(1),
      new Int32(1),
      new Double(1),
      1n,
    ]);
    same([0, -0, Decimal128.fromString('-0'), Decimal128.fromString('0E+5'), Long.ZERO]);
    same([100, Decimal128.fromString('1E+2'), Long.fromNumber(100)]);
    same([-2.5, Decimal128.fromString('-2.50'), new Double(-2.5)]);
    same([2 ** 53, Long.fromString('9007199254740992'), Decimal128.fromString('9007199254740992')]);
    same([
      Long.fromString('9007199254740993'),
      Decimal128.fromString('9007199254740993'),
      9007199254740993n,
    ]);
    same([2 ** 70, Decimal128.fromString('1180591620717411303424')]);
    same([NaN, Decimal128.fromString('NaN')]);
    same([Infinity, Decimal128.fromString('Infinity')]);
    same([
      { a: 1, b: Decimal128.fromString('2') },
      { a: Long.fromNumber(1), b: 2.0 },
    ]);
    same([
      { tags: [1, 'x'], at: { n: new Int32(3) } },
      { tags: [Decimal128.fromString('1.0'), 'x'], at: { n: 3 } },
    ]);
  });

  it('keeps numbers MongoDB tells apart apart: beyond 2^53, inexact decimals, strings, field order', () => {
    const { Decimal128, Long } = mongoose.mongo.BSON;
    const keyOf = (_id: unknown) => documentKeyOf(change({ _id }));
    // 2^53 + 1 is not a double: the double nearest to it is 2^53, which the index tells apart from the long.
    expect(keyOf(Long.fromString('9007199254740993'))).not.toBe(keyOf(2 ** 53 + 1));
    expect(keyOf(Decimal128.fromString('0.1'))).not.toBe(keyOf(0.1)); // the double 0.1 is 0.1000000000000000055…
    expect(keyOf(Decimal128.fromString('0.5'))).toBe(keyOf(0.5)); // exact in both
    expect(keyOf(1)).not.toBe(keyOf('1'));
    expect(keyOf({ a: 1 })).not.toBe(keyOf({ a: '1' }));
    expect(keyOf({ a: 1, b: 2 })).not.toBe(keyOf({ b: 2, a: 1 }));
    expect(keyOf([1, 2])).not.toBe(keyOf([2, 1]));
    expect(keyOf(Long.fromNumber(-1))).not.toBe(keyOf(1));
    expect(keyOf(1.5)).not.toBe(keyOf(15));
  });

  it('gives no key to events without a document or with a malformed documentKey (they run alone)', () => {
    expect(documentKeyOf(change(undefined))).toBeNull();
    expect(documentKeyOf(change({ $set: { a: 1 } }))).toBeNull();
  });
});
