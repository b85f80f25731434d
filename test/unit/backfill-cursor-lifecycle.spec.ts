import { afterEach, describe, expect, it } from '@jest/globals';
import {
  backfillStream,
  BACKFILL_KEY,
  FakeCollection,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import { InMemoryPositionStore } from '../../lib/index.js';
import { networkError, type FakeScript } from '../fixtures/fake-change-stream.js';
import { deferred } from '../fixtures/stream-harness.js';
import { delay, eventually } from '../fixtures/test-env.js';

afterEach(stopBackfillStreams);

describe('backfill cursor: the first read and a reopen', () => {
  it('first start: the first chunk is read only after the stream has a start position', async () => {
    const collection = new FakeCollection([1, 2, 3]);
    const store = new InMemoryPositionStore();
    const positionAtSnapshot: Array<string | undefined> = [];
    collection.hold = () => {
      positionAtSnapshot.push(store.raw(BACKFILL_KEY));
      return { snapshot: Promise.resolve(), reply: Promise.resolve() };
    };
    const script: FakeScript = { aggregate: { postBatchResumeToken: startToken }, getMores: [[]] };
    const { stream, seen } = backfillStream({ scripts: [script], collection, store });
    stream.start();
    await eventually('the chunk delivered', () => seen.length === 3);
    // The find that took the first chunk's snapshot ran before the aggregate answered: a write
    // between that snapshot and the stream's start is neither in the chunk nor in the stream.
    expect(positionAtSnapshot[0]).toBeDefined();
  });

  it('a backfill cursor closed by a reopen issues no more chunk reads', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => i + 1);
    const collection = new FakeCollection(ids);
    const firstReply = deferred();
    let n = 0;
    collection.hold = () => {
      n++;
      return {
        snapshot: Promise.resolve(),
        reply: n === 1 ? firstReply.promise : Promise.resolve(),
      };
    };
    const failed = deferred();
    const script1: FakeScript = {
      aggregate: { postBatchResumeToken: startToken },
      getMores: [
        [],
        { after: delay(5).then(() => failed.resolve()), then: { batch: [] } },
        { error: networkError() },
      ],
    };
    const script2: FakeScript = { getMores: [[]] };
    const { stream, seen } = backfillStream({
      scripts: [script1, script2],
      collection,
      handlers: { onOrder: { backfill: { batchSize: 2 }, fullDocument: 'required' } },
    });
    stream.start();
    await failed.promise;
    await delay(30); // the reopen happened; the old cursor's read still runs
    firstReply.resolve();
    await eventually(
      'every document delivered',
      () => new Set(seen.map((s) => s.id)).size === 20,
      5000,
    );
    await delay(50);
    const afters = collection.queries.map((q) => q.after);
    // One read from the start by the closed cursor, then the new cursor's 11 (after undefined, 2, …, 20).
    expect(afters.filter((a) => a === 2)).toHaveLength(1);
  });
});
