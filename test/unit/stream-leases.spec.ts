import { afterEach, describe, expect, it } from '@jest/globals';
import { insert, token, update } from '../fixtures/fake-change-stream.js';
import { FencedMemoryStore } from '../fixtures/memory-lease-store.js';
import {
  deferred,
  KEY,
  logs,
  positionOf,
  setup,
  stopAllStreams,
} from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

describe('CollectionStream with leases', () => {
  it('becomes active with a fenced lease, saves under it, and shows role, holder and fence', async () => {
    const tokens = new FencedMemoryStore();
    const { stream, seen, events } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1), insert(2)]] }],
    });
    stream.start();
    await eventually('both handled', () => seen.length === 2);
    await eventually('t2 saved under fence 1', () =>
      tokens.saves.some(
        (s) => JSON.stringify(s) === JSON.stringify({ position: positionOf(2), fence: 1 }),
      ),
    );
    expect(stream.status()).toMatchObject({
      state: 'open',
      role: 'active',
      instanceId: 'A',
      holder: 'A',
      fence: 1,
    });
    expect(events.find((e) => e.type === 'role')).toMatchObject({
      role: 'active',
      instanceId: 'A',
      fence: 1,
    });
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
    await eventually('t2 saved', () =>
      tokens.saves.some((s) => JSON.stringify(s.position) === JSON.stringify(positionOf(2))),
    );
    tokens.leases.steal(KEY, 'B'); // another instance took over while event 3 was running
    const savesBefore = tokens.saves.length;
    third.resolve();
    await eventually('lost and said so', () =>
      logs.messages('warn').some((m) => m.includes('lost its lease')),
    );
    expect(logs.messages('warn').some((m) => m.includes('position write refused'))).toBe(true);
    expect(seen).toEqual([1, 2, 3]); // 4 and 5 were never dispatched by the fenced-out instance
    expect(tokens.saves.length).toBe(savesBefore);
    expect(stream.status()).toMatchObject({ state: 'standby', holder: 'B', fence: 2 });
  });

  it('a refused renewal stops reading: events after it are left to the new holder', async () => {
    const tokens = new FencedMemoryStore();
    const stolen = deferred();
    const { stream, seen, server } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1)], { after: stolen.promise }, [insert(2)]] }],
    });
    stream.start();
    await eventually('1 handled', () => seen.length === 1);
    tokens.leases.steal(KEY, 'B');
    await eventually('standby', () => stream.status().role === 'standby');
    stolen.resolve(); // the server has event 2 now (and the pending read returns): the fenced-out instance must not handle it
    await eventually('lost and said so', () =>
      logs
        .messages('warn')
        .some((m) =>
          m.includes(
            "lost its lease (Redis no longer has it as this instance's: another instance took it",
          ),
        ),
    );
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
    await eventually('lost for want of a confirmation', () =>
      logs
        .messages('warn')
        .some((m) => m.includes('no renewal confirmed within the 1000 ms lease TTL')),
    );
    reachable = true;
    await eventually('active again', () => stream.status().role === 'active');
    expect(stream.status().fence).toBe(1); // the same lease: nobody else took the stream meanwhile
  });

  it('hand-over drains, saves the last position under its fence, then releases the lease', async () => {
    const tokens = new FencedMemoryStore();
    const { stream, seen } = setup({
      tokens,
      leases: {},
      options: { checkpoint: { maxEvents: 100, intervalMs: 60_000 } },
      scripts: [{ getMores: [[insert(1), insert(2)]] }, {}],
    });
    stream.start();
    await eventually('both handled', () => seen.length === 2);
    expect(tokens.saves).toEqual([]); // nothing saved yet: large batches
    stream.handOver('test');
    // It saves, releases, and (alone, so within its share) takes the stream again with a new fence.
    await eventually(
      're-acquired with fence 2',
      () => stream.status().fence === 2 && stream.status().role === 'active',
    );
    expect(tokens.saves[0]).toEqual({ position: positionOf(2), fence: 1 });
    expect(logs.messages('log').some((m) => m.includes('handed the stream over (test)'))).toBe(
      true,
    );
  });

  it('is not handed over before it has a position (a server that gives none at open): the next holder would start from now', async () => {
    const tokens = new FencedMemoryStore();
    const gate = deferred();
    const { stream, seen } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [{ after: gate.promise }, [insert(1)]] }, {}],
    });
    stream.start();
    await eventually('open', () => stream.status().state === 'open');
    expect(stream.handOver('test')).toBe(false);
    gate.resolve();
    await eventually('1 handled', () => seen.length === 1);
    expect(stream.handOver('test')).toBe(true);
    await eventually('handed over and re-acquired with fence 2', () => stream.status().fence === 2);
    expect(tokens.saves[0]).toEqual({ position: positionOf(1), fence: 1 });
  });

  it('when the store lost everything (Redis restarted empty), the next tenure resumes from the last handled position, not from now', async () => {
    const tokens = new FencedMemoryStore();
    const { stream, seen, server } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1), insert(2), insert(3)]] }, { getMores: [[insert(4)]] }],
    });
    stream.start();
    await eventually('3 handled', () => seen.length === 3);
    tokens.wipe(); // Redis restarted empty: positions, the lease and its fence counter are gone
    await eventually('4 handled by the next tenure', () => seen.includes(4));
    expect(server.opens[1].resumeAfter).toEqual(token(3));
  });
});

