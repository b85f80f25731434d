import { afterEach, describe, expect, it } from '@jest/globals';
import { insert, token } from '../fixtures/fake-change-stream.js';
import { FencedMemoryStore } from '../fixtures/memory-lease-store.js';
import { deferred, KEY, logs, positionOf, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

describe('CollectionStream with leases', () => {
  it('becomes active with a fenced lease, saves under it, and shows role, holder and fence', async () => {
    const tokens = new FencedMemoryStore();
    const { stream, seen, events } = setup({ tokens, leases: {}, scripts: [{ getMores: [[insert(1), insert(2)]] }] });
    stream.start();
    await eventually('both handled', () => seen.length === 2);
    await eventually('t2 saved under fence 1', () => tokens.saves.some((s) => JSON.stringify(s) === JSON.stringify({ position: positionOf(2), fence: 1 })));
    expect(stream.status()).toMatchObject({ state: 'open', role: 'active', instanceId: 'A', holder: 'A', fence: 1 });
    expect(events.find((e) => e.type === 'role')).toMatchObject({ role: 'active', instanceId: 'A', fence: 1 });
  });

  it('a refused write stops the stream at once: standby, nothing past it acknowledged, nothing saved under the old fence', async () => {
    const tokens = new FencedMemoryStore();
    const third = deferred();
    const { stream, seen } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[1, 2, 3, 4, 5].map((n) => insert(n))] }],
      handle: (id) => (id === 3 ? third.promise : undefined),
    });
    stream.start();
    await eventually('t2 saved', () => tokens.saves.some((s) => JSON.stringify(s.position) === JSON.stringify(positionOf(2))));
    tokens.leases.steal(KEY, 'B'); // another instance took over while event 3 was running
    const savesBefore = tokens.saves.length;
    third.resolve();
    await eventually('lost and said so', () => logs.messages('warn').some((m) => m.includes('lost its lease')));
    expect(logs.messages('warn').some((m) => m.includes('position write refused'))).toBe(true);
    expect(seen).toEqual([1, 2, 3]); // 4 and 5 were never dispatched by the fenced-out instance
    expect(tokens.saves.length).toBe(savesBefore);
    expect(stream.status()).toMatchObject({ state: 'standby', holder: 'B', fence: 2 });
  });

  it('a refused renewal stops reading: events after it are left to the new holder', async () => {
    const tokens = new FencedMemoryStore();
    const stolen = deferred();
    const { stream, seen, server } = setup({ tokens, leases: {}, scripts: [{ getMores: [[insert(1)], { after: stolen.promise }, [insert(2)]] }] });
    stream.start();
    await eventually('1 handled', () => seen.length === 1);
    tokens.leases.steal(KEY, 'B');
    await eventually('standby', () => stream.status().role === 'standby');
    stolen.resolve(); // the server has event 2 now (and the pending read returns): the fenced-out instance must not handle it
    await eventually('lost and said so', () => logs.messages('warn').some((m) => m.includes('lost its lease (another instance holds it now)')));
    expect(seen).toEqual([1]);
    expect(server.opens).toHaveLength(1);
  });

  it('a lease dropped for want of a confirmed renewal (Redis slow or away) is taken back as it was, without waiting out its TTL', async () => {
    const tokens = new FencedMemoryStore();
    const { stream, seen } = setup({ tokens, leases: {}, scripts: [{ getMores: [[insert(1)]] }] });
    stream.start();
    await eventually('1 handled', () => seen.length === 1);
    const renew = tokens.leases.renew.bind(tokens.leases);
    let reachable = false;
    tokens.leases.renew = async (key, lease) => {
      if (!reachable) throw new Error('Redis is not reachable');
      return renew(key, lease);
    };
    await eventually('lost for want of a confirmation', () => logs.messages('warn').some((m) => m.includes('no renewal confirmed within the 1000 ms lease TTL')));
    reachable = true;
    await eventually('active again', () => stream.status().role === 'active');
    expect(stream.status().fence).toBe(1); // the same lease: nobody else took the stream meanwhile
  });

  it('hand-over drains, saves the last position under its fence, then releases the lease', async () => {
    const tokens = new FencedMemoryStore();
    const { stream, seen } = setup({ tokens, leases: {}, options: { checkpoint: { maxEvents: 100, intervalMs: 60_000 } }, scripts: [{ getMores: [[insert(1), insert(2)]] }, {}] });
    stream.start();
    await eventually('both handled', () => seen.length === 2);
    expect(tokens.saves).toEqual([]); // nothing saved yet: large batches
    stream.handOver('test');
    // It saves, releases, and (alone, so within its share) takes the stream again with a new fence.
    await eventually('re-acquired with fence 2', () => stream.status().fence === 2 && stream.status().role === 'active');
    expect(tokens.saves[0]).toEqual({ position: positionOf(2), fence: 1 });
    expect(logs.messages('log').some((m) => m.includes('handed the stream over (test)'))).toBe(true);
  });

  it('when the store lost everything (Redis restarted empty), the next tenure resumes from the last handled position, not from now', async () => {
    const tokens = new FencedMemoryStore();
    const { stream, seen, server } = setup({ tokens, leases: {}, scripts: [{ getMores: [[insert(1), insert(2), insert(3)]] }, { getMores: [[insert(4)]] }] });
    stream.start();
    await eventually('3 handled', () => seen.length === 3);
    // Redis restarted empty: positions, the lease and its fence counter are gone.
    (tokens as unknown as { inner: unknown }).inner = new (await import('../../lib/index.js')).InMemoryResumeTokenStore();
    tokens.leases.steal(KEY, 'nobody');
    await tokens.leases.release(KEY, { holder: 'nobody', fence: 2 });
    await eventually('4 handled by the next tenure', () => seen.includes(4));
    expect(server.opens[1].resumeAfter).toEqual(token(3));
    expect(logs.messages('warn').some((m) => m.includes('no position is stored any more'))).toBe(true);
  });
});
