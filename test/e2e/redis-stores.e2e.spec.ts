import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import {
  positionKey,
  encodePosition,
  FencedWriteError,
  RedisPositionStore,
} from '../../lib/index.js';
import type { StreamLease } from '../../lib/interfaces/lease-store.interface.js';
import { candidatesKey, fenceKey, leaseKey } from '../../lib/redis/redis-keys.js';
import { RedisLeaseStore } from '../../lib/redis/redis-lease.store.js';
import { eventually, testEnv, uniqueName } from '../fixtures/test-env.js';

const LONG = 30_000;
const position = (data: string) => ({ token: { _data: data } });
const shuffled = <T>(items: T[]): T[] =>
  items
    .map((item) => ({ item, order: Math.random() }))
    .sort((a, b) => a.order - b.order)
    .map(({ item }) => item);

describe('RedisLeaseStore and the fenced save (real Redis)', () => {
  let client: Redis;
  let store: RedisPositionStore;
  let leases: RedisLeaseStore;
  beforeAll(() => {
    client = new Redis(testEnv().redisUrl);
    store = new RedisPositionStore(client);
    leases = store.leases;
  });
  afterAll(async () => {
    await client.quit();
  });

  const newKey = () => positionKey(uniqueName('lease'), 'billing', 'shop', 'orders');
  const acquired = async (key: string, holder: string, ttlMs = LONG): Promise<StreamLease> => {
    const attempt = await leases.acquire(key, holder, ttlMs);
    if (!('acquired' in attempt))
      throw new Error(`${holder} did not acquire ${key}: ${JSON.stringify(attempt)}`);
    return attempt.acquired;
  };
  /** Lets the lease expire by its TTL: shortens it, then waits until Redis has dropped the key. */
  const expire = async (key: string) => {
    await client.pexpire(leaseKey(key), 1);
    await eventually(
      `${leaseKey(key)} expired`,
      async () => (await client.pttl(leaseKey(key))) === -2,
    );
  };
  const refusal = async (write: Promise<void>): Promise<FencedWriteError> => {
    const error = await write.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FencedWriteError);
    return error as FencedWriteError;
  };

  it('acquire is exclusive and reports the holder and the time left', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a', 5000);
    expect(a).toEqual({ holder: 'pod-a', fence: 1 });
    expect(await client.get(leaseKey(key))).toBe('1 pod-a');
    expect(await client.get(fenceKey(key))).toBe('1');
    expect(await client.pttl(fenceKey(key))).toBe(-1);

    const attempt = await leases.acquire(key, 'pod-b', 5000);
    expect(attempt).toEqual({ heldBy: { holder: 'pod-a', fence: 1 }, ttlMs: expect.any(Number) });
    const { ttlMs } = attempt as { ttlMs: number };
    expect(ttlMs).toBeGreaterThan(0);
    expect(ttlMs).toBeLessThanOrEqual(5000);
  });

  it('hands out strictly increasing fences across acquire, expiry, release and acquire', async () => {
    const key = newKey();
    const fences: number[] = [];
    fences.push((await acquired(key, 'pod-a', 100)).fence);
    await eventually(
      'the short lease expired',
      async () => (await client.pttl(leaseKey(key))) === -2,
    );
    const b = await acquired(key, 'pod-b');
    fences.push(b.fence);
    await leases.release(key, b);
    expect(await client.exists(leaseKey(key))).toBe(0);
    fences.push((await acquired(key, 'pod-a')).fence);
    await expire(key);
    fences.push((await acquired(key, 'pod-a')).fence);
    expect(fences).toEqual([1, 2, 3, 4]);
  });

  it('a counter lost while the position is kept hands out a fence above the stored one (no fence reused)', async () => {
    const key = newKey();
    // (`acquired`: a Redis up for less than LONG also asks for a wait here, see the next spec)
    expect(await acquired(key, 'pod-a')).toEqual({ holder: 'pod-a', fence: 1 });
    await leases.release(key, { holder: 'pod-a', fence: 1 });
    const b = await acquired(key, 'pod-b');
    await store.save(key, position('B1'), b);
    await client.del(leaseKey(key), fenceKey(key));
    expect(await acquired(key, 'pod-c')).toEqual({ holder: 'pod-c', fence: 3 });
  });

  it('asks the new holder to wait out the TTL when the fence counter is missing on a Redis up for less than a TTL, and only then', async () => {
    const uptimeMs = async () =>
      Number(/uptime_in_seconds:(\d+)/.exec(await client.info('server'))![1]) * 1000;
    await eventually('Redis up for a second', async () => (await uptimeMs()) >= 1000);
    const key = newKey();
    const ttlMs = 1_000_000_000; // longer than this Redis has been up
    const before = await uptimeMs();
    const first = await leases.acquire(key, 'pod-a', ttlMs);
    const after = await uptimeMs();
    expect(first).toEqual({ acquired: { holder: 'pod-a', fence: 1 }, waitMs: expect.any(Number) });
    const { waitMs } = first as unknown as { waitMs: number };
    expect(waitMs).toBeLessThanOrEqual(ttlMs - before);
    expect(waitMs).toBeGreaterThanOrEqual(ttlMs - after);
    await leases.release(key, { holder: 'pod-a', fence: 1 });
    expect(await leases.acquire(key, 'pod-b', ttlMs)).toEqual({
      acquired: { holder: 'pod-b', fence: 2 },
    }); // the counter is there
    await client.del(leaseKey(key), fenceKey(key));
    expect(await leases.acquire(key, 'pod-c', 500)).toEqual({
      acquired: { holder: 'pod-c', fence: 1 },
    }); // up for longer than this TTL
  });

  it("announce records each live member's handler set beside the candidates, and forgets it when the member leaves or expires", async () => {
    const group = candidatesKey(newKey());
    expect(await leases.announce(group, 'pod-a', LONG, 'X.a')).toEqual({
      members: 1,
      handlers: new Map([['pod-a', 'X.a']]),
    });
    expect(await leases.announce(group, 'pod-b', 200, 'X.a, Y.b')).toEqual({
      members: 2,
      handlers: new Map([
        ['pod-a', 'X.a'],
        ['pod-b', 'X.a, Y.b'],
      ]),
    });
    await eventually(
      'pod-b expired',
      async () => (await leases.announce(group, 'pod-a', LONG, 'X.a')).members === 1,
    );
    expect((await leases.announce(group, 'pod-c', LONG, 'Z.c')).handlers).toEqual(
      new Map([
        ['pod-a', 'X.a'],
        ['pod-c', 'Z.c'],
      ]),
    );
    await leases.leave(group, 'pod-a');
    expect((await leases.announce(group, 'pod-c', LONG, 'Z.c')).handlers).toEqual(
      new Map([['pod-c', 'Z.c']]),
    );
  });

  describe("leaveOrphan: a position is left only when Redis shows it lost the stream's data", () => {
    /** pod-a holds fence 2 and stored its position under it. */
    const heldByA = async () => {
      const key = newKey();
      await leases.release(key, await acquired(key, 'pod-0'));
      const a = await acquired(key, 'pod-a');
      await store.save(key, position('A1'), a);
      return { key, a };
    };

    it("a normal takeover (a newer fence, A's position stored): nothing is left", async () => {
      const { key, a } = await heldByA();
      await expire(key);
      const b = await acquired(key, 'pod-b');
      expect(await store.leaveOrphan(key, position('A2'), a, true)).toBe(false);
      await store.save(key, position('B1'), b);
      expect(await store.leaveOrphan(key, position('A2'), a, true)).toBe(false);
      expect(await store.loadOrphan(key)).toBeNull();
    });

    it('a normal takeover of a holder that never saved under its lease (the stored position has an older fence): nothing is left', async () => {
      const key = newKey();
      await store.save(key, position('P4'), await acquired(key, 'pod-0'));
      await expire(key);
      const a = await acquired(key, 'pod-a'); // paused before its first save
      await expire(key);
      await acquired(key, 'pod-b');
      expect(await store.leaveOrphan(key, position('A1'), a, false)).toBe(false);
      await client.del(key); // with nothing stored either
      expect(await store.leaveOrphan(key, position('A1'), a, false)).toBe(false);
    });

    it("A's own lease expired and nobody took it: nothing is left", async () => {
      const { key, a } = await heldByA();
      await expire(key);
      expect(await store.leaveOrphan(key, position('A2'), a, true)).toBe(false);
    });

    it.each([
      [
        'everything is gone (Redis restarted empty)',
        async (key: string) => void (await client.del(key, leaseKey(key), fenceKey(key))),
      ],
      [
        'everything is gone and another instance took the stream since',
        async (key: string) => {
          await client.del(key, leaseKey(key), fenceKey(key));
          await store.save(key, position('B1'), await acquired(key, 'pod-b'));
        },
      ],
      [
        "everything is gone and the counter already passed A's fence again",
        async (key: string) => {
          await client.del(key, leaseKey(key), fenceKey(key));
          for (let i = 0; i < 3; i++) await leases.release(key, await acquired(key, `pod-${i}`));
          await acquired(key, 'pod-b');
        },
      ],
      ['only the position is gone', async (key: string) => void (await client.del(key))],
    ])(
      '%s: A leaves its position, kept an hour; the first one left stays, and once used none comes back',
      async (_, lose) => {
        const { key, a } = await heldByA();
        await lose(key);
        expect(await store.leaveOrphan(key, position('A2'), a, true)).toBe(true);
        expect(await store.leaveOrphan(key, position('A3'), a, true)).toBe(false); // one is there already
        expect(await client.ttl(`${key}:orphan`)).toBeGreaterThan(3500);
        expect(await store.loadOrphan(key)).toEqual(position('A2'));
        expect(await store.loadOrphan(key)).toEqual(position('A2')); // read, not taken: removed only once stored
        await store.dropOrphan(key);
        expect(await store.loadOrphan(key)).toBeNull();
        // A retry whose first reply was lost must not bring it back: the holder would go back again.
        expect(await store.leaveOrphan(key, position('A2'), a, true)).toBe(false);
        expect(await store.loadOrphan(key)).toBeNull();
      },
    );
  });

  it('renew extends the current lease and fails once another holder acquired', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a', 1000);
    expect(await leases.renew(key, a, LONG)).toBe(true);
    expect(await client.pttl(leaseKey(key))).toBeGreaterThan(1000);

    await expire(key);
    const b = await acquired(key, 'pod-b');
    expect(await leases.renew(key, a, LONG)).toBe(false);
    expect(await client.get(leaseKey(key))).toBe(`${b.fence} pod-b`);
    // The same holder with an older fence is not the current lease either.
    await leases.release(key, b);
    const a2 = await acquired(key, 'pod-a');
    expect(await leases.renew(key, a, LONG)).toBe(false);
    expect(await leases.renew(key, a2, LONG)).toBe(true);
  });

  it('renew after expiry takes the lease back when nobody acquired it since', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a', 100);
    await eventually(
      'the short lease expired',
      async () => (await client.pttl(leaseKey(key))) === -2,
    );
    expect(await leases.renew(key, a, LONG)).toBe(true);
    expect(await client.get(leaseKey(key))).toBe(`${a.fence} pod-a`);
    expect(await client.pttl(leaseKey(key))).toBeGreaterThan(1000);
    expect(await leases.acquire(key, 'pod-b', LONG)).toMatchObject({ heldBy: a });
  });

  it('release acts only for the holder of the current lease', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a');
    await leases.release(key, { holder: 'pod-b', fence: a.fence });
    await leases.release(key, { holder: 'pod-a', fence: a.fence + 1 });
    expect(await client.get(leaseKey(key))).toBe(`${a.fence} pod-a`);
    await leases.release(key, a);
    expect(await client.exists(leaseKey(key))).toBe(0);
    expect(await acquired(key, 'pod-b')).toEqual({ holder: 'pod-b', fence: 2 });
  });

  it('a fenced save writes the envelope with its fence and holder', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a');
    await store.save(key, position('A1'), a);
    const raw = (await client.get(key))!;
    expect(JSON.parse(raw)).toMatchObject({
      token: { _data: 'A1' },
      fence: { $numberInt: '1' },
      holder: 'pod-a',
    });
    expect(await store.load(key)).toEqual(position('A1'));
  });

  it('refuses a stale holder once another acquired, leaves the stored value alone and lets the new holder write', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a');
    await store.save(key, position('A1'), a);
    await expire(key);
    const b = await acquired(key, 'pod-b');
    const before = await client.get(key);

    const error = await refusal(store.save(key, position('A2'), a));
    expect(error.message).toContain('the lease is held by pod-b (fence 2)');
    expect(error).toMatchObject({ key, lease: a });
    expect(await client.get(key)).toBe(before);

    await store.save(key, position('B1'), b);
    expect(await store.load(key)).toEqual(position('B1'));
    expect(JSON.parse((await client.get(key))!)).toMatchObject({
      fence: { $numberInt: '2' },
      holder: 'pod-b',
    });

    await leases.release(key, b);
    expect((await refusal(store.save(key, position('A3'), a))).message).toContain(
      'a newer fence 2 was handed out',
    );
    expect(await store.load(key)).toEqual(position('B1'));
  });

  it('lets the last holder write after its lease expired while nobody acquired since', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a');
    await expire(key);
    await store.save(key, position('A1'), a);
    expect(await store.load(key)).toEqual(position('A1'));
  });

  it('never lets a stale holder overwrite a newer-fenced position, even with the lease key deleted and the counter rolled back', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a');
    await expire(key);
    const b = await acquired(key, 'pod-b');
    await store.save(key, position('B1'), b);
    const stored = await client.get(key);

    await client.del(leaseKey(key));
    expect((await refusal(store.save(key, position('A1'), a))).message).toContain(
      'a newer fence 2 was handed out',
    );
    // Counter rolled back to A's fence (deleted and rewritten by hand, restored from an old backup…).
    await client.set(fenceKey(key), String(a.fence));
    expect((await refusal(store.save(key, position('A1'), a))).message).toContain(
      'the stored position was written with a newer fence 2',
    );
    await client.del(fenceKey(key));
    expect((await refusal(store.save(key, position('A1'), a))).message).toContain(
      'the fence counter is missing',
    );
    expect(await client.get(key)).toBe(stored);

    // A counter that was lost resumes above the stored fence, so the next holder can write.
    const c = await acquired(key, 'pod-c');
    expect(c.fence).toBe(3);
    await store.save(key, position('C1'), c);
    expect(await store.load(key)).toEqual(position('C1'));
  });

  it('a fence handed out twice (counter rolled back, as by a failover that lost writes) does not let the old holder back in', async () => {
    const key = newKey();
    const a = await acquired(key, 'pod-a');
    // The failover: the new master never saw A's acquisition.
    await client.del(leaseKey(key));
    await client.set(fenceKey(key), String(a.fence - 1));
    const b = await acquired(key, 'pod-b');
    expect(b.fence).toBe(a.fence);
    await store.save(key, position('B1'), b);
    await expire(key);

    const error = await refusal(store.save(key, position('A1'), a));
    expect(error.message).toContain(
      `the stored position was written with the same fence ${a.fence} by pod-b`,
    );
    expect(await leases.renew(key, a, LONG)).toBe(false);
    expect(await client.exists(leaseKey(key))).toBe(0);
    expect(await leases.renew(key, b, LONG)).toBe(true);
    expect(await store.load(key)).toEqual(position('B1'));
  });

  it.each([
    ['an envelope written without a lease', encodePosition(position('old'))],
    [
      'an envelope of version 0.1',
      '{"v":{"$numberInt":"1"},"token":{"_data":"old"},"savedAt":"2026-11-27T18:58:18.423Z"}',
    ],
    ['a bare token stored by hand', '{"_data":"old"}'],
    ['an envelope with a plain-number fence', '{"v":2,"token":{"_data":"old"},"fence":1}'],
    ['a value that is not JSON', 'not json'],
  ])('a fenced save replaces %s', async (_case, raw) => {
    const key = newKey();
    await client.set(key, raw);
    const a = await acquired(key, 'pod-a');
    await store.save(key, position('A1'), a);
    expect(await store.load(key)).toEqual(position('A1'));
  });

  it('reads fences stored as $numberLong and as plain numbers when refusing', async () => {
    for (const fence of ['{"$numberLong":"3000000000"}', '3000000000']) {
      const key = newKey();
      const a = await acquired(key, 'pod-a');
      await client.set(key, `{"v":{"$numberInt":"2"},"token":{"_data":"x"},"fence":${fence}}`);
      expect((await refusal(store.save(key, position('A1'), a))).message).toContain(
        'newer fence 3000000000',
      );
    }
  });

  it('a save without a lease stays a plain SET without fence fields', async () => {
    const key = newKey();
    await acquired(key, 'pod-a');
    await store.save(key, position('P1'));
    const raw = JSON.parse((await client.get(key))!) as Record<string, unknown>;
    expect(raw).not.toHaveProperty('fence');
    expect(raw).not.toHaveProperty('holder');
  });

  it('still reads a position stored under the key of version 0.1', async () => {
    const prefix = uniqueName('lease');
    await client.set(`${prefix}:billing:shop:orders`, encodePosition(position('legacy')));
    expect(await store.load(positionKey(prefix, 'billing', 'shop', 'orders'))).toEqual(
      position('legacy'),
    );
  });

  it('heartbeat counts live members by the Redis clock, drops expired ones, and leave removes at once', async () => {
    const group = candidatesKey(newKey());
    const [before] = await client.time();
    expect(await leases.heartbeat(group, 'pod-a', LONG)).toBe(1);
    const [after] = await client.time();
    const score = Number(await client.zscore(group, 'pod-a'));
    expect(score).toBeGreaterThanOrEqual(Number(before) * 1000 + LONG);
    expect(score).toBeLessThanOrEqual((Number(after) + 1) * 1000 + LONG);
    expect(await client.pttl(group)).toBeGreaterThan(LONG - 5000);

    expect(await leases.heartbeat(group, 'pod-b', 100)).toBe(2);
    expect(await leases.heartbeat(group, 'pod-a', LONG)).toBe(2);
    // The set lives as long as its longest-lived member: pod-b's short TTL did not cut it.
    expect(await client.pttl(group)).toBeGreaterThan(LONG - 5000);
    await eventually(
      'pod-b dropped out',
      async () => (await leases.heartbeat(group, 'pod-a', LONG)) === 1,
    );
    expect(await client.zscore(group, 'pod-b')).toBeNull();

    expect(await leases.heartbeat(group, 'pod-c', LONG)).toBe(2);
    await leases.leave(group, 'pod-a');
    expect(await leases.heartbeat(group, 'pod-c', LONG)).toBe(1);
    await leases.leave(group, 'pod-c');
    expect(await client.exists(group)).toBe(0);
  });

  it('rejects a TTL that is not a positive whole number and an empty holder', async () => {
    const key = newKey();
    await expect(leases.acquire(key, 'pod-a', 0)).rejects.toThrow(RangeError);
    await expect(leases.acquire(key, 'pod-a', 1.5)).rejects.toThrow(RangeError);
    await expect(leases.acquire(key, '', 1000)).rejects.toThrow(RangeError);
    await expect(leases.heartbeat('g', 'm', -1)).rejects.toThrow(RangeError);
    expect(await client.exists(fenceKey(key))).toBe(0);
  });

  it('N clients racing acquire on one key: exactly one wins each round, fences step by one', async () => {
    const racers = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const racer = new Redis(testEnv().redisUrl);
        return { name: `pod-${i}`, racer, leases: new RedisLeaseStore(racer) };
      }),
    );
    try {
      const key = newKey();
      const wins = new Map<string, number>();
      for (let round = 1; round <= 200; round++) {
        // Shuffled, so a different client's command tends to reach Redis first each round.
        const attempts = await Promise.all(
          shuffled(racers).map((r) => r.leases.acquire(key, r.name, LONG)),
        );
        const winners = attempts.flatMap((attempt) =>
          'acquired' in attempt ? [attempt.acquired] : [],
        );
        expect(winners).toHaveLength(1);
        const [winner] = winners;
        expect(winner.fence).toBe(round);
        for (const attempt of attempts)
          if ('heldBy' in attempt) expect(attempt.heldBy).toEqual(winner);
        wins.set(winner.holder, (wins.get(winner.holder) ?? 0) + 1);
        await racers.find((r) => r.name === winner.holder)!.leases.release(key, winner);
      }
      // A race that one client always wins would not be testing much.
      expect(wins.size).toBeGreaterThan(1);
    } finally {
      await Promise.all(racers.map((r) => r.racer.quit()));
    }
  });
});
