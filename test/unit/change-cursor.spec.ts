import { describe, expect, it } from '@jest/globals';
import type { mongo } from 'mongoose';
import { DriverChangeCursor } from '../../lib/stream/change-cursor.js';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import { FakeChangeStream, insert, token } from '../fixtures/fake-change-stream.js';

const open = (batch: ChangeEvent[]) => {
  const stream = new FakeChangeStream({ aggregate: { batch } }, {});
  return { stream, cursor: new DriverChangeCursor(stream as unknown as mongo.ChangeStream) };
};

describe('DriverChangeCursor.nextBuffered', () => {
  it('takes buffered events in order and moves the resume token with each', async () => {
    const { stream, cursor } = open([insert(1), insert(2), insert(3)]);
    expect((await cursor.tryNext())?._id).toEqual(token(1));
    expect(cursor.nextBuffered()?._id).toEqual(token(2));
    expect(stream.resumeToken).toEqual(token(2));
    expect(cursor.nextBuffered()?._id).toEqual(token(3));
    expect(cursor.nextBuffered()).toBeNull();
  });

  it('closes the stream on an event it cannot take, as tryNext does, so nothing after it is read', async () => {
    const tokenless = {
      operationType: 'insert',
      documentKey: { _id: 2 },
    } as unknown as ChangeEvent;
    const { stream, cursor } = open([insert(1), tokenless, insert(3)]);
    await cursor.tryNext();
    expect(() => cursor.nextBuffered()).toThrow(/lacks a resume token/);
    expect(stream.closed).toBe(true);
    expect(stream.resumeToken).toEqual(token(1)); // a reopen resumes after the last event handed out
    expect(cursor.nextBuffered()).toBeNull();
  });

  it('closes the driver stream once, however often it is closed', async () => {
    const { stream, cursor } = open([insert(1)]);
    let closes = 0;
    const close = stream.close.bind(stream);
    stream.close = () => (closes++, close());
    await Promise.all([cursor.close(), cursor.close()]);
    await cursor.close();
    expect(closes).toBe(1);
  });
});
