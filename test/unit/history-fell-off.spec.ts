import { afterAll, afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import mongoose, { type mongo } from 'mongoose';
import {
  type HistoryLost,
  InMemoryPositionStore,
  type StreamCoverage,
  type StreamPosition,
} from '../../lib/index.js';
import { databaseStreamStart } from '../../lib/checkpoint/start-rule.js';
import {
  type OplogStart,
  oplogStartOf,
  OplogStartUnreadableError,
  readOldestOplogEntry,
} from '../../lib/headroom/oplog-window.js';
import { CapturingLogger } from '../fixtures/capturing-logger.js';
import {
  DATABASE_KEY,
  databaseStream,
  stopDatabaseStreams,
} from '../fixtures/database-stream-harness.js';
import { inCollection, insert, networkError } from '../fixtures/fake-change-stream.js';
import { eventually } from '../fixtures/test-env.js';

const logs = new CapturingLogger();
Logger.overrideLogger(logs);
beforeEach(() => {
  logs.lines.splice(0);
});
afterEach(stopDatabaseStreams);
afterAll(() => Logger.overrideLogger(false));

const ts = (t: number) => new mongoose.mongo.Timestamp({ t, i: 1 });
/** A mongod resume token at cluster time (t, 1). */
const tokenAt = (t: number) => ({
  _data: `82${t.toString(16).padStart(8, '0')}00000001` + '2B022C0100296E5A1004',
});
const key = (collection: string) => `cs:{svc:db:${collection}}`;
const serving = (serves: string[], retired: Record<string, number> = {}): StreamCoverage => ({
  serves,
  ...(Object.keys(retired).length > 0 && {
    retired: Object.fromEntries(Object.entries(retired).map(([c, t]) => [c, ts(t)])),
  }),
});
const none = (collection: string) => ({ collection, key: key(collection), position: null });

describe('databaseStreamStart with the oplog’s oldest entry', () => {
  const record: StreamPosition = {
    token: tokenAt(300),
    coverage: serving(['orders'], { archive: 100 }),
  };

  it('a retired time older than the oplog holds nothing back: it starts at its own token and names the collection with its lost time', () => {
    expect(databaseStreamStart(DATABASE_KEY, record, [none('archive'), none('orders')])).toEqual(
      expect.objectContaining({ position: { operationTime: ts(100) }, from: 'replaced' }),
    );
    expect(
      databaseStreamStart(DATABASE_KEY, record, [none('archive'), none('orders')], ts(200)),
    ).toEqual({
      position: record,
      from: 'stored',
      fellOff: [
        {
          collection: 'archive',
          key: DATABASE_KEY,
          position: { operationTime: ts(100) },
          time: ts(100),
          streamCovers: true,
        },
      ],
      oplogOldest: ts(200),
    });
  });

  it('a collection’s own old key (handlers removed long ago) is let go; the start is the oldest position still in the oplog, as a cluster time', () => {
    const decision = databaseStreamStart(
      DATABASE_KEY,
      { token: tokenAt(300), coverage: serving(['orders']) },
      [
        { collection: 'archive', key: key('archive'), position: { token: tokenAt(50) } },
        none('orders'),
        { collection: 'users', key: key('users'), position: { token: tokenAt(250) } },
      ],
      ts(200),
    );
    expect(decision).toMatchObject({
      position: { operationTime: ts(250) },
      from: 'replaced',
      reason: { kind: 'covered', key: key('users'), collection: 'users', time: ts(250) },
      fellOff: [
        {
          collection: 'archive',
          key: key('archive'),
          position: { token: tokenAt(50) },
          time: ts(50),
          streamCovers: false,
        },
      ],
    });
  });

  it('a served collection’s lost position is its token alone, without the stored coverage and backfill record', () => {
    const served: StreamPosition = {
      token: tokenAt(100),
      coverage: serving(['archive']),
      backfill: { completed: ['archive.on'] },
    };
    const decision = databaseStreamStart(
      DATABASE_KEY,
      served,
      [
        none('archive'),
        { collection: 'orders', key: key('orders'), position: { token: tokenAt(300) } },
      ],
      ts(200),
    );
    expect(decision.fellOff).toEqual([
      {
        collection: 'archive',
        key: DATABASE_KEY,
        position: { token: tokenAt(100) },
        time: ts(100),
        streamCovers: true,
      },
    ]);
  });

  it('a position at the oldest entry’s time is still in the oplog', () => {
    const decision = databaseStreamStart(
      DATABASE_KEY,
      record,
      [none('archive'), none('orders')],
      ts(100),
    );
    expect(decision.position).toEqual({ operationTime: ts(100) });
    expect(decision.fellOff).toBeUndefined();
  });

  it('when every position fell off, the start is as before (the server’s answer and the stream’s policy decide)', () => {
    const decision = databaseStreamStart(
      DATABASE_KEY,
      record,
      [none('archive'), none('orders')],
      ts(400),
    );
    expect(decision.position).toEqual({ operationTime: ts(100) });
    expect(decision.fellOff).toBeUndefined();
  });

  it('positions without a readable time keep the rule from before (the oldest readable one, whatever the oplog holds)', () => {
    const decision = databaseStreamStart(
      DATABASE_KEY,
      null,
      [
        { collection: 'archive', key: key('archive'), position: { token: { _data: 'x1' } } },
        { collection: 'orders', key: key('orders'), position: { token: tokenAt(300) } },
      ],
      ts(200),
    );
    expect(decision.fellOff).toBeUndefined();
    expect(decision.position).toEqual({ operationTime: ts(300) });
  });
});

describe('a database stream whose collection’s position fell off the oplog (driver fake)', () => {
  /** Orders served up to 300; archive's handlers were removed at 100 and are back; the oplog begins at 200. */
  async function staleArchive(
    onHistoryLost:
      'fail' | 'restart-from-now' | ((lost: HistoryLost) => 'fail' | 'restart-from-now'),
    oldest: mongo.Timestamp | null = ts(200),
    more: {
      usersAt?: number;
      /** Runs in archive's and orders' handlers before the event is recorded. */
      handle?: () => Promise<void>;
    } = {},
  ) {
    const tokens = new InMemoryPositionStore();
    await tokens.save(DATABASE_KEY, {
      token: tokenAt(300),
      coverage: serving(['orders'], { archive: 100 }),
    });
    if (more.usersAt) await tokens.save(key('users'), { token: tokenAt(more.usersAt) });
    const seeded = JSON.stringify(await tokens.load(DATABASE_KEY));
    let reads = 0;
    const harness = databaseStream(
      [
        { collection: 'archive', handle: more.handle },
        { collection: 'orders', handle: more.handle },
        ...(more.usersAt ? [{ collection: 'users' }] : []),
      ],
      [
        {
          getMores: [[inCollection('orders', insert(1, 1)), inCollection('archive', insert(2, 2))]],
        },
      ],
      {
        tokens,
        options: { onHistoryLost },
        oldestOplogEntry: async () => {
          reads++;
          return oldest;
        },
      },
    );
    harness.stream.start();
    return { ...harness, reads: () => reads, seeded };
  }
  const lostEvents = (events: Array<{ type: string }>) =>
    events.filter((e) => e.type === 'history-lost') as unknown as Array<
      HistoryLost & { action: string }
    >;

  it('restart-from-now: the stream resumes from its own token, the other collection’s events all come, the stale one gets one history-lost event and a DATA LOSS line', async () => {
    const { stream, server, seen, events, tokens } = await staleArchive('restart-from-now');
    await eventually('both events handled', () => seen.length === 2);
    expect(server.opens[0].resumeAfter).toEqual(tokenAt(300));
    expect(server.opens[0].startAtOperationTime).toBeUndefined();
    expect(seen.map((s) => `${s.collection}:${s.id}`)).toEqual(['orders:1', 'archive:2']);
    expect(lostEvents(events)).toEqual([
      expect.objectContaining({
        type: 'history-lost',
        action: 'restart-from-now',
        key: DATABASE_KEY,
        collection: 'archive',
        position: { operationTime: ts(100) },
        startsAt: ts(300),
        reason: expect.stringContaining(
          "the history of 'archive' fell off the oplog, while the stream itself can resume from its other collections' positions, at cluster time 300.1. " +
            "Changes to 'archive' from cluster time 100.1 up to cluster time 300.1 cannot be delivered",
        ),
      }),
    ]);
    expect(logs.messages('error')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^DATA LOSS on ${escape(DATABASE_KEY)} for collection 'archive': .*cluster time 100\\.1.*cluster time 200\\.1.*` +
            `goes on from the stream's start \\(cluster time 300\\.1\\)`,
        ),
      ),
    ]);
    expect(stream.status().state).toBe('open');
    // Stored as served from here: a restart does not let it go again.
    await eventually(
      'the position stored with archive served',
      async () =>
        JSON.stringify((await tokens.load(DATABASE_KEY))?.coverage) ===
        JSON.stringify({ serves: ['archive', 'orders'] }),
    );
  });

  it('fail: the stream fails naming the collection, opens nothing and stores nothing', async () => {
    const { stream, server, events, tokens, seeded } = await staleArchive('fail');
    await eventually('failed', () => stream.status().state === 'failed');
    expect(stream.status().lastError).toMatch(
      /^the history of collection 'archive' \(cluster time 100\.1 under cs:\{svc:db:\$database\}\) fell off the oplog/,
    );
    // A retired time in the stream's own record: only the callback lets it go, no key to delete.
    expect(stream.status().lastError).toContain(
      "returns 'restart-from-now' when HistoryLost.collection is it. Do not delete cs:{svc:db:$database}",
    );
    expect(server.opens).toHaveLength(0);
    expect(lostEvents(events)).toEqual([
      expect.objectContaining({ action: 'fail', collection: 'archive' }),
    ]);
    await stream.stop(1000);
    expect(JSON.stringify(await tokens.load(DATABASE_KEY))).toBe(seeded);
  });

  it('a callback is asked per collection; fail for one fails the stream naming that one only', async () => {
    const asked: HistoryLost[] = [];
    const { stream, server, events } = await staleArchive(
      (lost) => {
        asked.push(lost);
        return lost.collection === 'users' ? 'fail' : 'restart-from-now';
      },
      ts(200),
      // users' own key is older than the oplog too; orders (300) is still in it.
      { usersAt: 150 },
    );
    await eventually('failed', () => stream.status().state === 'failed');
    expect(asked.map((l) => [l.collection, l.position])).toEqual([
      ['archive', { operationTime: ts(100) }],
      ['users', { token: tokenAt(150) }],
    ]);
    expect(stream.status().lastError).toContain(
      "collection 'users' (cluster time 150.1 under cs:{svc:db:users})",
    );
    expect(stream.status().lastError).not.toContain("'archive'");
    // users' position was its own key: deleting that is a way out; the stream's key never is.
    expect(stream.status().lastError).toContain(
      'or delete the key cs:{svc:db:users} (that collection starts with the stream then). Do not delete cs:{svc:db:$database}',
    );
    // The action taken: archive was not let go either, since the stream failed.
    expect(lostEvents(events).map((e) => [e.collection, e.action])).toEqual([
      ['archive', 'fail'],
      ['users', 'fail'],
    ]);
    expect(server.opens).toHaveLength(0);
    expect(logs.messages('error').some((m) => m.startsWith('DATA LOSS'))).toBe(false);
  });

  it('restart-from-now: the start that let archive go is stored before any event is handled', async () => {
    let storedAtFirstEvent: StreamPosition | null | undefined;
    const { tokens, seen } = await staleArchive('restart-from-now', ts(200), {
      handle: async () => {
        if (storedAtFirstEvent === undefined) storedAtFirstEvent = await tokens.load(DATABASE_KEY);
      },
    });
    await eventually('both events handled', () => seen.length === 2);
    // A crash now would resume serving archive: the policy is not asked about it again.
    expect(storedAtFirstEvent).toEqual({
      token: tokenAt(300),
      coverage: { serves: ['archive', 'orders'] },
    });
  });

  it('a passing failure of the oplog read is retried (with a warning), not taken as "cannot be read": only archive is let go', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(DATABASE_KEY, {
      token: tokenAt(300),
      coverage: serving(['orders'], { archive: 100 }),
    });
    let reads = 0;
    const { stream, server, seen, events } = databaseStream(
      [{ collection: 'archive' }, { collection: 'orders' }],
      [{ getMores: [[inCollection('orders', insert(1, 1))]] }],
      {
        tokens,
        options: { onHistoryLost: 'restart-from-now' },
        oldestOplogEntry: () =>
          readOldestOplogEntry({
            findOne: async () => {
              if (++reads === 1) throw networkError('connection reset by peer');
              return { ts: ts(200), op: 'i' };
            },
          }),
      },
    );
    stream.start();
    await eventually('orders:1 handled', () => seen.length === 1);
    expect(reads).toBe(2);
    expect(server.opens).toHaveLength(1);
    expect(server.opens[0].resumeAfter).toEqual(tokenAt(300));
    expect(lostEvents(events).map((e) => [e.collection, e.action])).toEqual([
      ['archive', 'restart-from-now'],
    ]);
    expect(logs.messages('warn')).toContainEqual(
      expect.stringContaining(
        `Stream ${DATABASE_KEY} broke (the oplog's oldest entry could not be read for where the database stream starts (connection reset by peer)`,
      ),
    );
  });

  it('an oplog read that keeps failing: after 5 attempts in a row the stream starts without it, as when it cannot be read, and says so', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(DATABASE_KEY, {
      token: tokenAt(300),
      coverage: serving(['orders'], { archive: 100 }),
    });
    let reads = 0;
    const { stream, server } = databaseStream(
      [{ collection: 'archive' }, { collection: 'orders' }],
      [{ getMores: [[inCollection('orders', insert(1, 1))]] }],
      {
        tokens,
        oldestOplogEntry: () =>
          readOldestOplogEntry({
            findOne: async () => {
              reads++;
              throw networkError('connection reset by peer');
            },
          }),
      },
    );
    stream.start();
    await eventually('opened', () => server.opens.length === 1);
    expect(reads).toBe(5);
    // Decided without the read: archive's retired time holds the start back, as before the guard.
    expect(server.opens[0].startAtOperationTime).toEqual(ts(100));
    expect(logs.messages('error')).toContainEqual(
      expect.stringContaining(
        `Stream ${DATABASE_KEY}: the oplog's oldest entry could not be read in 5 attempts at its start (last: `,
      ),
    );
  });

  it('an oplog that cannot be read: the start is as before, and nothing new is said', async () => {
    const { server, events, reads } = await staleArchive('restart-from-now', null);
    await eventually('opened', () => server.opens.length === 1);
    expect(reads()).toBe(1);
    expect(server.opens[0].startAtOperationTime).toEqual(ts(100));
    expect(lostEvents(events)).toEqual([]);
    expect(logs.messages('error')).toEqual([]);
  });

  it('positions that do not differ read no oplog', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(DATABASE_KEY, { token: tokenAt(300), coverage: serving(['orders']) });
    let reads = 0;
    const { stream, server } = databaseStream(
      [{ collection: 'orders' }, { collection: 'users' }],
      [{ getMores: [[inCollection('orders', insert(1, 1))]] }],
      {
        tokens,
        oldestOplogEntry: async () => {
          reads++;
          return ts(400);
        },
      },
    );
    stream.start();
    await eventually('opened', () => server.opens.length === 1);
    expect(server.opens[0].resumeAfter).toEqual(tokenAt(300));
    expect(reads).toBe(0);
  });
});

