import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { FencedWriteError, positionKey, RedisPositionStore } from '../../lib/index.js';
import type { LeaseStore, PositionStore, StreamLease } from '../../lib/index.js';
import { fenceKey, leaseKey, leftPositionKey } from '../../lib/redis/redis-keys.js';
import { FencedMemoryStore } from '../fixtures/memory-lease-store.js';
import { testEnv, uniqueName } from '../fixtures/test-env.js';

// One contract, run against the Redis stores (the real Lua scripts) and the in-memory fixture the
// unit specs use in their place: the two cannot drift apart without one of these failing.

const TTL = 30_000;
const position = (data: string) => ({ token: { _data: data } });

type Store = PositionStore &
  Required<Pick<PositionStore, 'leaveOrphan' | 'loadOrphan' | 'dropOrphan'>> & {
    leases: LeaseStore;
  };

interface Subject {
  store: Store;
  /** Another instance takes the stream over (the holder's lease expired meanwhile). */
  steal(key: string, holder: string): Promise<StreamLease>;
  /** Redis restarted empty: the stream's position, lease, counter and left position are gone. */
  wipe(key: string): Promise<void>;
}

let client: Redis;
beforeAll(() => {
  client = new Redis(testEnv().redisUrl);
});
afterAll(() => client.quit());

const subjects: Array<[string, () => Subject]> = [
  [
    'Redis (Lua scripts)',
    () => {
      const store = new RedisPositionStore(client) as Store;
      return {
        store,
        steal: async (key, holder) => {
          await client.del(leaseKey(key));
          return acquired(store, key, holder);
        },
        wipe: async (key) =>
          void (await client.del(key, leaseKey(key), fenceKey(key), leftPositionKey(key))),
      };
    },
  ],
  [
    'in memory (test fixture)',
    () => {
      const store = new FencedMemoryStore();
      return {
        store,
        steal: async (key, holder) => store.leases.steal(key, holder),
        wipe: async () => store.wipe(),
      };
    },
  ],
];

async function acquired(store: Store, key: string, holder: string): Promise<StreamLease> {
  const attempt = await store.leases.acquire(key, holder, TTL);
  if (!('acquired' in attempt))
    throw new Error(`${holder} did not acquire ${key}: ${JSON.stringify(attempt)}`);
  return attempt.acquired;
}

