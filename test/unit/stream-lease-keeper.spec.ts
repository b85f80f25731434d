import { describe, expect, it } from '@jest/globals';
import { sleep } from '../../lib/common/backoff.js';
import type { LeaseAttempt } from '../../lib/interfaces/lease-store.interface.js';
import { LeaseBalancer, type LeaseTiming } from '../../lib/lease/lease-balancer.js';
import { StreamLeaseKeeper } from '../../lib/lease/stream-lease-keeper.js';
import { MemoryLeaseStore } from '../fixtures/memory-lease-store.js';

/** A store whose next acquire answers late, as one queued while Redis was away does once it is back. */
class LateAcquireStore extends MemoryLeaseStore {
  lateByMs = 0;
  renewals = 0;
  /** The next renewal fails (Redis gone again). */
  renewThrows = false;
  override async acquire(key: string, holder: string, ttlMs?: number): Promise<LeaseAttempt> {
    const attempt = await super.acquire(key, holder, ttlMs);
    await sleep(this.lateByMs);
    this.lateByMs = 0;
    return attempt;
  }
  override async renew(...args: Parameters<MemoryLeaseStore['renew']>): Promise<boolean> {
    this.renewals++;
    if (this.renewThrows) {
      this.renewThrows = false;
      throw new Error('Connection is closed.');
    }
    return super.renew(...args);
  }
}

/** Instance A's keeper of stream s1 over `store`, released (with its balancer stopped) after `body`. */
async function withKeeper(
  store: LateAcquireStore,
  timing: LeaseTiming,
  body: (keeper: StreamLeaseKeeper, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const balancer = new LeaseBalancer(store, 'A', timing, ['s1'], () => false);
  await balancer.start();
  const keeper = new StreamLeaseKeeper('s1', store, timing, balancer);
  const abort = new AbortController();
  try {
    await body(keeper, abort.signal);
  } finally {
    abort.abort();
    await keeper.release();
    await balancer.stop();
  }
}

describe('StreamLeaseKeeper', () => {
  it('renews a lease whose acquire answered late before holding it, instead of dropping it at once as unconfirmed', async () => {
    const store = new LateAcquireStore();
    store.lateByMs = 900; // most of the TTL: only 0 ms of it would be left confirmed
    await withKeeper(
      store,
      { ttlMs: 1000, renewIntervalMs: 100, pollIntervalMs: 20 },
      async (keeper, signal) => {
        let lost: string | undefined;
        keeper.whenLost((reason) => (lost = reason));
        const lease = await keeper.acquire(signal, () => undefined);
        expect(lease).not.toBeNull();
        expect(store.renewals).toBe(1); // the confirming renewal, before the renew timer's first tick
        await sleep(50); // shorter than a renewal interval: only the confirming renewal keeps it
        expect(lost).toBeUndefined();
        expect(keeper.stillValid()).toBe(true);
      },
    );
  });

  it('after the store restarted empty, a new holder starts reading only once the old holder no longer believes its lease valid', async () => {
    const store = new LateAcquireStore();
    const timing = { ttlMs: 1000, renewIntervalMs: 100, pollIntervalMs: 20 };
    await withKeeper(store, timing, async (a, signal) => {
      expect(await a.acquire(signal, () => undefined)).toMatchObject({ holder: 'A' });
      // A is cut off from Redis (its renewals fail, so it still believes its lease until its TTL runs out).
      const renew = store.renew.bind(store);
      store.renew = async (key, lease) => {
        if (lease.holder === 'A') throw new Error('Connection is closed.');
        return renew(key, lease);
      };
      const b = new StreamLeaseKeeper(
        's1',
        store,
        timing,
        new LeaseBalancer(store, 'B', timing, ['s1'], () => false),
      );
      const stopB = new AbortController();
      try {
        // B stands by, sees A holding the stream, and then Redis restarts empty.
        const lease = b.acquire(
          stopB.signal,
          (why) =>
            'heldBy' in why &&
            why.heldBy?.holder === 'A' &&
            store.counter('s1') !== undefined &&
            store.wipe(),
        );
        expect(await lease).toMatchObject({ holder: 'B', fence: 1 });
        expect(a.stillValid()).toBe(false); // by A's own clock its lease ran out before B may read
      } finally {
        stopB.abort();
        await b.release();
      }
    });
  });

  it('alone on a Redis that just started (no other holder or candidate seen), takes the lease without waiting out the TTL', async () => {
    const store = new LateAcquireStore();
    store.wipe(); // a brand-new Redis: no counter, up for less than the TTL
    await withKeeper(
      store,
      { ttlMs: 600_000, renewIntervalMs: 100, pollIntervalMs: 20 },
      async (keeper, signal) => {
        const attempt = await store.acquire('other', 'probe', 600_000);
        expect(attempt).toMatchObject({ waitMs: expect.any(Number) }); // the store does report the missing counter
        const started = performance.now();
        expect(await keeper.acquire(signal, () => undefined)).toMatchObject({
          holder: 'A',
          fence: 1,
        });
        expect(performance.now() - started).toBeLessThan(60_000); // not the 600 s TTL
      },
    );
  });

  it('takes its own lease back when that first renewal fails, instead of standing by for another holder', async () => {
    const store = new LateAcquireStore();
    store.lateByMs = 900;
    store.renewThrows = true;
    await withKeeper(
      store,
      { ttlMs: 1000, renewIntervalMs: 100, pollIntervalMs: 20 },
      async (keeper, signal) => {
        const waited: unknown[] = [];
        const lease = await keeper.acquire(signal, (why) => waited.push(why));
        expect(lease).toEqual(expect.objectContaining({ holder: 'A', fence: 1 })); // the lease it got, not a new one
        expect(waited).toEqual([{ error: 'Connection is closed.' }]); // never "held by A"
        expect(keeper.stillValid()).toBe(true);
      },
    );
  });

  it('holds a lease that answered in time without an extra renewal', async () => {
    const store = new LateAcquireStore();
    await withKeeper(
      store,
      { ttlMs: 10_000, renewIntervalMs: 3000, pollIntervalMs: 20 },
      async (keeper, signal) => {
        expect(await keeper.acquire(signal, () => undefined)).not.toBeNull();
        expect(store.renewals).toBe(0);
        expect(keeper.stillValid()).toBe(true);
      },
    );
  });
});
