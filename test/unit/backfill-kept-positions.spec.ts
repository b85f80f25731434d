import { afterEach, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import mongoose from 'mongoose';
import { Checkpointer } from '../../lib/checkpoint/checkpointer.js';
import type { PositionStore, StoredBackfill, StreamPosition } from '../../lib/index.js';
import {
  backfillStream,
  BACKFILL_KEY,
  FakeCollection,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import { FencedMemoryStore } from '../fixtures/memory-lease-store.js';
import { deferred } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

const { EJSON } = mongoose.mongo.BSON;

Logger.overrideLogger(false);
afterEach(stopBackfillStreams);

const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const recordAt = (n: number): StoredBackfill => ({
  completed: [],
  run: {
    id: 'r1',
    handlers: ['Listener.onOrder'],
    after: String(n),
    done: n,
    total: null,
    startedAt: '2026-01-01T00:00:00.000Z',
  },
});

describe('The backfill record goes wherever the position goes', () => {
  it('a position remembered across lease terms (the store lost everything) keeps its backfill record', async () => {
    const saves: StreamPosition[] = [];
    let wiped = false;
    const store: PositionStore = {
      load: async () => (wiped ? null : (saves.at(-1) ?? null)),
      save: async (_key, position) => void saves.push(position),
    };
    const checkpointer = new Checkpointer({
      store,
      key: 'k',
      settings: { maxEvents: 100, intervalMs: 60_000, maxUnsavedEvents: 10_000 },
    });
    checkpointer.begin(null);
    await checkpointer.load();
    let holding = true;
    checkpointer.backfill.at = (seq) => (holding ? recordAt(seq) : undefined);
    checkpointer.ack({ _data: 't2' }, 2);
    expect(await checkpointer.flush()).toBe(true);
    checkpointer.ack({ _data: 't3' }, 3);
    expect(checkpointer.positionWithBackfill).toEqual({
      token: { _data: 't3' },
      backfill: recordAt(3),
    });
    holding = false; // the lease term ended
    wiped = true; // and Redis restarted empty
    checkpointer.begin(null);
    await checkpointer.load();
    expect(checkpointer.position).toEqual({ token: { _data: 't3' } });
    expect(checkpointer.backfill.loaded).toEqual(recordAt(3));
    checkpointer.dispose();
  });

  it('Redis restarted empty mid-backfill: the position left after the lost lease carries the run, which resumes after its last acknowledged chunk', async () => {
    const store = new FencedMemoryStore();
    const collection = new FakeCollection(ids(12));
    const stuck = deferred();
    let firstTerm = true;
    const { stream, seen } = backfillStream({
      scripts: [{ aggregate: { postBatchResumeToken: startToken } }, {}],
      collection,
      store,
      leases: { instanceId: 'A' },
      handlers: { onOrder: { backfill: { batchSize: 4 }, fullDocument: 'updateLookup' } },
      // Document 6 (second chunk) does not finish in the first lease term.
      handle: (s) => (firstTerm && s.id === 6 ? stuck.promise : undefined),
      options: { concurrency: 8 },
    });
    stream.start();
    const storedAfter = async () => {
      const after = (await store.load(BACKFILL_KEY))?.backfill?.run?.after;
      return after === undefined ? undefined : EJSON.parse(after);
    };
    await eventually('the first chunk stored as done', async () => (await storedAfter()) === 4);
    const run = (await store.load(BACKFILL_KEY))!.backfill!.run!;
    const queriesBefore = collection.queries.length;
    store.wipe(); // Redis restarted empty: the position, its backfill record and the lease are gone
    await eventually('the position was left for the next holder', () => store.orphans.size > 0);
    expect(store.orphans.get(BACKFILL_KEY)?.backfill?.run).toMatchObject({ id: run.id, done: 4 });
    firstTerm = false;
    stuck.resolve();
    await eventually('the run completed', async () =>
      ((await store.load(BACKFILL_KEY))?.backfill?.completed ?? []).includes('Listener.onOrder'),
    );
    // The next lease term went on with the same run, after the acknowledged chunk: not from the start.
    const later = collection.queries.slice(queriesBefore);
    expect(later.every((q) => q.after !== undefined)).toBe(true);
    expect(later.map((q) => Number(q.after))[0]).toBe(4);
    const backfilled = seen.filter((s) => s.op === 'backfill');
    expect(backfilled.every((s) => s.run === run.id)).toBe(true);
    expect(new Set(backfilled.map((s) => s.id))).toEqual(new Set(ids(12)));
  });
});
