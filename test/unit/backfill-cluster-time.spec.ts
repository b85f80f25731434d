import { afterEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import {
  backfillStream,
  changeOf,
  FakeCollection,
  type Seen,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import type { Reply } from '../fixtures/fake-change-stream.js';
import { deferred } from '../fixtures/stream-harness.js';
import { delay, eventually } from '../fixtures/test-env.js';

afterEach(stopBackfillStreams);

const { Timestamp } = mongoose.mongo;
const at = (t: number) => new Timestamp({ t, i: 1 });
const ops = (seen: Seen[]) => seen.map((s) => `${s.op}:${s.id}:${s.v}`);

/** A change at cluster time `t` (as mongod sends it: `clusterTime` beside the token). */
const timed = (t: number, op: 'insert' | 'update', doc: { _id: number; v: number }) =>
  ({ ...changeOf(t, op, doc), clusterTime: at(t) }) as unknown as ChangeEvent;

/** A mongod-shaped post-batch token (KeyString: 0x82, then seconds and increment). */
const postBatchToken = (t: number) => ({
  _data: `82${t.toString(16).padStart(8, '0')}000000012B0229296E04`,
});

/**
 * Documents 1, 2, 3; before the chunk's find, writes at t2 (2 → v2), t4 (1 → v4), t6 (1 → v6):
 * the find reads at t6 and sees 1:v6, 2:v2, 3:v0. The stream lags: the first read issued after
 * the find returned brings only t2 (a capped batch), t4 and t6 come in later reads.
 */
async function lagging(tail: Reply[]) {
  const collection = new FakeCollection([1, 2, 3]);
  collection.docs.set(1, { _id: 1, v: 6 });
  collection.docs.set(2, { _id: 2, v: 2 });
  collection.readAt = () => at(6);
  const release = deferred();
  collection.hold = () => ({ snapshot: Promise.resolve(), reply: release.promise });
  const { stream, seen } = backfillStream({
    scripts: [
      {
        aggregate: { postBatchResumeToken: startToken },
        getMores: [
          [], // the open's first read
          // Issued before the find returned, answered after: in the window.
          { after: release.promise.then(() => delay(30)), then: { batch: [] } },
          [timed(2, 'update', { _id: 2, v: 2 })], // the first read issued after the find returned
          [timed(4, 'update', { _id: 1, v: 4 })], // older than the chunk's copy of 1 (v6)
          [timed(6, 'update', { _id: 1, v: 6 })],
          ...tail,
        ],
      },
    ],
    collection,
    handlers: { onOrder: { backfill: { batchSize: 10 }, fullDocument: 'required' } },
  });
  stream.start();
  await delay(10);
  release.resolve();
  await eventually('the insert after the backlog', () => seen.some((s) => s.id === 5));
  await eventually('the chunk delivered', () => seen.some((s) => s.op === 'backfill'));
  return ops(seen);
}

describe('Backfill windows by cluster time (the find reports its operationTime)', () => {
  it('keeps a window open while a lagging stream still has changes at or before the find, and closes it at the first later event', async () => {
    expect(await lagging([[timed(8, 'insert', { _id: 5, v: 8 })]])).toEqual([
      'update:2:2',
      'update:1:4', // the older change of 1 came in the window: 1's copy is dropped
      'update:1:6',
      'insert:5:8', // past the find's time: the window closes after it
      'backfill:3:0',
    ]);
  });

  it('closes a window at a post-batch token at the find time, with no later event', async () => {
    expect(
      await lagging([
        { batch: [], postBatchResumeToken: postBatchToken(6) },
        { after: delay(50), then: { batch: [timed(8, 'insert', { _id: 5, v: 8 })] } },
      ]),
    ).toEqual(['update:2:2', 'update:1:4', 'update:1:6', 'backfill:3:0', 'insert:5:8']);
  });
});
