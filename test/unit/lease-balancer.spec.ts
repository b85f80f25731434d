import { afterEach, describe, expect, it } from '@jest/globals';
import { LeaseBalancer } from '../../lib/lease/lease-balancer.js';
import { StreamLeaseKeeper } from '../../lib/lease/stream-lease-keeper.js';
import { Logger } from '@nestjs/common';
import { CapturingLogger } from '../fixtures/capturing-logger.js';
import { MemoryLeaseStore } from '../fixtures/memory-lease-store.js';
import { eventually } from '../fixtures/test-env.js';

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
    const x = new LeaseBalancer(
      store,
      'X',
      timing,
      ['a', 'b', 'c'],
      (key) => (shed.push(key), true),
    );
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

  it("leaving at shutdown grows the others' share at once", async () => {
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

/**
 * Instances of one consumer with different handler sets, each a balancer plus a lease keeper per
 * stream; a hand-over releases the lease and stands by again, as `CollectionStream.handOver` does.
 */
class Fleet {
  readonly store = new MemoryLeaseStore();
  private readonly abort = new AbortController();
  private readonly keepers = new Map<string, StreamLeaseKeeper>();
  private readonly balancers: LeaseBalancer[] = [];
  private static readonly timing = { ttlMs: 400, renewIntervalMs: 100, pollIntervalMs: 20 };

  async join(id: string, keys: string[]): Promise<void> {
    const balancer = new LeaseBalancer(this.store, id, Fleet.timing, keys, (key) => {
      const keeper = this.keepers.get(`${id}/${key}`)!;
      void keeper.release().then(() => this.standBy(id, key));
      return true;
    });
    this.balancers.push(balancer);
    keys.forEach((key) =>
      this.keepers.set(
        `${id}/${key}`,
        new StreamLeaseKeeper(key, this.store, Fleet.timing, balancer),
      ),
    );
    await balancer.start();
  }

  /** Refreshes every instance's view of the candidate sets (as their first renew tick would). */
  async settle(): Promise<void> {
    await Promise.all(
      this.balancers.map((b) => (b as unknown as { tick(): Promise<void> }).tick()),
    );
  }

  /** Resolves once that instance holds it. */
  standBy(id: string, key: string): Promise<unknown> {
    return this.keepers.get(`${id}/${key}`)!.acquire(this.abort.signal, () => undefined);
  }

  holders(): Record<string, string | null> {
    const byKey: Record<string, string | null> = {};
    for (const [name, keeper] of this.keepers) {
      const [id, key] = name.split('/');
      byKey[key] ??= null;
      if (keeper.current) byKey[key] = id;
    }
    return byKey;
  }

  held(id: string): number {
    return Object.values(this.holders()).filter((holder) => holder === id).length;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.all([...this.keepers.values()].map((k) => k.release()));
    await Promise.all(this.balancers.map((b) => b.stop()));
  }
}

describe('LeaseBalancer with StreamLeaseKeeper: every stream gets a holder', () => {
  let fleet: Fleet;
  afterEach(async () => fleet?.close());

  it('a stream only one instance can take is taken even past its share, and another stream moves to make room', async () => {
    fleet = new Fleet();
    await fleet.join('A', ['s1', 's2']); // share 1
    await fleet.join('B', ['s1', 's2', 's3']); // share 2, and the only candidate of s3
    await fleet.settle();
    await Promise.all([fleet.standBy('B', 's1'), fleet.standBy('B', 's2')]); // B got there first
    ['s1', 's2'].forEach((key) => void fleet.standBy('A', key));
    void fleet.standBy('B', 's3');
    await eventually(
      'every stream held, A its share',
      () => Object.values(fleet.holders()).every((h) => h !== null) && fleet.held('A') === 1,
    );
    expect(fleet.holders().s3).toBe('B');
    expect(fleet.held('B')).toBe(2);
  });

  it('a stream whose candidates are all at their share is taken by one of them after a TTL', async () => {
    fleet = new Fleet();
    await fleet.join('A', ['s1', 's2', 's3']); // share ceil(3 × 1/2) = 2
    await fleet.join('B', ['s1', 's2', 's3', 's4', 's5']); // share ceil(3 × 1/2 + 2 × 1/2) = 3
    await fleet.join('C', ['s4', 's5', 's6']); // share ceil(2 × 1/2 + 1) = 2
    await fleet.settle();
    // B fills its share with s1-s3 and C with s6 and s4: A (under its share) cannot take s5.
    await Promise.all([
      fleet.standBy('B', 's1'),
      fleet.standBy('B', 's2'),
      fleet.standBy('B', 's3'),
    ]);
    await Promise.all([fleet.standBy('C', 's6'), fleet.standBy('C', 's4')]);
    ['s1', 's2', 's3'].forEach((key) => void fleet.standBy('A', key));
    ['s4', 's5'].forEach((key) => void fleet.standBy('B', key));
    void fleet.standBy('C', 's5');
    await eventually(
      'every stream held, A with one',
      () => Object.values(fleet.holders()).every((h) => h !== null) && fleet.held('A') >= 1,
    );
    expect(fleet.held('A') + fleet.held('B') + fleet.held('C')).toBe(6);
  });
});

describe('LeaseBalancer: start and stop', () => {
  it('does not start announcing when stopped while its first announcement was on its way', async () => {
    let answer!: () => void;
    let heartbeats = 0;
    const store = new (class extends MemoryLeaseStore {
      override async heartbeat(group: string, member: string, ttlMs: number): Promise<number> {
        heartbeats++;
        if (heartbeats === 1) await new Promise<void>((resolve) => (answer = resolve)); // Redis slow to answer
        return super.heartbeat(group, member, ttlMs);
      }
    })();
    const balancer = new LeaseBalancer(
      store,
      'A',
      { ttlMs: 400, renewIntervalMs: 10, pollIntervalMs: 5 },
      ['s1'],
      () => false,
    );
    const starting = balancer.start();
    await eventually('the first announcement sent', () => heartbeats === 1);
    await balancer.stop();
    answer();
    await starting;
    expect((balancer as unknown as { timer?: NodeJS.Timeout }).timer).toBeUndefined(); // no renew timer left running
  });
});

describe('LeaseBalancer: instances of one consumer with different handler sets for a stream', () => {
  it('warns once per stream and pair of sets, naming both, on each instance; the same sets give no warning', async () => {
    const logs = new CapturingLogger();
    Logger.overrideLogger(logs);
    const store = new MemoryLeaseStore();
    const tick = (balancer: LeaseBalancer) =>
      (balancer as unknown as { tick(): Promise<void> }).tick();
    // The old and the new version of one app during a deploy: the new one added a handler for s1.
    const a = new LeaseBalancer(
      store,
      'A',
      timing,
      ['s1', 's2'],
      () => false,
      new Map([
        ['s1', 'Orders.onOrder'],
        ['s2', 'Users.onUser'],
      ]),
    );
    const b = new LeaseBalancer(
      store,
      'B',
      timing,
      ['s1', 's2'],
      () => false,
      new Map([
        ['s1', 'Orders.onOrder, Search.onOrder'],
        ['s2', 'Users.onUser'],
      ]),
    );
    try {
      await a.start();
      await b.start(); // B sees A's set in its first announcement
      await tick(a); // and A sees B's
      await tick(a);
      await tick(b);
      expect(logs.messages('warn')).toEqual([
        "Stream s1: instances of this consumer run different handlers for it: B (this instance) runs Orders.onOrder, Search.onOrder; A runs Orders.onOrder. Whichever holds the lease handles each event with its own handlers only, so the others' handlers miss those events. Expected while a deploy that changes the handlers rolls out; otherwise two apps share one consumer name: give each its own consumer name.",
        "Stream s1: instances of this consumer run different handlers for it: A (this instance) runs Orders.onOrder; B runs Orders.onOrder, Search.onOrder. Whichever holds the lease handles each event with its own handlers only, so the others' handlers miss those events. Expected while a deploy that changes the handlers rolls out; otherwise two apps share one consumer name: give each its own consumer name.",
      ]);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      Logger.overrideLogger(false);
    }
  });
});
