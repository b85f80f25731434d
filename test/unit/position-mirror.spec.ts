import { afterAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { FencedWriteError } from '../../lib/change-stream.errors.js';
import type { StreamLease } from '../../lib/interfaces/lease-store.interface.js';
import type {
  ResumeTokenStore,
  StreamPosition,
} from '../../lib/interfaces/position-store.interface.js';
import { type MirrorStamp, outranks, stampFor } from '../../lib/position-mirror/mirror-stamp.js';
import { MirroredPositionStore } from '../../lib/position-mirror/mirrored-position.store.js';
import type {
  MirroredPosition,
  MongoPositionMirror,
} from '../../lib/position-mirror/mongo-position-mirror.js';
import { decodePosition } from '../../lib/position/position.codec.js';
import { CapturingLogger } from '../fixtures/capturing-logger.js';
import { eventually } from '../fixtures/test-env.js';

const KEY = 'change-stream:{svc:db:items}';
const at = (n: number): StreamPosition => ({
  token: { _data: `tok${String(n).padStart(4, '0')}` },
});
const lease = (holder: string, fence: number): StreamLease => ({ holder, fence });

/** The collection as `MongoPositionMirror` uses it: a document per key, replaced only by a write that outranks it. */
class FakeMirror {
  readonly namespace = 'db.change_stream_positions';
  docs = new Map<string, MirrorStamp & { position: string; holder: string | null }>();
  down = false;
  writes = 0;
  reads = 0;

  async read(key: string): Promise<MirroredPosition | null> {
    this.reads++;
    this.check();
    const doc = this.docs.get(key);
    return doc
      ? { position: decodePosition(key, doc.position), holder: doc.holder, savedAt: new Date() }
      : null;
  }
  async stamp(key: string): Promise<MirrorStamp | null> {
    this.check();
    const doc = this.docs.get(key);
    return doc ? { generation: doc.generation, fence: doc.fence } : null;
  }
  async write(
    key: string,
    raw: string,
    stamp: MirrorStamp,
    writer: StreamLease | undefined,
  ): Promise<boolean> {
    this.check();
    const doc = this.docs.get(key);
    if (writer && doc && !outranks(stamp, doc)) return false;
    this.writes++;
    this.docs.set(key, { position: raw, ...stamp, holder: writer?.holder ?? null });
    return true;
  }
  /** The mirrored position of KEY and its stamp. */
  get current() {
    const doc = this.docs.get(KEY);
    return (
      doc && {
        position: decodePosition(KEY, doc.position),
        generation: doc.generation,
        fence: doc.fence,
      }
    );
  }
  private check() {
    if (this.down) throw new Error('connection refused');
  }
}

/** Redis as the checkpointer sees it: accepts a save, or throws what it is told to. */
class StubStore implements ResumeTokenStore {
  readonly durable = true;
  stored: StreamPosition | null = null;
  failWith: Error | null = null;
  async load(): Promise<StreamPosition | null> {
    return this.stored;
  }
  async save(_key: string, position: StreamPosition): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.stored = position;
  }
}

const logs = new CapturingLogger();
Logger.overrideLogger(logs);
afterAll(() => Logger.overrideLogger(false));

describe('mirror stamps (which write may replace the mirrored position)', () => {
  it('a larger or equal fence replaces, in the same generation', () => {
    expect(stampFor(null, 3, false)).toEqual({ generation: 0, fence: 3 });
    expect(stampFor({ generation: 0, fence: 5 }, 6, false)).toEqual({ generation: 0, fence: 6 });
    expect(stampFor({ generation: 2, fence: 5 }, 5, false)).toEqual({ generation: 2, fence: 5 });
  });

  it('a smaller fence is refused, unless Redis just accepted a save under it (its fence counter was lost): then it goes a generation up', () => {
    expect(stampFor({ generation: 0, fence: 57 }, 1, false)).toBeNull();
    expect(stampFor({ generation: 0, fence: 57 }, 1, true)).toEqual({ generation: 1, fence: 1 });
  });

  it('a higher generation outranks any fence of a lower one; within one generation the fence decides', () => {
    expect(outranks({ generation: 1, fence: 1 }, { generation: 0, fence: 57 })).toBe(true);
    expect(outranks({ generation: 0, fence: 57 }, { generation: 1, fence: 1 })).toBe(false);
    expect(outranks({ generation: 0, fence: 4 }, { generation: 0, fence: 5 })).toBe(false);
    expect(outranks({ generation: 0, fence: 5 }, { generation: 0, fence: 5 })).toBe(true);
  });
});

