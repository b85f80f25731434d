import { afterEach, describe, expect, it } from '@jest/globals';
import {
  backfillStream,
  FakeCollection,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import { MAX_PENDING_BYTES } from '../../lib/backfill/pending-chunk.js';
import type { FakeScript } from '../fixtures/fake-change-stream.js';
import { deferred } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopBackfillStreams);

describe('backfill read-ahead', () => {
  it('reads ahead no more than MAX_PENDING_BYTES of large documents, and still delivers each once', async () => {
    const blob = 'x'.repeat(2 ** 20); // 1 MiB per document: a chunk of 2 is 2 MiB
    const ids = Array.from({ length: 100 }, (_, i) => i + 1);
    const collection = new FakeCollection();
    for (const id of ids) collection.docs.set(id, { _id: id, v: 0, blob } as never);
    const held = deferred();
    const script: FakeScript = {
      aggregate: { postBatchResumeToken: startToken },
      // The second getMore waits: no window closes meanwhile, so every chunk read stays pending.
      getMores: [[], { after: held.promise, then: { batch: [] } }],
    };
    const { stream, seen } = backfillStream({
      scripts: [script],
      collection,
      handlers: { onOrder: { backfill: { batchSize: 2 }, fullDocument: 'required' } },
    });
    stream.start();
    const chunksInBound = MAX_PENDING_BYTES / (2 * 2 ** 20);
    await eventually('the read-ahead filled', () => collection.queries.length >= chunksInBound);
    // The finds chain on each other's replies (no timer): one macrotask later every find the
    // bound allows was issued. The documents bound alone (16,000) would have read all 50 chunks.
    await new Promise((resolve) => setImmediate(resolve));
    expect(collection.queries.length).toBe(chunksInBound);
    held.resolve();
    await eventually('every document delivered', () => seen.length >= ids.length, 5000);
    expect(seen.map((s) => s.id).sort((a, b) => Number(a) - Number(b))).toEqual(ids);
  });
});
