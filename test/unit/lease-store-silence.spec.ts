import { afterEach, describe, expect, it } from '@jest/globals';
import { LeaseBalancer } from '../../lib/lease/lease-balancer.js';
import { StreamLeaseKeeper } from '../../lib/lease/stream-lease-keeper.js';
import { insert } from '../fixtures/fake-change-stream.js';
import { FencedMemoryStore, MemoryLeaseStore } from '../fixtures/memory-lease-store.js';
import { deferred, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(() => stopAllStreams());

/** Makes every lease request of `store` wait until `until` resolves (Redis frozen by SIGSTOP). */
function freeze(store: object, until: Promise<void>): void {
  const leases = store as Record<string, unknown>;
  for (const name of ['renew', 'acquire', 'heartbeat', 'announce', 'release']) {
    const original = leases[name] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (original)
      leases[name] = (...args: unknown[]) => until.then(() => original.apply(store, args));
  }
}

describe('a lease store that stops answering', () => {
  it('the holder that lost its lease for want of answers is reconnecting, never a healthy standby, until the store answers', async () => {
    const tokens = new FencedMemoryStore();
    const { stream, seen, states } = setup({
      tokens,
      leases: { timing: { ttlMs: 1000, renewIntervalMs: 200, pollIntervalMs: 50 } },
      scripts: [{ getMores: [[insert(1)]] }],
    });
    stream.start();
    await eventually('the first event handled', () => seen.length === 1);
    const thaw = deferred();
    freeze(tokens.leases!, thaw.promise);
    await eventually('the stream stopped reading', () => states().includes('reconnecting'), 10_000);
    expect(states().slice(states().indexOf('open'))).toEqual(['open', 'reconnecting']);
    expect(stream.status().lastError).toMatch(/no answer from Redis for more than the lease TTL/);
    thaw.resolve();
    await eventually(
      'the lease taken back once the store answers',
      () => stream.status().state === 'open',
      10_000,
    );
    expect(states()).not.toContain('standby');
  });
});

describe('the wait after Redis restarted empty', () => {
  it('an instance that saw another announce itself waits out the TTL, even when its own announcement reaches the empty Redis first', async () => {
    const store = new MemoryLeaseStore();
    const timing = { ttlMs: 1000, renewIntervalMs: 100, pollIntervalMs: 20 };
    const aBalancer = new LeaseBalancer(store, 'A', timing, ['s1'], () => false);
    await aBalancer.start();
    const a = new StreamLeaseKeeper('s1', store, timing, aBalancer);
    const stopA = new AbortController();
    expect(await a.acquire(stopA.signal, () => undefined)).toMatchObject({ holder: 'A', fence: 1 });
    const bBalancer = new LeaseBalancer(store, 'B', timing, ['s1'], () => false);
    await bBalancer.start(); // B sees A as a candidate, is over its share and stands by without asking
    // A is cut off from Redis: it believes its lease until its TTL runs out.
    const leases = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    for (const name of ['renew', 'heartbeat', 'announce']) {
      const original = leases[name].bind(store);
      leases[name] = async (...args: unknown[]) => {
        if (args.includes('A')) throw new Error('Connection is closed.');
        return original(...args);
      };
    }
    store.wipe(); // Redis restarts empty
    await bBalancer.refresh('s1'); // B's next announcement comes first: one candidate now
    const b = new StreamLeaseKeeper('s1', store, timing, bBalancer);
    const stopB = new AbortController();
    try {
      await b.acquire(stopB.signal, () => undefined);
      expect(a.stillValid()).toBe(false);
    } finally {
      stopA.abort();
      stopB.abort();
      await b.release();
      await aBalancer.stop();
      await bBalancer.stop();
      a.abandon();
    }
  });
});