describe('CollectionStream with leases: losing the lease stops handler calls at once', () => {
  it('with concurrency 1, losing the lease aborts the running handler at once and acknowledges nothing after', async () => {
    const tokens = new FencedMemoryStore();
    const signals: AbortSignal[] = [];
    const release = deferred();
    const { stream, seen } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1), insert(2)]] }],
      handle: async (id, context) => {
        if (id !== 2) return;
        signals.push(context.signal);
        await release.promise;
      },
    });
    stream.start();
    await eventually('2 running', () => signals.length === 1);
    const savesBefore = tokens.saves.length;
    tokens.leases.steal(KEY, 'B');
    await eventually('its signal aborted while it still runs', () => signals[0].aborted);
    expect(seen).toEqual([1]);
    release.resolve();
    await eventually('2 finished', () => seen.length === 2);
    await eventually('standby', () => stream.status().role === 'standby');
    expect(tokens.saves.length).toBe(savesBefore);
  });

  it('an event queued behind its document does not start once the lease may have expired', async () => {
    const tokens = new FencedMemoryStore();
    const first = deferred();
    const started: number[] = [];
    const { stream } = setup({
      tokens,
      leases: {},
      options: { concurrency: 4 },
      scripts: [{ getMores: [[insert(1, 7), update(2, 7)]] }],
      handle: async (_id, _context, change) => {
        started.push(Number(String((change._id as { _data: string })._data).slice(1)));
        if (started.length === 1) await first.promise;
      },
    });
    stream.start();
    await eventually(
      'the insert runs, the update waits behind it',
      () => started.length === 1 && stream.status().inFlightEvents === 2,
    );
    tokens.leases.steal(KEY, 'B');
    await eventually('standby', () => stream.status().role === 'standby');
    first.resolve();
    await eventually('nothing in flight', () => stream.status().inFlightEvents === 0);
    expect(started).toEqual([1]);
  });
});