describe('collectionsHistoryLostFailed: the key it advises deleting', () => {
  it('not a collection’s own key when the database stream’s record covers that collection too: deleting it would only uncover the older retired time', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(DATABASE_KEY, {
      token: tokenAt(300),
      coverage: serving(['orders'], { archive: 100 }),
    });
    await tokens.save(key('archive'), { token: tokenAt(150) });
    const { stream } = databaseStream(
      [{ collection: 'archive' }, { collection: 'orders' }],
      [{ getMores: [[inCollection('orders', insert(1, 1))]] }],
      { tokens, options: { onHistoryLost: 'fail' }, oldestOplogEntry: async () => ts(200) },
    );
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(stream.status().lastError).toContain(
      "collection 'archive' (cluster time 150.1 under cs:{svc:db:archive})",
    );
    expect(stream.status().lastError).not.toContain('delete the key');
    expect(stream.status().lastError).toContain(
      'when HistoryLost.collection is it. Do not delete cs:{svc:db:$database}',
    );
  });
});

describe('readOldestOplogEntry: the oplog’s oldest entry at a database stream’s start', () => {
  const answering = (answer: () => Promise<unknown>) => {
    const asked: unknown[] = [];
    const oplog: OplogStart = {
      findOne: (filter, options) => {
        asked.push([filter, options]);
        return answer() as never;
      },
    };
    return { oplog, asked };
  };

  it('reads the first entry by natural order, projected to what it needs, and gives its time', async () => {
    const { oplog, asked } = answering(async () => ({ ts: ts(200), op: 'i' }));
    expect(await readOldestOplogEntry(oplog)).toEqual(ts(200));
    expect(asked).toEqual([
      [
        {},
        {
          sort: { $natural: 1 },
          projection: { ts: 1, op: 1, 'o.msg': 1, _id: 0 },
          maxTimeMS: 5000,
        },
      ],
    ]);
  });

  it('oplogStartOf reads local.oplog.rs with the read preference the stream’s database reads with', async () => {
    const asked: Array<[string, string, unknown]> = [];
    const client = {
      db: (db: string) => ({
        collection: (name: string) => ({
          findOne: async (_filter: object, options: unknown) => {
            asked.push([db, name, options]);
            return { ts: ts(200), op: 'i' };
          },
        }),
      }),
    } as unknown as mongo.MongoClient;
    const secondary = new mongoose.mongo.ReadPreference('secondaryPreferred');
    expect(await readOldestOplogEntry(oplogStartOf(client, secondary))).toEqual(ts(200));
    expect(asked).toEqual([
      ['local', 'oplog.rs', expect.objectContaining({ readPreference: secondary })],
    ]);
  });

  it('the replica set’s first entry ("initiating set"): nothing can have fallen off, as mongod judges', async () => {
    const { oplog } = answering(async () => ({
      ts: ts(200),
      op: 'n',
      o: { msg: 'initiating set' },
    }));
    expect(await readOldestOplogEntry(oplog)).toBeNull();
  });

  it('a refusal, an empty oplog or an answer without a time: null, never thrown', async () => {
    const unauthorized = Object.assign(new Error('not authorized on local'), { code: 13 });
    expect(
      await readOldestOplogEntry(answering(() => Promise.reject(unauthorized)).oplog),
    ).toBeNull();
    expect(await readOldestOplogEntry(answering(async () => null).oplog)).toBeNull();
    expect(await readOldestOplogEntry(answering(async () => ({ ts: 5 })).oplog)).toBeNull();
  });

  it.each([
    ['Unauthorized', 13],
    ['IllegalOperation (mongos)', 20],
    ['CommandNotFound', 59],
    ['CommandNotSupported', 115],
    ['AtlasError', 8000],
  ])('a refusal (%s): null, as the headroom sampler judges it', async (_name, code) => {
    const refusal = Object.assign(new Error('refused'), { code });
    expect(await readOldestOplogEntry(answering(() => Promise.reject(refusal)).oplog)).toBeNull();
  });

  it('any other failure (a network error, a primary stepping down) throws, saying what happened', async () => {
    await expect(
      readOldestOplogEntry(answering(() => Promise.reject(networkError('connection reset'))).oplog),
    ).rejects.toThrow(
      new OplogStartUnreadableError(
        "the oplog's oldest entry could not be read for where the database stream starts (connection reset); " +
          'the start is retried with backoff rather than decided without it (a collection whose position fell off the oplog would hold the whole stream back)',
      ),
    );
    const steppedDown = Object.assign(new Error('not primary'), { code: 10107 });
    await expect(
      readOldestOplogEntry(answering(() => Promise.reject(steppedDown)).oplog),
    ).rejects.toBeInstanceOf(OplogStartUnreadableError);
  });

  it('no answer within 5 s throws', async () => {
    jest.useFakeTimers();
    try {
      const reading = readOldestOplogEntry(answering(() => new Promise(() => undefined)).oplog);
      const outcome = expect(reading).rejects.toThrow(/no answer within 5000 ms/);
      await jest.advanceTimersByTimeAsync(5000);
      await outcome;
    } finally {
      jest.useRealTimers();
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
