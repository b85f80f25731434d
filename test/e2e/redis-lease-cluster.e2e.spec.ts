import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Cluster } from 'ioredis';
import {
  positionKey,
  encodePosition,
  FencedWriteError,
  RedisPositionStore,
} from '../../lib/index.js';
import {
  candidatesKey,
  fenceKey,
  leaseKey,
  leftPositionKey,
  pausedKey,
} from '../../lib/redis/redis-keys.js';
import { RedisLeaseStore } from '../../lib/redis/redis-lease.store.js';
import { uniqueName } from '../fixtures/test-env.js';
import { LocalRedisCluster } from '../servers/redis-cluster.js';

const position = (data: string) => ({ token: { _data: data } });

describe('leases and positions on a Redis Cluster (3 masters)', () => {
  let cluster: LocalRedisCluster;
  let client: Cluster;
  let store: RedisPositionStore;
  beforeAll(async () => {
    const started = Date.now();
    cluster = await LocalRedisCluster.start(3);
    console.log(`[redis cluster] 3 masters up and cluster_state:ok in ${Date.now() - started} ms`);
    client = new Cluster([...cluster.nodes]);
    store = new RedisPositionStore(client);
  }, 60_000);
  afterAll(async () => {
    await client?.quit();
    await cluster?.stop();
  });

  const slotOf = async (key: string) => Number(await client.cluster('KEYSLOT', key));
  /** The master that serves `key`'s slot. */
  const nodeOf = async (key: string) => {
    const slot = await slotOf(key);
    const [, , master] = (await client.cluster('SLOTS')).find(
      ([from, to]) => from <= slot && slot <= to,
    )!;
    return `${master![0]}:${master![1]}`;
  };

  /** Position keys of streams that land on every master, so each script runs on each node. */
  const keysOnEveryNode = async (prefix: string): Promise<string[]> => {
    const byNode = new Map<string, string>();
    for (let i = 0; byNode.size < cluster.nodes.length; i++) {
      const key = positionKey(prefix, 'billing', 'shop', `coll${i}`);
      const node = await nodeOf(key);
      if (!byNode.has(node)) byNode.set(node, key);
    }
    return [...byNode.values()];
  };

  it('runs acquire, renew, release, the fenced save and leaveOrphan on every master without CROSSSLOT', async () => {
    const prefix = uniqueName('cluster');
    for (const key of await keysOnEveryNode(prefix)) {
      const slot = await slotOf(key);
      const related = [
        leaseKey(key),
        fenceKey(key),
        candidatesKey(key),
        leftPositionKey(key),
        pausedKey(key),
      ];
      expect(await Promise.all(related.map(slotOf))).toEqual(related.map(() => slot));

      const first = await store.leases.acquire(key, 'pod-a', 30_000);
      // (and `waitMs`: this cluster has been up for less than the TTL, see the lease store spec)
      expect(first).toMatchObject({ acquired: { holder: 'pod-a', fence: 1 } });
      const a = { holder: 'pod-a', fence: 1 };
      expect(await store.leases.acquire(key, 'pod-b', 30_000)).toMatchObject({ heldBy: a });
      expect(await store.leases.renew(key, a, 30_000)).toBe(true);
      // The pause key is read by the renewal and the acquisition scripts (same slot: no CROSSSLOT).
      await store.leases.writePause!(key, 'incident');
      expect(await store.leases.renewReadingPause!(key, a, 30_000)).toEqual({
        renewed: true,
        paused: 'incident',
      });
      expect(await store.leases.acquire(key, 'pod-b', 30_000)).toEqual({ paused: 'incident' });
      await store.leases.writePause!(key, null);
      await store.save(key, position('A1'), a);
      expect(await store.load(key)).toEqual(position('A1'));

      await store.leases.release(key, a);
      const second = await store.leases.acquire(key, 'pod-b', 30_000);
      expect(second).toEqual({ acquired: { holder: 'pod-b', fence: 2 } });
      const b = { holder: 'pod-b', fence: 2 };
      await expect(store.save(key, position('A2'), a)).rejects.toThrow(FencedWriteError);
      await expect(store.save(key, position('A2'), a)).rejects.toThrow(
        'the lease is held by pod-b (fence 2)',
      );
      expect(await store.leases.renew(key, a, 30_000)).toBe(false);
      await store.save(key, position('B1'), b);
      expect(await store.load(key)).toEqual(position('B1'));
      expect(await store.leaveOrphan(key, position('A2'), a, true)).toBe(false); // a normal takeover
      await client.del(key, leaseKey(key), fenceKey(key)); // the node lost its data
      expect(await store.leaveOrphan(key, position('B2'), b, true)).toBe(true);
      expect(await store.loadOrphan(key)).toEqual(position('B2'));
    }
  });

  it('reads positions, orphans and leases from the master even when the client scales reads to replicas', async () => {
    // ioredis asks `scaleReads` where to send each read-only command (GET, ...), never for scripts
    // and writes: those go to the master. A replica may lag behind the master and not have the
    // position yet, so a load that goes through `scaleReads` could start the stream from now.
    const offMaster: string[] = [];
    const scaled = new Cluster([...cluster.nodes], {
      scaleReads: (nodes: unknown[], command: { name: string; args: unknown[] }) => {
        offMaster.push(`${command.name} ${String(command.args[0])}`);
        return nodes[nodes.length - 1];
      },
    });
    try {
      const scaledStore = new RedisPositionStore(scaled);
      const prefix = uniqueName('cluster');
      const key = positionKey(prefix, 'billing', 'shop', 'orders');
      const a = { holder: 'pod-a', fence: 1 };
      expect(await scaledStore.leases.acquire(key, 'pod-a', 30_000)).toMatchObject({ acquired: a });
      await scaledStore.save(key, position('A1'), a);
      expect(await scaledStore.load(key)).toEqual(position('A1'));
      expect(await scaledStore.load(positionKey(prefix, 'billing', 'shop', 'none'))).toBeNull(); // and the version 0.1 key
      await scaled.del(key, leaseKey(key), fenceKey(key));
      expect(await scaledStore.leaveOrphan(key, position('A2'), a, true)).toBe(true);
      expect(await scaledStore.loadOrphan(key)).toEqual(position('A2'));
      expect(offMaster).toEqual([]);
    } finally {
      await scaled.quit();
    }
  });

  it('counts members with heartbeat and leave', async () => {
    const group = candidatesKey(positionKey(uniqueName('cluster'), 'billing', 'shop', 'orders'));
    expect(await store.leases.heartbeat(group, 'pod-a', 30_000)).toBe(1);
    expect(await store.leases.heartbeat(group, 'pod-b', 30_000)).toBe(2);
    await store.leases.leave(group, 'pod-a');
    expect(await store.leases.heartbeat(group, 'pod-b', 30_000)).toBe(1);
  });

  it('a position key without a hash tag fails with CROSSSLOT: the tag is what makes this work', async () => {
    const key = uniqueName('untagged');
    const slots = new Set([
      await slotOf(key),
      await slotOf(leaseKey(key)),
      await slotOf(fenceKey(key)),
    ]);
    expect(slots.size).toBeGreaterThan(1);
    await expect(new RedisLeaseStore(client).acquire(key, 'pod-a', 30_000)).rejects.toThrow(
      /CROSSSLOT/,
    );
  });

  it('plain save and load, and the read of a version 0.1 key that lives in another slot', async () => {
    const prefix = uniqueName('cluster');
    const key = positionKey(prefix, 'billing', 'shop', 'orders');
    const legacy = `${prefix}:billing:shop:orders`;
    expect(await slotOf(legacy)).not.toBe(await slotOf(key));

    expect(await store.load(key)).toBeNull();
    await client.set(legacy, encodePosition(position('legacy')));
    expect(await store.load(key)).toEqual(position('legacy'));
    await store.save(key, position('P1'));
    expect(await store.load(key)).toEqual(position('P1'));
    expect(await client.get(legacy)).not.toBeNull();
  });
});
