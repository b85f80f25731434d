import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import mongoose, { type Connection, type mongo } from 'mongoose';
import { DriverChangeCursor } from '../../lib/stream/change-cursor.js';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import { testEnv, uniqueName } from '../fixtures/test-env.js';

/** The driver's reply as `DriverChangeCursor.nextBuffered` relies on it (mongodb 7, `CursorResponse`). */
interface ReplyInternals {
  iterated: number;
  _batch: { cache: Record<number, unknown> } | null;
}
const replyOf = (stream: mongo.ChangeStream) =>
  (stream as unknown as { cursor: { documents: ReplyInternals } }).cursor.documents;

/**
 * `nextBuffered` reads what the driver already holds without `tryNext`, by the driver's own
 * internals: these specs fail if a driver release changes them, instead of the module silently
 * falling back (slower, and keeping a whole reply's parse in memory) or reading differently.
 */
describe('reading buffered events through the driver (real MongoDB)', () => {
  let connection: Connection;
  let items: mongo.Collection<{ _id: number }>;
  const streams: mongo.ChangeStream[] = [];

  beforeEach(async () => {
    connection = await mongoose
      .createConnection(testEnv().mongoUri, { dbName: uniqueName('reads') })
      .asPromise();
    items = connection.db!.collection('items');
  });
  afterEach(async () => {
    await Promise.all(streams.splice(0).map((s) => s.close()));
    await connection.dropDatabase();
    await connection.close();
  });

  /** A stream resuming after a marker event, with `count` inserts after it, all in its next reply. */
  async function backlog(
    count: number,
  ): Promise<{ stream: mongo.ChangeStream; cursor: DriverChangeCursor }> {
    const opener = items.watch([], { maxAwaitTimeMS: 100 });
    streams.push(opener);
    await opener.tryNext();
    await items.insertOne({ _id: -1 });
    let marker: ChangeEvent | null = null;
    while (!marker) marker = await opener.tryNext();
    await items.insertMany(Array.from({ length: count }, (_, i) => ({ _id: i })));
    const stream = items.watch([], { resumeAfter: marker._id, maxAwaitTimeMS: 100 });
    streams.push(stream);
    return { stream, cursor: new DriverChangeCursor(stream) };
  }

  it('returns the events tryNext would, in order, and moves the driver’s resume token with each', async () => {
    const { stream, cursor } = await backlog(50);
    const read: ChangeEvent[] = [];
    let buffered = 0;
    while (read.length < 50) {
      const change = cursor.nextBuffered();
      if (change === null) {
        const next = await cursor.tryNext();
        if (next) read.push(next);
        continue;
      }
      buffered++;
      read.push(change);
      // The driver would resume after this event (after the last of a reply: its post-batch token, if any).
      if (stream.bufferedCount() > 0) expect(stream.resumeToken).toEqual(change._id);
    }
    expect(buffered).toBeGreaterThan(0);
    expect(cursor.nextBuffered()).toBeNull(); // nothing buffered: the caller goes back to tryNext
    const ids = read.map((c) => (c as { documentKey?: { _id: unknown } }).documentKey?._id);
    expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('leaves the driver resuming from the end of a reply once its last event was read', async () => {
    const { stream, cursor } = await backlog(30);
    while (!(await cursor.tryNext())); // a real mongod may answer the first reads empty
    let last: ChangeEvent | null = null;
    for (let change = cursor.nextBuffered(); change !== null; change = cursor.nextBuffered())
      last = change;
    expect(last).not.toBeNull();
    expect(stream.bufferedCount()).toBe(0);
    // Only here does the driver resume (its next getMore): from the reply's post-batch token, else the last event's.
    const inner = (stream as unknown as { cursor: { postBatchResumeToken?: unknown } }).cursor;
    expect(stream.resumeToken).toEqual(inner.postBatchResumeToken ?? last!._id);
  });

  it('lets the driver resume after a lost cursor with the event after the last one read', async () => {
    const { stream, cursor } = await backlog(10);
    const read: ChangeEvent[] = [];
    while (read.length < 10) {
      const change = cursor.nextBuffered() ?? (await cursor.tryNext());
      if (change) read.push(change);
    }
    await items.insertMany(Array.from({ length: 5 }, (_, i) => ({ _id: 10 + i })));
    const cursorId = (stream as unknown as { cursor: { id?: mongo.Long } }).cursor.id;
    expect(cursorId).toBeDefined();
    await connection.db!.command({ killCursors: 'items', cursors: [cursorId] }); // the next getMore fails with CursorNotFound, which the driver resumes from
    while (read.length < 15) {
      const change = cursor.nextBuffered() ?? (await cursor.tryNext());
      if (change) read.push(change);
    }
    const ids = read.map((c) => (c as { documentKey?: { _id: unknown } }).documentKey?._id);
    expect(ids).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(stream.closed).toBe(false);
  });

  it('lets the driver drop its parse of each event it handed out', async () => {
    const { stream, cursor } = await backlog(20);
    while (!(await cursor.tryNext())); // the first event: a real mongod may answer the first reads empty
    const reply = replyOf(stream);
    expect(reply._batch).not.toBeNull();
    expect(reply._batch!.cache[0]).toBeDefined(); // tryNext's own read: the driver keeps it
    for (let i = 1; i <= 10; i++) expect(cursor.nextBuffered()).not.toBeNull();
    expect(reply.iterated).toBe(11);
    for (let i = 1; i <= 10; i++) expect(reply._batch!.cache[i]).toBeUndefined();
  });

  it('falls back to tryNext once the stream is closed', async () => {
    const { stream, cursor } = await backlog(5);
    while (!(await cursor.tryNext()));
    expect(stream.bufferedCount()).toBe(4);
    await stream.close();
    expect(cursor.nextBuffered()).toBeNull();
  });
});
