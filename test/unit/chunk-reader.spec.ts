import { describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';
import { ChunkReadInterrupted, connectionChunkReader } from '../../lib/backfill/chunk-reader.js';

const tick = (ms = 1) => new Promise((resolve) => setTimeout(resolve, ms));

/** A find cursor as the driver's behaves when closed before its first batch: `next()` answers null. */
function fakeConnection(ids: number[]): Connection {
  const collection = {
    find(filter: { _id?: { $gt: number } }) {
      const after = filter._id?.$gt ?? -Infinity;
      let docs = ids.filter((id) => id > after).map((_id) => ({ _id }));
      let closed = false;
      let limit = Infinity;
      const cursor = {
        sort: () => cursor,
        batchSize: (n: number) => ((limit = n), cursor),
        async next() {
          await tick(5);
          if (closed) return null;
          return docs.shift() ?? null;
        },
        readBufferedDocuments: (n: number) => docs.splice(0, Math.min(n, limit - 1)),
        async close() {
          closed = true;
          docs = [];
        },
      };
      return cursor;
    },
    estimatedDocumentCount: async () => ids.length,
  };
  return {
    name: 'default',
    db: { collection: () => collection },
    getClient: () => ({ topology: { description: {} } }), // no sessions, as mongo-java-server
  } as unknown as Connection;
}

describe('connectionChunkReader', () => {
  it('a read whose cursor another read closed fails instead of answering a short chunk (which would end the scan)', async () => {
    const reader = connectionChunkReader(fakeConnection([1, 2, 3, 4, 5, 6]), 'orders');
    // A read still under way (a cursor closed by a reopen), then a fresh read from the start.
    const stray = reader.read({ after: 2, limit: 2 });
    await tick(1);
    const fresh = reader.read({ after: undefined, limit: 2, fresh: true });
    await expect(stray).rejects.toBeInstanceOf(ChunkReadInterrupted);
    expect((await fresh).docs.map((d) => d._id)).toEqual([1, 2]);
    // The fresh read's cursor is still open: the next chunk continues it.
    expect((await reader.read({ after: 2, limit: 2 })).docs.map((d) => d._id)).toEqual([3, 4]);
  });

  it('a short read at the end of the collection is the end, and closes its own cursor only', async () => {
    const reader = connectionChunkReader(fakeConnection([1, 2, 3]), 'orders');
    expect((await reader.read({ after: undefined, limit: 2 })).docs.map((d) => d._id)).toEqual([
      1, 2,
    ]);
    expect((await reader.read({ after: 2, limit: 2 })).docs.map((d) => d._id)).toEqual([3]);
  });
});