describe('CollectionStream with leases: shutdown, failure and hand-over', () => {
  it('a shutdown that times out keeps the lease (it expires with the process), so no one handles the running event twice', async () => {
    const tokens = new FencedMemoryStore();
    const running = deferred();
    const { stream } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1)]] }],
      handle: () => running.promise,
    });
    stream.start();
    await eventually('1 running', () => stream.status().inFlightEvents === 1);
    await stream.stop(100);
    expect((await tokens.leases.acquire(KEY, 'B')) as object).toMatchObject({
      heldBy: { holder: 'A', fence: 1 },
    });
    running.resolve();
  });

  it('a failed stream is not handed over and keeps renewing its lease, which it releases at shutdown', async () => {
    const tokens = new FencedMemoryStore();
    const renew = tokens.leases.renew.bind(tokens.leases);
    let renewals = 0;
    tokens.leases.renew = async (key, lease) => {
      renewals++;
      return renew(key, lease);
    };
    const { stream } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1)]] }],
      handle: () => {
        throw new Error('poison');
      },
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(stream.handOver('test')).toBe(false);
    const after = renewals;
    await eventually('renewed 3 more times after failing', () => renewals >= after + 3);
    const lease = { holder: 'A', fence: stream.status().fence! };
    expect(tokens.leases.isCurrent(KEY, lease)).toBe(true);
    expect(stream.status()).toMatchObject({ state: 'failed', role: 'active', holder: 'A' });
    await stream.stop(1000);
    expect(tokens.leases.isCurrent(KEY, lease)).toBe(false);
    expect(await tokens.leases.acquire(KEY, 'B')).toMatchObject({
      acquired: { holder: 'B', fence: lease.fence + 1 },
    });
  });

  it('a stream with events in flight is not handed over', async () => {
    const tokens = new FencedMemoryStore();
    const running = deferred();
    const { stream } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1)]] }],
      handle: () => running.promise,
    });
    stream.start();
    await eventually('1 running', () => stream.status().inFlightEvents === 1);
    expect(stream.handOver('test')).toBe(false);
    running.resolve();
    await eventually('idle', () => stream.status().inFlightEvents === 0);
    expect(stream.handOver('test')).toBe(true);
  });

  it('while the lease cannot even be asked for (Redis away), the stream is reconnecting, not a healthy standby', async () => {
    const tokens = new FencedMemoryStore();
    tokens.leases.acquire = async () => {
      throw new Error('Redis is not reachable');
    };
    const { stream } = setup({ tokens, leases: {}, scripts: [] });
    stream.start();
    await eventually('reconnecting', () => stream.status().state === 'reconnecting');
    expect(stream.status().lastError).toContain('Redis is not reachable');
  });

  it('a standby is healthy only while Redis answers: frozen for a TTL, nobody is known to hold the stream, and it says so', async () => {
    const tokens = new FencedMemoryStore();
    tokens.leases.steal(KEY, 'B');
    const { stream } = setup({ tokens, leases: {}, scripts: [] });
    stream.start();
    await eventually('standby', () => stream.status().state === 'standby');
    // Redis freezes (SIGSTOP): every command waits for an answer that does not come.
    const thaw = deferred();
    const acquire = tokens.leases.acquire.bind(tokens.leases);
    const heartbeat = tokens.leases.heartbeat.bind(tokens.leases);
    tokens.leases.acquire = async (...args) => thaw.promise.then(() => acquire(...args));
    tokens.leases.heartbeat = async (...args) => thaw.promise.then(() => heartbeat(...args));
    await eventually('no longer a healthy standby', () => stream.status().state === 'reconnecting');
    expect(stream.status().lastError).toBe(
      'waiting for the position store to ask for the lease: no answer from Redis for more than the lease TTL (1000 ms), so no live holder of the stream is known',
    );
    thaw.resolve(); // Redis answers again, and B still holds the stream
    await eventually('standby again', () => stream.status().state === 'standby');
    expect(stream.status()).toMatchObject({ role: 'standby', holder: 'B', lastError: null });
  });

  it('a standby stops without warning that it could not save', async () => {
    const tokens = new FencedMemoryStore();
    tokens.leases.steal(KEY, 'B');
    const { stream } = setup({ tokens, leases: {}, scripts: [] });
    stream.start();
    await eventually('standby', () => stream.status().state === 'standby');
    await stream.stop(500);
    expect(logs.messages('warn').filter((m) => m.includes('could not be stored'))).toEqual([]);
    expect(logs.messages('log').some((m) => m.includes('closed (it was on standby here)'))).toBe(
      true,
    );
  });
});

describe('CollectionStream with leases: Redis unreachable', () => {
  it('while the lease cannot even be asked for (Redis away), the stream is reconnecting, not a healthy standby', async () => {
    const tokens = new FencedMemoryStore();
    tokens.leases.acquire = async () => {
      throw new Error('Redis is not reachable');
    };
    const { stream } = setup({ tokens, leases: {}, scripts: [] });
    stream.start();
    await eventually('reconnecting', () => stream.status().state === 'reconnecting');
    expect(stream.status().lastError).toContain('Redis is not reachable');
  });
});

