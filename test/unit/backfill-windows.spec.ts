import { afterEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import {
  backfillStream,
  BACKFILL_KEY,
  changeOf,
  FakeCollection,
  type Seen,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import type { FakeScript, Reply } from '../fixtures/fake-change-stream.js';
import { deferred, logs } from '../fixtures/stream-harness.js';
import { delay, eventually } from '../fixtures/test-env.js';

afterEach(stopBackfillStreams);

const ops = (seen: Seen[]) => seen.map((s) => `${s.op}:${s.id}:${s.v}`);

describe('Backfill windows (a chunk next to the stream, over the driver fake)', () => {
  it("drops a chunk's document for every event read from its find on, and delivers the rest only after a read issued after the find returned", async () => {
    logs.lines.splice(0);
    const collection = new FakeCollection([1, 2, 3, 4]);
    const release = deferred();
    collection.hold = () => ({ snapshot: release.promise, reply: release.promise });
    const script: FakeScript = {
      aggregate: { postBatchResumeToken: startToken },
      getMores: [
        [], // the open's first read; the find is issued after it
        [changeOf(1, 'update', { _id: 1, v: 1 })], // read while the find runs
        // Issued before the find returned, answered after: in the window, but it does not close it.
        {
          after: release.promise.then(() => delay(30)),
          then: { batch: [changeOf(2, 'update', { _id: 2, v: 2 })] },
        },
        [changeOf(3, 'update', { _id: 3, v: 3 })], // the first read issued after the find returned: closes the window
        [changeOf(4, 'insert', { _id: 5, v: 4 })],
      ],
    };
    const { stream, seen } = backfillStream({
      scripts: [script],
      collection,
      handlers: { onOrder: { backfill: { batchSize: 10 }, fullDocument: 'required' } },
    });
    stream.start();
    await eventually('the update read while the find runs', () => seen.length === 1);
    // The writes behind events 2 and 3 are in the find's snapshot.
    collection.docs.set(1, { _id: 1, v: 1 });
    collection.docs.set(2, { _id: 2, v: 2 });
    collection.docs.set(3, { _id: 3, v: 3 });
    release.resolve();
    await eventually('the insert after the chunk', () => seen.some((s) => s.id === 5));
    expect(ops(seen)).toEqual([
      'update:1:1',
      'update:2:2',
      'update:3:3',
      'backfill:4:0', // only the document no event touched, and only after the closing read
      'insert:5:4',
    ]);
    expect(collection.queries).toEqual([
      { after: undefined, limit: 10, filter: undefined, projection: undefined, fresh: true },
    ]);
    // The run's end counts what the handlers got: 1 document, not the 4 read.
    await eventually('the run finished', () =>
      logs.messages('log').some((m) => m.includes(`of ${BACKFILL_KEY} finished`)),
    );
    expect(logs.messages('log').filter((m) => m.includes(`of ${BACKFILL_KEY} finished`))).toEqual([
      expect.stringMatching(
        /finished: 1 document delivered to the handlers \(4 read; 3 not delivered: the stream delivered a change of them while their chunk was read\)\.$/,
      ),
    ]);
  });

  it('takes the document of an event whose documentKey names none from its fullDocument, and reads a chunk again after an event it cannot attribute', async () => {
    const collection = new FakeCollection([1, 2, 3]);
    const release = deferred();
    collection.hold = (query) =>
      query.after === undefined && collection.queries.length === 1
        ? { snapshot: Promise.resolve(), reply: release.promise }
        : { snapshot: Promise.resolve(), reply: Promise.resolve() };
    const odd = (n: number, operationType: string, fields: object) =>
      ({
        _id: { _data: `t${n}` },
        operationType,
        documentKey: { $set: { v: 1 } },
        ...fields,
      }) as unknown as ChangeEvent;
    const script: FakeScript = {
      aggregate: { postBatchResumeToken: startToken },
      getMores: [
        [],
        // While the first find runs: an update keyed by its fullDocument, and a delete that names no document.
        {
          after: delay(5),
          then: {
            batch: [odd(1, 'update', { fullDocument: { _id: 1, v: 1 } }), odd(2, 'delete', {})],
          },
        },
        { after: release.promise.then(() => delay(20)), then: { batch: [] } },
      ],
    };
    const { stream, seen } = backfillStream({
      scripts: [script],
      collection,
      handlers: { onOrder: { backfill: { batchSize: 10 }, fullDocument: 'updateLookup' } },
    });
    stream.start();
    await eventually('both odd events read', () => seen.length === 2);
    collection.docs.set(1, { _id: 1, v: 1 });
    collection.docs.delete(2);
    release.resolve();
    await eventually('the chunk delivered', () => seen.some((s) => s.op === 'backfill'));
    await eventually('the run completed', () => stream.status().backfill === null);
    // The first chunk was dropped for the delete and read again: its new read no longer finds 2.
    expect(collection.queries.map((q) => q.after)).toEqual([undefined, undefined]);
    expect(ops(seen)).toEqual([
      'update:undefined:1',
      'delete:undefined:null',
      'backfill:1:1',
      'backfill:3:0',
    ]);
  });

  it('keeps per-document order and the last state of every document under writes, a lagging stream and concurrency (simulation)', async () => {
    for (const [seed, materialize] of [
      [1, false],
      [2, false],
      [3, false],
      [4, true],
      [5, true],
      [6, true],
    ] as const) {
      const outcome = await simulate(seed, materialize);
      expect(outcome.mismatches).toEqual([]);
      expect(outcome.backfillAfterNewer).toEqual([]);
      expect(outcome.backfilled).toBeGreaterThan(0);
      await stopBackfillStreams();
    }
  });

  it('delivers no older change of a document after its backfilled copy when reads report their cluster time (simulation)', async () => {
    for (const [seed, materialize] of [
      [11, false],
      [12, false],
      [13, true],
      [14, true],
    ] as const) {
      const outcome = await simulate(seed, materialize, true);
      expect(outcome.mismatches).toEqual([]);
      expect(outcome.backfillAfterNewer).toEqual([]);
      expect(outcome.olderAfterBackfill).toEqual([]);
      expect(outcome.backfilled).toBeGreaterThan(0);
      await stopBackfillStreams();
    }
  });
});

/** A small deterministic random generator, so a failing seed can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

/**
 * 60 documents, a writer that updates, inserts and deletes while the backfill runs (7 per chunk),
 * a stream that gets at most 3 events per read (it lags), finds that snapshot and reply at random
 * moments, 4 handlers at once (per-document order). Every event carries its post-image (the
 * document as that write left it, as `fullDocument: 'required'`): the hardest case, since an
 * older event then carries an older state. `materialize`: the server reads a whole scan at its
 * first find, and later chunks come from that (see `FakeCollection.materialize`).
 */
async function simulate(seed: number, materialize: boolean, timed = false) {
  const at = (t: number) => new mongoose.mongo.Timestamp({ t, i: 1 });
  const hexToken = (t: number) => ({ _data: `82${t.toString(16).padStart(8, '0')}000000012B02` });
  const rnd = random(seed);
  const ids = Array.from({ length: 60 }, (_, i) => i * 10);
  const collection = new FakeCollection(ids);
  collection.materialize = materialize;
  collection.hold = () => {
    const snapshot = delay(Math.floor(rnd() * 4));
    return { snapshot, reply: snapshot.then(() => delay(Math.floor(rnd() * 4))) };
  };
  const oplog: ChangeEvent[] = [];
  let readPos = 0;
  let version = 0;
  // `timed`: reads report their cluster time, events carry theirs, batches a post-batch token.
  if (timed) collection.readAt = () => at(version);
  const stamped = (event: ChangeEvent, t: number) =>
    (timed ? { ...event, clusterTime: at(t) } : event) as ChangeEvent;
  const getMores = {
    shift: (): Reply => ({
      after: delay(1 + Math.floor(rnd() * 3)),
      get then() {
        const batch = oplog.slice(readPos, readPos + (timed ? 1 : 3));
        readPos += batch.length;
        if (!timed) return { batch };
        const last =
          readPos === oplog.length
            ? version
            : Number((batch.at(-1)!._id as { _data: string })._data.slice(1));
        return { batch, postBatchResumeToken: hexToken(last) };
      },
    }),
  } as unknown as Reply[];
  const { stream, seen, store } = backfillStream({
    scripts: [{ aggregate: { postBatchResumeToken: startToken }, getMores }],
    collection,
    handlers: { onOrder: { backfill: { batchSize: 7 }, fullDocument: 'required' } },
    options: { concurrency: 4 },
    handle: () => (rnd() < 0.3 ? delay(1) : undefined),
  });
  stream.start();
  let nextId = 1;
  for (let n = 0; n < 150; n++) {
    const live = [...collection.docs.keys()];
    const roll = rnd();
    const tokenNo = ++version;
    if (roll < 0.6 && live.length > 0) {
      const doc = { _id: live[Math.floor(rnd() * live.length)], v: tokenNo };
      collection.docs.set(doc._id, doc);
      oplog.push(stamped(changeOf(tokenNo, 'update', doc), tokenNo));
    } else if (roll < 0.8) {
      const doc = { _id: nextId, v: tokenNo }; // ids between the existing ones: below and above the scan
      nextId += 10;
      collection.docs.set(doc._id, doc);
      oplog.push(stamped(changeOf(tokenNo, 'insert', doc), tokenNo));
    } else if (live.length > 0) {
      const doc = { _id: live[Math.floor(rnd() * live.length)], v: tokenNo };
      collection.docs.delete(doc._id);
      oplog.push(stamped(changeOf(tokenNo, 'delete', doc), tokenNo));
    }
    await delay(rnd() < 0.5 ? 0 : 1);
  }
  await eventually(
    `seed ${seed}: the backfill completed and the stream read everything`,
    async () =>
      readPos === oplog.length &&
      stream.status().inFlightEvents === 0 &&
      ((await store.load(BACKFILL_KEY))?.backfill?.completed ?? []).includes('Listener.onOrder'),
    20_000,
  );
  const last = new Map<number, Seen>();
  const backfillAfterNewer: string[] = [];
  const newest = new Map<number, number>();
  const copied = new Map<number, number>();
  const olderAfterBackfill: string[] = [];
  for (const s of seen) {
    if (s.op === 'backfill') copied.set(s.id, s.v ?? -1);
    else if (s.op !== 'delete' && (copied.get(s.id) ?? -1) > (s.v ?? -1))
      olderAfterBackfill.push(
        `seed ${seed}: ${s.op} of ${s.id} (v${s.v}) after its copy v${copied.get(s.id)}`,
      );
    if (s.op === 'backfill' && (newest.get(s.id) ?? -1) > (s.v ?? -1))
      backfillAfterNewer.push(
        `seed ${seed}: backfill of ${s.id} (v${s.v}) after v${newest.get(s.id)}`,
      );
    if (s.op === 'delete') newest.set(s.id, Infinity);
    else newest.set(s.id, Math.max(newest.get(s.id) ?? -1, s.v ?? -1));
    last.set(s.id, s);
  }
  const mismatches: string[] = [];
  for (const [id, doc] of collection.docs) {
    const final = last.get(id);
    if (!final || final.op === 'delete' || final.v !== doc.v)
      mismatches.push(`seed ${seed}: ${id} is v${doc.v}, last handled ${final?.op}:${final?.v}`);
  }
  for (const [id, final] of last)
    if (!collection.docs.has(id) && final.op !== 'delete')
      mismatches.push(`seed ${seed}: ${id} is deleted, last handled ${final.op}`);
  return {
    mismatches,
    backfillAfterNewer,
    olderAfterBackfill,
    backfilled: seen.filter((s) => s.op === 'backfill').length,
  };
}
