import { describe, expect, it } from '@jest/globals';
import type { LeaseAttempt } from '../../lib/interfaces/lease-store.interface.js';
import { LeaseBalancer } from '../../lib/lease/lease-balancer.js';
import { StreamLeaseKeeper } from '../../lib/lease/stream-lease-keeper.js';
import { MemoryLeaseStore } from '../fixtures/memory-lease-store.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A store whose next acquire answers late, as one queued while Redis was away does once it is back. */
class LateAcquireStore extends MemoryLeaseStore {
  lateByMs = 0;
  renewals = 0;
  /** The next renewal fails (Redis gone again). */
  renewThrows = false;
  override async acquire(key: string, holder: string): Promise<LeaseAttempt> {
    const attempt = await super.acquire(key, holder);
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

describe('StreamLeaseKeeper', () => {
  it('renews a lease whose acquire answered late before holding it, instead of dropping it at once as unconfirmed', async () => {
    const timing = { ttlMs: 1000, renewIntervalMs: 100, pollIntervalMs: 20 };
    const store = new LateAcquireStore();
    store.lateByMs = 900; // most of the TTL: only 0 ms of it would be left confirmed
    const balancer = new LeaseBalancer(store, 'A', timing, ['s1'], () => false);
    await balancer.start();
    const keeper = new StreamLeaseKeeper('s1', store, timing, balancer);
    let lost: string | undefined;
    keeper.whenLost((reason) => (lost = reason));
    const abort = new AbortController();
    try {
      const lease = await keeper.acquire(abort.signal, () => undefined);
      expect(lease).not.toBeNull();
      expect(store.renewals).toBe(1); // the confirming renewal, before the renew timer's first tick
      await sleep(50); // shorter than a renewal interval: only the confirming renewal keeps it
      expect(lost).toBeUndefined();
      expect(keeper.stillValid()).toBe(true);
    } finally {
      abort.abort();
      await keeper.release();
      await balancer.stop();
    }
  });

  it('takes its own lease back when that first renewal fails, instead of standing by for another holder', async () => {
    const timing = { ttlMs: 1000, renewIntervalMs: 100, pollIntervalMs: 20 };
    const store = new LateAcquireStore();
    store.lateByMs = 900;
    store.renewThrows = true;
    const balancer = new LeaseBalancer(store, 'A', timing, ['s1'], () => false);
    await balancer.start();
    const keeper = new StreamLeaseKeeper('s1', store, timing, balancer);
    const waited: unknown[] = [];
    const abort = new AbortController();
    try {
      const lease = await keeper.acquire(abort.signal, (why) => waited.push(why));
      expect(lease).toEqual(expect.objectContaining({ holder: 'A', fence: 1 })); // the lease it got, not a new one
      expect(waited).toEqual([{ error: 'Connection is closed.' }]); // never "held by A"
      expect(keeper.stillValid()).toBe(true);
    } finally {
      abort.abort();
      await keeper.release();
      await balancer.stop();
    }
  });

  it('holds a lease that answered in time without an extra renewal', async () => {
    const timing = { ttlMs: 10_000, renewIntervalMs: 3000, pollIntervalMs: 20 };
    const store = new LateAcquireStore();
    const balancer = new LeaseBalancer(store, 'A', timing, ['s1'], () => false);
    await balancer.start();
    const keeper = new StreamLeaseKeeper('s1', store, timing, balancer);
    const abort = new AbortController();
    try {
      expect(await keeper.acquire(abort.signal, () => undefined)).not.toBeNull();
      expect(store.renewals).toBe(0);
      expect(keeper.stillValid()).toBe(true);
    } finally {
      abort.abort();
      await keeper.release();
      await balancer.stop();
    }
  });
});
