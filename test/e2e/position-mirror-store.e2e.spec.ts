import { afterEach, describe, expect, it } from '@jest/globals';
import { InvalidStoredTokenError } from '../../lib/change-stream.errors.js';
import {
  MongoPositionMirror,
  type MirrorDocument,
} from '../../lib/position-mirror/mongo-position-mirror.js';
import { encodePosition } from '../../lib/position/position.codec.js';
import type { ServerProbe } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { uniqueName } from '../fixtures/test-env.js';

const KEY = 'change-stream:{svc:db:items}';
const raw = (n: number, holder?: string, fence?: number) =>
  encodePosition(
    { token: { _data: `tok${n}` } },
    new Date(),
    holder === undefined ? undefined : { holder, fence: fence! },
  );

/** The fenced upsert on the test server: a refused write is the duplicate-key error of the upsert's insert. */
describe('MongoPositionMirror (real MongoDB)', () => {
  const scope = new TestScope();
  afterEach(() => scope.closeAll());
  let probe: ServerProbe;
  async function mirror(): Promise<MongoPositionMirror> {
    probe = await scope.probe(uniqueName('mirrorstore'));
    return new MongoPositionMirror(probe.collection('change_stream_positions') as never);
  }
  const collection = () => probe.db.collection<MirrorDocument>('change_stream_positions');
  const stored = async () => (await collection().findOne({ _id: KEY }))!;

  it('replaces a document with a larger or equal fence, refuses a smaller one and leaves the document as it was', async () => {
    const m = await mirror();
    expect(
      await m.write(KEY, raw(1, 'a', 5), { generation: 0, fence: 5 }, { holder: 'a', fence: 5 }),
    ).toBe(true);
    expect(
      await m.write(KEY, raw(2, 'b', 6), { generation: 0, fence: 6 }, { holder: 'b', fence: 6 }),
    ).toBe(true);
    expect(
      await m.write(KEY, raw(3, 'a', 5), { generation: 0, fence: 5 }, { holder: 'a', fence: 5 }),
    ).toBe(false);
    expect(await stored()).toMatchObject({ fence: 6, generation: 0, holder: 'b' });
    expect((await m.read(KEY))?.position).toEqual({ token: { _data: 'tok2' } });
  });

  it('a higher generation replaces any fence of a lower one, and is then kept against it', async () => {
    const m = await mirror();
    await m.write(KEY, raw(1, 'a', 57), { generation: 0, fence: 57 }, { holder: 'a', fence: 57 });
    expect(
      await m.write(KEY, raw(2, 'b', 1), { generation: 1, fence: 1 }, { holder: 'b', fence: 1 }),
    ).toBe(true);
    expect(
      await m.write(KEY, raw(3, 'a', 57), { generation: 0, fence: 57 }, { holder: 'a', fence: 57 }),
    ).toBe(false);
    expect(await m.stamp(KEY)).toEqual({ generation: 1, fence: 1 });
    expect((await m.read(KEY))?.holder).toBe('b');
  });

  it('without leases the last writer wins', async () => {
    const m = await mirror();
    await m.write(KEY, raw(1, 'a', 57), { generation: 0, fence: 57 }, { holder: 'a', fence: 57 });
    expect(await m.write(KEY, raw(2), { generation: 0, fence: 0 }, undefined)).toBe(true);
    expect((await m.read(KEY))?.position).toEqual({ token: { _data: 'tok2' } });
  });

  it('a document it cannot read is an InvalidStoredTokenError naming the collection and key', async () => {
    const m = await mirror();
    await collection().insertOne({ _id: KEY, position: '{"v":2,"token":{}}' } as never);
    const error = await m.read(KEY).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidStoredTokenError);
    expect((error as Error).message).toContain(`change_stream_positions _id=${KEY}`);
  });
});
