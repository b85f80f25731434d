import { afterEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import {
  ChangeStreamConfigError,
  decodePosition,
  encodePosition,
  InMemoryPositionStore,
  type StreamPosition,
} from '../../lib/index.js';
import { planStreams } from '../../lib/stream/stream-plan.js';
import {
  backfillStream,
  BACKFILL_KEY,
  changeOf,
  FakeCollection,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import { deferred } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

const { EJSON } = mongoose.mongo.BSON;

afterEach(stopBackfillStreams);

const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const stored = (store: InMemoryPositionStore) => store.load(BACKFILL_KEY);
const opened = { aggregate: { postBatchResumeToken: startToken } };

describe('Backfill progress (stored with the position, under the same write)', () => {
  it('stores the run with the start position, then its acknowledged chunks, then the handler as completed', async () => {
    const store = new InMemoryPositionStore();
    const saves: StreamPosition[] = [];
    const save = store.save.bind(store);
    store.save = (key, position) => (saves.push(position), save(key, position));
    const { stream, seen } = backfillStream({
      scripts: [opened],
      collection: new FakeCollection(ids(10)),
      store,
      handlers: { onOrder: { backfill: { batchSize: 4 }, fullDocument: 'updateLookup' } },
    });
    stream.start();
    await eventually('the handler completed', async () =>
      ((await stored(store))?.backfill?.completed ?? []).includes('Listener.onOrder'),
    );
    expect(seen.map((s) => `${s.op}:${s.id}`)).toEqual(ids(10).map((id) => `backfill:${id}`));
    // The first write is the start position, with the run and nothing done yet.
    expect(saves[0]).toMatchObject({
      token: startToken,
      backfill: { completed: [], run: { done: 0 } },
    });
    expect(saves[0].backfill!.run!.after).toBeUndefined();
    // `after` only ever names a chunk's last document, and moves forward.
    const afters = saves.flatMap((s) =>
      s.backfill?.run?.after ? [EJSON.parse(s.backfill.run.after)] : [],
    );
    expect(afters.every((a) => [4, 8, 10].includes(a as number))).toBe(true);
    expect([...afters].sort((a, b) => (a as number) - (b as number))).toEqual(afters);
    expect(await stored(store)).toEqual({
      token: startToken,
      backfill: { completed: ['Listener.onOrder'] },
    });
  });

  it('counts a chunk done only once every event up to its last is handled, and a restart resumes after it', async () => {
    const store = new InMemoryPositionStore();
    const stuck = deferred();
    const collection = new FakeCollection(ids(12));
    const first = backfillStream({
      scripts: [opened],
      collection,
      store,
      handlers: { onOrder: { backfill: { batchSize: 4 }, fullDocument: 'updateLookup' } },
      // Document 6 (second chunk) never finishes in this run: the crash comes first.
      handle: (s) => (s.id === 6 ? stuck.promise : undefined),
      options: { concurrency: 8 },
    });
    first.stream.start();
    await eventually('documents 1-5 and 7-8 handled', () =>
      [1, 2, 3, 4, 5, 7, 8].every((id) => first.seen.some((s) => s.id === id)),
    );
    const storedAfter = async () => {
      const after = (await stored(store))?.backfill?.run?.after;
      return after === undefined ? undefined : EJSON.parse(after);
    };
    await eventually('the first chunk stored as done', async () => (await storedAfter()) === 4);
    const run = (await stored(store))!.backfill!.run!;
    expect(run.done).toBe(4);
    // The "crash": stop with document 6 still running (its chunk is not acknowledged).
    await first.stream.stop(50);
    expect(await storedAfter()).toBe(4);
    stuck.resolve();

    const second = backfillStream({
      scripts: [{ getMores: [[changeOf(1, 'update', { _id: 2, v: 1 })]] }],
      collection,
      store,
      handlers: { onOrder: { backfill: { batchSize: 4 }, fullDocument: 'updateLookup' } },
    });
    second.stream.start();
    await eventually('the run completed on the second start', async () =>
      ((await stored(store))?.backfill?.completed ?? []).includes('Listener.onOrder'),
    );
    // It scanned from after the acknowledged chunk (4), in the same run.
    expect(collection.queries.slice(-3).map((q) => Number(q.after))).toEqual([4, 8, 12]);
    expect(second.seen.filter((s) => s.op === 'backfill').map((s) => s.id)).toEqual([
      5, 6, 7, 8, 9, 10, 11, 12,
    ]);
    expect(second.seen.every((s) => s.op !== 'backfill' || s.run === run.id)).toBe(true);
  });

  it('backfills a handler newly declared with backfill on an existing stream alone, and never one that completed', async () => {
    const store = new InMemoryPositionStore();
    await store.save(BACKFILL_KEY, {
      token: startToken,
      backfill: { completed: ['Listener.old'] },
    });
    const { stream, seen } = backfillStream({
      scripts: [{ getMores: [[], [], [changeOf(9, 'insert', { _id: 100, v: 1 })]] }],
      collection: new FakeCollection(ids(3)),
      store,
      handlers: {
        old: { backfill: true, fullDocument: 'updateLookup' },
        added: { backfill: true },
        plain: {},
      },
    });
    stream.start();
    await eventually(
      'the insert reached all three handlers',
      () => seen.filter((s) => s.id === 100).length === 3,
    );
    await eventually('the new handler completed', async () =>
      ((await stored(store))?.backfill?.completed ?? []).includes('Listener.added'),
    );
    const backfilled = seen.filter((s) => s.op === 'backfill');
    expect(backfilled.map((s) => `${s.handler}:${s.id}`)).toEqual([
      'added:1',
      'added:2',
      'added:3',
    ]);
    expect((await stored(store))!.backfill).toEqual({
      completed: ['Listener.old', 'Listener.added'],
    });
  });

  it('needs fullDocument on updates: a stream with a backfill handler and no fullDocument fails startup saying what to set', () => {
    const handler = (name: string, options: object) => ({
      name,
      collection: 'orders',
      connectionName: 'default',
      options,
      invoke: () => undefined,
    });
    expect(() => planStreams([handler('L.a', { backfill: true }), handler('L.b', {})])).toThrow(
      ChangeStreamConfigError,
    );
    expect(() => planStreams([handler('L.a', { backfill: true })])).toThrow(
      /L\.a asks for a backfill, but the stream's fullDocument is "default".*fullDocument: 'updateLookup'/,
    );
    expect(() =>
      planStreams([handler('L.a', { backfill: { batchSize: 0 }, fullDocument: 'updateLookup' })]),
    ).toThrow(/"backfill".*batchSize/);
    expect(
      planStreams([
        handler('L.a', { backfill: true }),
        handler('L.b', { fullDocument: 'required' }),
      ]),
    ).toHaveLength(1);
  });

  it('reads records with and without backfill progress, and refuses a malformed one', () => {
    const position: StreamPosition = {
      token: startToken,
      backfill: {
        completed: ['A.a'],
        run: {
          id: 'r1',
          handlers: ['B.b'],
          after: EJSON.stringify(new mongoose.Types.ObjectId('65a0a0a0a0a0a0a0a0a0a0a0'), {
            relaxed: false,
          }),
          done: 3,
          total: 10,
          startedAt: '2026-01-01T00:00:00.000Z',
        },
      },
    };
    expect(decodePosition('k', encodePosition(position))).toEqual(position);
    expect(decodePosition('k', encodePosition({ token: startToken }))).toEqual({
      token: startToken,
    });
    expect(() =>
      decodePosition('k', JSON.stringify({ v: 2, token: startToken, backfill: { run: {} } })),
    ).toThrow(/backfill/);
  });
});