describe('MirroredPositionStore', () => {
  let redis: StubStore;
  let mirror: FakeMirror;
  let store: MirroredPositionStore;
  beforeEach(() => {
    logs.lines.length = 0;
    redis = new StubStore();
    mirror = new FakeMirror();
    store = new MirroredPositionStore(redis, mirror as unknown as MongoPositionMirror, {
      intervalMs: 60_000,
      proofWindowMs: 1000,
    });
  });
  const warnings = (text: string) => logs.messages('warn').filter((m) => m.includes(text));

  it('after Redis lost its fence counter, the new holder replaces the old lineage, and a late write of the old holder is refused (logged once)', async () => {
    // Two instances, each with its own wrapper, sharing the collection.
    const other = new MirroredPositionStore(
      new StubStore(),
      mirror as unknown as MongoPositionMirror,
      { intervalMs: 60_000, proofWindowMs: 1000 },
    );
    await store.save(KEY, at(10), lease('h1', 57));
    await store.close();
    expect(mirror.current).toEqual({ position: at(10), generation: 0, fence: 57 });

    // Redis restarted empty: fences start again at 1.
    await other.save(KEY, at(12), lease('h2', 1));
    await other.close();
    expect(mirror.current).toEqual({ position: at(12), generation: 1, fence: 1 });

    // h1's saves that Redis accepted before it lost its data, mirrored late.
    await store.save(KEY, at(11), lease('h1', 57));
    await store.save(KEY, at(11), lease('h1', 57));
    await store.close();
    expect(mirror.current?.position).toEqual(at(12));
    expect(warnings('was not replaced')).toHaveLength(1);

    await other.save(KEY, at(13), lease('h2', 1));
    await other.close();
    expect(mirror.current).toEqual({ position: at(13), generation: 1, fence: 1 });
  });

  it('one instance that held the stream before Redis lost its data and holds it again after: its new lease replaces its old one', async () => {
    await store.save(KEY, at(10), lease('h1', 57));
    await store.close();
    await store.save(KEY, at(11), lease('h1', 1));
    await store.close();
    expect(mirror.current).toEqual({ position: at(11), generation: 1, fence: 1 });
  });

  it('a write made while Redis cannot be reached proves nothing: it never replaces a larger fence', async () => {
    await store.save(KEY, at(10), lease('h1', 57));
    await store.close();
    redis.failWith = new Error('connect ECONNREFUSED');
    await expect(store.save(KEY, at(20), lease('h2', 1))).rejects.toThrow('ECONNREFUSED');
    await store.close();
    expect(mirror.current).toEqual({ position: at(10), generation: 0, fence: 57 });
    redis.failWith = null;
    await store.save(KEY, at(21), lease('h2', 1));
    await store.close();
    expect(mirror.current).toEqual({ position: at(21), generation: 1, fence: 1 });
  });

  it('within one lineage a stale holder whose Redis save fails is refused', async () => {
    await store.save(KEY, at(30), lease('h6', 6));
    await store.close();
    redis.failWith = new Error('connect ECONNREFUSED');
    await expect(store.save(KEY, at(25), lease('h5', 5))).rejects.toThrow();
    await store.close();
    expect(mirror.current).toEqual({ position: at(30), generation: 0, fence: 6 });
  });

  it('a save refused by Redis (fenced) is not mirrored', async () => {
    await store.save(KEY, at(30), lease('h6', 6));
    await store.close();
    redis.failWith = new FencedWriteError(KEY, lease('h5', 5), 'a newer lease exists');
    await expect(store.save(KEY, at(40), lease('h5', 5))).rejects.toThrow(FencedWriteError);
    await store.close();
    expect(mirror.current?.position).toEqual(at(30));
  });

  it('keeps the position in the mirror when Redis cannot be reached (the final save at shutdown)', async () => {
    redis.failWith = new Error('connect ECONNREFUSED');
    await expect(store.save(KEY, at(7))).rejects.toThrow();
    await store.close();
    expect(mirror.current?.position).toEqual(at(7));
  });

  it("writes each stream at most once per interval (a tenure's first save and the close aside), and the newest position at close", async () => {
    for (let n = 1; n <= 20; n++) await store.save(KEY, at(n), lease('h1', 3));
    expect(mirror.writes).toBeLessThanOrEqual(1); // the tenure's first save; intervalMs is 60 s
    await store.close();
    expect(mirror.writes).toBeLessThanOrEqual(2);
    expect(mirror.current?.position).toEqual(at(20));
  });

  it('reads the mirror only when Redis has no position, and says so', async () => {
    await store.save(KEY, at(5));
    await store.close();
    const reads = mirror.reads;
    redis.stored = at(9);
    expect(await store.load(KEY)).toEqual(at(9));
    expect(mirror.reads).toBe(reads);
    expect(warnings('copy in MongoDB')).toHaveLength(0);
    redis.stored = null;
    expect(await store.load(KEY)).toEqual(at(5));
    expect(warnings('copy in MongoDB')).toHaveLength(1);
  });

  it('a mirror that cannot be read while Redis has no position fails the load (the stream waits; it never starts from now)', async () => {
    mirror.down = true;
    await expect(store.load(KEY)).rejects.toThrow('connection refused');
  });

  it('a failing mirror degrades nothing: saves succeed, the failure is logged once and counted, the recovery logged once', async () => {
    mirror.down = true;
    await store.save(KEY, at(1));
    await store.close();
    await store.save(KEY, at(2));
    await store.close();
    expect(redis.stored).toEqual(at(2));
    expect(store.writeFailures).toBe(2);
    expect(warnings('failed')).toHaveLength(1);
    mirror.down = false;
    await store.save(KEY, at(3));
    await store.close();
    await store.save(KEY, at(4));
    await store.close();
    expect(mirror.current?.position).toEqual(at(4));
    expect(logs.messages('log').filter((m) => m.includes('works again'))).toHaveLength(1);
  });

  it('retries a failed copy by itself, without waiting for another save', async () => {
    const quick = new MirroredPositionStore(redis, mirror as unknown as MongoPositionMirror, {
      intervalMs: 100,
      proofWindowMs: 1000,
    });
    mirror.down = true;
    await quick.save(KEY, at(1), lease('h1', 3));
    await eventually('the first copy failed', () => quick.writeFailures === 1);
    mirror.down = false;
    await eventually(
      'the copy written by the retry',
      () => JSON.stringify(mirror.current?.position) === JSON.stringify(at(1)),
    );
    expect(mirror.current).toMatchObject({ generation: 0, fence: 3 });
    await quick.close();
  });

  it('offers the recovery methods of lost data only when the wrapped store has them (all three)', () => {
    expect(store.loadOrphan).toBeUndefined();
    const withOrphans = Object.assign(new StubStore(), {
      leaveOrphan: async () => false,
      loadOrphan: async () => null,
      dropOrphan: async () => undefined,
    });
    const wrapped = new MirroredPositionStore(
      withOrphans,
      mirror as unknown as MongoPositionMirror,
      { intervalMs: 1000, proofWindowMs: 1000 },
    );
    expect(wrapped.loadOrphan).toBeDefined();
  });
});
