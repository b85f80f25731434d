import { describe, expect, it } from '@jest/globals';
import { LeaseBalancer } from '../../lib/lease/lease-balancer.js';
import { MemoryLeaseStore } from '../fixtures/memory-lease-store.js';

const timing = { ttlMs: 60_000, renewIntervalMs: 60_000, pollIntervalMs: 1000 };

describe('LeaseBalancer: the fair share counts the instances that can take each stream', () => {
  it('instances watching the same streams share them evenly', async () => {
    const store = new MemoryLeaseStore();
    const a = new LeaseBalancer(store, 'A', timing, ['s1', 's2', 's3', 's4'], () => false);
    const b = new LeaseBalancer(store, 'B', timing, ['s1', 's2', 's3', 's4'], () => false);
    await a.start();
    await b.start();
    await a.refresh('s1');
    await Promise.all(['s2', 's3', 's4'].map((k) => a.refresh(k)));
    expect([a.fairShare, b.fairShare]).toEqual([2, 2]);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('a stream only one instance watches always fits in its share (none is left without a holder)', async () => {
    const store = new MemoryLeaseStore();
    // X watches a and b; Y (same consumer name, another deployment) watches only a.
    const x = new LeaseBalancer(store, 'X', timing, ['a', 'b'], () => false);
    const y = new LeaseBalancer(store, 'Y', timing, ['a'], () => false);
    await y.start();
    await x.start();
    await y.refresh('a');
    expect(x.fairShare).toBe(2); // 1/2 (a) + 1/1 (b)
    expect(y.fairShare).toBe(1);
    expect(x.reserve('a') && x.reserve('b')).toBe(true);
    await Promise.all([x.stop(), y.stop()]);
  });

  it('hands over only a stream another instance can take, and only when over its share', async () => {
    const store = new MemoryLeaseStore();
    const shed: string[] = [];
    const x = new LeaseBalancer(store, 'X', timing, ['a', 'b', 'c'], (key) => (shed.push(key), true));
    await x.start();
    x.acquired('a');
    x.acquired('b');
    x.acquired('c');
    await (x as unknown as { tick(): Promise<void> }).tick();
    expect(shed).toEqual([]); // alone: its share is all three
    const y = new LeaseBalancer(store, 'Y', timing, ['a'], () => false);
    await y.start();
    await (x as unknown as { tick(): Promise<void> }).tick();
    expect(x.fairShare).toBe(3); // 1/2 + 1 + 1 → 2.5 → 3: still its share, nothing to shed
    expect(shed).toEqual([]);
    await Promise.all([x.stop(), y.stop()]);
  });

  it('leaving at shutdown grows the others\' share at once', async () => {
    const store = new MemoryLeaseStore();
    const a = new LeaseBalancer(store, 'A', timing, ['s1', 's2'], () => false);
    const b = new LeaseBalancer(store, 'B', timing, ['s1', 's2'], () => false);
    await a.start();
    await b.start();
    await Promise.all(['s1', 's2'].map((k) => a.refresh(k)));
    expect(a.fairShare).toBe(1);
    await b.stop();
    await Promise.all(['s1', 's2'].map((k) => a.refresh(k)));
    expect(a.fairShare).toBe(2);
    await a.stop();
  });
});