describe('CollectionStream with leases: recovery when Redis lost its data (the left position)', () => {
  const saved = (tokens: FencedMemoryStore, n: number) =>
    tokens.saves.some((s) => JSON.stringify(s.position) === JSON.stringify(positionOf(n)));
  /** Instance A, active, has handled events 1-3 and stored 3. */
  const aStoredThree = async (tokens: FencedMemoryStore) => {
    const a = setup({
      tokens,
      leases: { instanceId: 'A' },
      scripts: [{ getMores: [[insert(1), insert(2), insert(3)]] }],
    });
    a.stream.start();
    await eventually('A handled 3 and saved', () => a.seen.length === 3 && saved(tokens, 3));
    return a;
  };
  /** Redis restarts empty, and instance B (started now) takes the stream from A. */
  const wipeAndStartB = (
    tokens: FencedMemoryStore,
    scripts: Parameters<typeof setup>[0]['scripts'],
  ) => {
    tokens.wipe();
    const b = setup({ tokens, leases: { instanceId: 'B' }, scripts });
    b.stream.start();
    return b;
  };

  it('Redis restarted empty under two instances: the old holder leaves its last position, the new one (started from now) restarts from it', async () => {
    const tokens = new FencedMemoryStore();
    const a = setup({
      tokens,
      leases: { instanceId: 'A' },
      scripts: [{ getMores: [[insert(1), insert(2), insert(3)]] }],
    });
    a.stream.start();
    await eventually(
      'A handled 3 and saved',
      () =>
        a.seen.length === 3 &&
        tokens.saves.some((s) => JSON.stringify(s.position) === JSON.stringify(positionOf(3))),
    );
    tokens.wipe();
    const b = setup({
      tokens,
      leases: { instanceId: 'B' },
      scripts: [{ getMores: [[insert(9)]] }, { getMores: [[insert(4), insert(5)]] }],
    });
    b.stream.start();
    // B got a fresh lease and started from now; A loses its lease and leaves t3 beside the key.
    await eventually('B restarted from what A left', () => b.server.opens.length === 2, 5000);
    expect(b.server.opens[1].resumeAfter).toEqual(token(3));
    await eventually('B handled 4 and 5', () => b.seen.includes(5));
    expect(
      logs
        .messages('warn')
        .some((m) => m.includes('an instance left its last position when the store lost')),
    ).toBe(true);
    expect(
      logs
        .messages('warn')
        .some((m) => m.includes('while A was reading; A left the position it reached')),
    ).toBe(true);
    expect(tokens.saves.every((s) => s.fence !== null)).toBe(true);
    await eventually('what A left is removed once B stored it', () => tokens.orphans.size === 0);
  });

  it('a position left late (Redis still away when the old holder noticed) reaches the holder that has been reading and saving since', async () => {
    const tokens = new FencedMemoryStore();
    await aStoredThree(tokens);
    tokens.failOrphanWrites = 2; // A's first two attempts meet a Redis that is not back yet
    const b = wipeAndStartB(tokens, [{ getMores: [[insert(9)]] }, { getMores: [[insert(4)]] }]);
    await eventually('B handled 9 and saved it', () => b.seen.includes(9) && saved(tokens, 9));
    await eventually('B restarted from what A left', () => b.server.opens.length === 2, 10_000);
    expect(b.server.opens[1].resumeAfter).toEqual(token(3));
    await eventually(
      'B handled 4, and what A left is removed',
      () => b.seen.includes(4) && tokens.orphans.size === 0,
    );
    expect(tokens.failOrphanWrites).toBe(0);
  });

  it('keeps the position left until the holder stored it, and does not reload it meanwhile', async () => {
    const tokens = new FencedMemoryStore();
    tokens.orphans.set(KEY, positionOf(3));
    tokens.failSaves = true;
    const b = setup({
      tokens,
      leases: { instanceId: 'B' },
      scripts: [{ getMores: [[insert(4)]] }],
    });
    b.stream.start();
    await eventually('B opened after what was left', () => b.server.opens.length === 1);
    expect(b.server.opens[0].resumeAfter).toEqual(token(3));
    await eventually('B tried to store it', () =>
      logs.messages('warn').some((m) => m.includes('Saving the position of')),
    );
    expect(tokens.orphans.get(KEY)).toEqual(positionOf(3));
    tokens.failSaves = false;
    // Stored at or after it (here 4, handled meanwhile), then removed.
    await eventually('stored, then removed', () => saved(tokens, 4) && tokens.orphans.size === 0);
    expect(tokens.saves.map((s) => s.position)).toEqual([positionOf(4)]);
    expect(b.server.opens).toHaveLength(1);
  });

  it('the position left beats an older one this instance remembers from its own earlier tenure', async () => {
    const tokens = new FencedMemoryStore();
    const c = setup({
      tokens,
      leases: { instanceId: 'C' },
      scripts: [{ getMores: [[insert(1)]] }, { getMores: [[insert(6)]] }],
    });
    c.stream.start();
    await eventually('C handled 1 and saved', () => c.seen.includes(1) && saved(tokens, 1));
    const a = tokens.leases.steal(KEY, 'A');
    await eventually('C stands by', () => c.stream.status().role === 'standby');
    await tokens.save(KEY, positionOf(5), a); // A read on to 5
    tokens.wipe();
    void tokens.leaveOrphan(KEY, positionOf(5), a, true); // A noticed (in the same turn, before C polls)
    await eventually('C is active again and handled 6', () => c.seen.includes(6));
    expect(c.server.opens.map((o) => o.resumeAfter)).toEqual([undefined, token(5)]);
  });

  it('a shutdown cuts the retries short with one last attempt, so the position is still left', async () => {
    const tokens = new FencedMemoryStore();
    const a = await aStoredThree(tokens);
    tokens.failOrphanWrites = 1;
    const b = wipeAndStartB(tokens, [{ getMores: [[insert(9)]] }, { getMores: [[insert(4)]] }]);
    await eventually(
      'A lost its lease and its first attempt failed',
      () => tokens.failOrphanWrites === 0,
    );
    await a.stream.stop(1000); // well before its next retry (500 ms and more)
    expect(tokens.orphans.get(KEY) ?? tokens.usedOrphans.has(KEY)).toBeTruthy();
    await eventually('B resumed from what A left', () => b.seen.includes(4));
    expect(b.server.opens.at(-1)!.resumeAfter).toEqual(token(3));
  });

  it('if that last attempt fails too, the position is logged with what to do, not dropped silently', async () => {
    const tokens = new FencedMemoryStore();
    const a = await aStoredThree(tokens);
    tokens.failOrphanWrites = 100;
    wipeAndStartB(tokens, [{ getMores: [[insert(9)]] }]); // B's acquisition is what takes A's lease
    await eventually(
      'A lost its lease and its first attempt failed',
      () => tokens.failOrphanWrites < 100,
    );
    await a.stream.stop(1000);
    const warning = logs
      .messages('warn')
      .find((m) => m.includes('could not check for lost data after losing the lease'));
    expect(warning).toContain(
      `run: SET ${KEY}:orphan '{"v":{"$numberInt":"2"},"token":{"_data":"t3"},"savedAt":`,
    );
  });

  it('a last attempt that gets no answer within the shutdown timeout is reported too, once', async () => {
    const tokens = new FencedMemoryStore();
    const a = await aStoredThree(tokens);
    tokens.hangOrphanWrites = true; // an app-supplied client that holds commands while Redis is away
    wipeAndStartB(tokens, [{ getMores: [[insert(9)]] }]);
    await eventually('A lost its lease and asked', () => tokens.orphanAttempts > 0);
    await a.stream.stop(300);
    const warnings = logs
      .messages('warn')
      .filter((m) => m.includes('could not check for lost data after losing the lease'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('(no answer within shutdownTimeoutMs (300 ms))');
  });

  it('a normal takeover leaves no position behind', async () => {
    const tokens = new FencedMemoryStore();
    const a = setup({
      tokens,
      leases: { instanceId: 'A' },
      scripts: [{ getMores: [[insert(1), insert(2)]] }],
    });
    a.stream.start();
    await eventually('A handled 2 and saved', () => a.seen.length === 2 && saved(tokens, 2));
    tokens.leases.steal(KEY, 'B');
    await eventually('A checked whether the store lost data', () => tokens.orphanChecks === 1);
    expect(tokens.orphans.size).toBe(0);
    expect(logs.messages('warn').filter((m) => m.includes('left the position it reached'))).toEqual(
      [],
    );
  });
});