describe.each(subjects)('store contract: %s', (_, create) => {
  let subject: Subject;
  let store: Store;
  let key: string;
  beforeAll(() => {
    subject = create();
    store = subject.store;
  });
  const newKey = () => (key = positionKey(uniqueName('contract'), 'billing', 'shop', 'orders'));

  describe('leases and fenced saves', () => {
    it('hands out growing fences, and refuses a second holder while the lease is held', async () => {
      newKey();
      const a = await acquired(store, key, 'a');
      const attempt = await store.leases.acquire(key, 'b', TTL);
      expect(attempt).toMatchObject({ heldBy: a });
      await store.leases.release(key, a);
      const b = await acquired(store, key, 'b');
      expect(b.fence).toBeGreaterThan(a.fence);
    });

    it('while the pause key is set: nobody acquires, and the holder still renews but learns of it; cleared, it is acquired again', async () => {
      newKey();
      const leases = store.leases as Required<LeaseStore>;
      const a = await acquired(store, key, 'a');
      expect(await leases.renewReadingPause(key, a, TTL)).toEqual({ renewed: true, paused: null });
      await leases.writePause(key, 'incident 7');
      expect(await leases.renewReadingPause(key, a, TTL)).toEqual({
        renewed: true,
        paused: 'incident 7',
      });
      await store.leases.release(key, a);
      expect(await store.leases.acquire(key, 'b', TTL)).toEqual({ paused: 'incident 7' });
      await leases.writePause(key, null);
      const b = await acquired(store, key, 'b');
      expect(b.fence).toBe(a.fence + 1); // nothing was handed out while paused
      expect(await leases.renewReadingPause(key, a, TTL)).toEqual({ renewed: false, paused: null });
    });

    it('saves under the current lease, and refuses a save under a lease that was taken over', async () => {
      newKey();
      const a = await acquired(store, key, 'a');
      await store.save(key, position('a1'), a);
      expect(await store.load(key)).toEqual(position('a1'));
      const b = await subject.steal(key, 'b');
      await store.save(key, position('b1'), b);
      await expect(store.save(key, position('a2'), a)).rejects.toBeInstanceOf(FencedWriteError);
      expect(await store.load(key)).toEqual(position('b1'));
    });
  });

  describe('left positions (recovery from a store that lost its data)', () => {
    it('leaves nothing after a normal takeover, whether or not the loser had saved', async () => {
      newKey();
      const a = await acquired(store, key, 'a');
      await store.save(key, position('a1'), a);
      const b = await subject.steal(key, 'b');
      expect(await store.leaveOrphan(key, position('a2'), a, true)).toBe(false);
      await store.save(key, position('b1'), b);
      expect(await store.leaveOrphan(key, position('a2'), a, false)).toBe(false);
      expect(await store.loadOrphan(key)).toBeNull();
    });

    it('leaves nothing when the lease only expired and nobody took it', async () => {
      newKey();
      const a = await acquired(store, key, 'a');
      await store.save(key, position('a1'), a);
      await store.leases.release(key, a);
      expect(await store.leaveOrphan(key, position('a2'), a, true)).toBe(false);
      expect(await store.loadOrphan(key)).toBeNull();
    });

    it('leaves the position when the store was wiped (counter missing), once', async () => {
      newKey();
      const a = await acquired(store, key, 'a');
      await store.save(key, position('a1'), a);
      await subject.wipe(key);
      expect(await store.leaveOrphan(key, position('a2'), a, true)).toBe(true);
      expect(await store.loadOrphan(key)).toEqual(position('a2'));
      expect(await store.leaveOrphan(key, position('a3'), a, true)).toBe(false);
      expect(await store.loadOrphan(key)).toEqual(position('a2'));
    });

    it('leaves the position when, after a wipe, another holder got the same fence', async () => {
      newKey();
      const a = await acquired(store, key, 'a');
      await subject.wipe(key);
      const b = await acquired(store, key, 'b');
      expect(b.fence).toBe(a.fence);
      expect(await store.leaveOrphan(key, position('a1'), a, false)).toBe(true);
      expect(await store.loadOrphan(key)).toEqual(position('a1'));
    });

    it('leaves the position when, after a wipe, another holder stored one under the same fence', async () => {
      newKey();
      const a = await acquired(store, key, 'a');
      await subject.wipe(key);
      const b = await acquired(store, key, 'b');
      await store.save(key, position('b1'), b);
      await store.leases.release(key, b);
      expect(await store.leaveOrphan(key, position('a1'), a, false)).toBe(true);
    });

    it('leaves the position when the counter went back below its fence', async () => {
      newKey();
      await store.leases.release(key, await acquired(store, key, 'a'));
      const a = await acquired(store, key, 'a');
      expect(a.fence).toBe(2);
      await subject.wipe(key);
      await store.leases.release(key, await acquired(store, key, 'b'));
      expect(await store.leaveOrphan(key, position('a1'), a, false)).toBe(true);
    });

    it('after dropOrphan, returns nothing and leaves nothing more', async () => {
      newKey();
      const a = await acquired(store, key, 'a');
      await subject.wipe(key);
      expect(await store.leaveOrphan(key, position('a1'), a, false)).toBe(true);
      await store.dropOrphan(key);
      expect(await store.loadOrphan(key)).toBeNull();
      expect(await store.leaveOrphan(key, position('a2'), a, false)).toBe(false);
      expect(await store.loadOrphan(key)).toBeNull();
    });
  });
});
