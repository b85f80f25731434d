import { afterEach, describe, expect, it } from '@jest/globals';
import { ChangeStreamConfigError } from '../../lib/change-stream.errors.js';
import { disabledOf, disabledParts, disabledStatus } from '../../lib/control/disabled-streams.js';
import type { KeyedPlan } from '../../lib/change-stream.planning.js';
import { decodePauseFlag, encodePauseFlag } from '../../lib/stream/pause-flag.js';
import { resolveOptions } from '../../lib/options/module-options.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { planStreams } from '../../lib/stream/stream-plan.js';
import type { OnChangeOptions } from '../../lib/index.js';
import { insert, token } from '../fixtures/fake-change-stream.js';
import { FencedMemoryStore, MemoryLeaseStore } from '../fixtures/memory-lease-store.js';
import { LeaseBalancer } from '../../lib/lease/lease-balancer.js';
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

const handler = (name: string, options: OnChangeOptions, collection = 'orders'): ChangeHandler => ({
  name,
  collection,
  connectionName: 'default',
  options,
  invoke: () => undefined,
});

describe('enabled', () => {
  it('is on by default and must be a boolean, at module and handler level', () => {
    expect(resolveOptions({ consumer: 'c' }).enabled).toBe(true);
    expect(resolveOptions({ consumer: 'c', enabled: false }).enabled).toBe(false);
    expect(() => resolveOptions({ consumer: 'c', enabled: 'no' as never })).toThrow(
      'option "enabled" is "no"; expected true or false',
    );
    expect(() => planStreams([handler('A.on', { enabled: 0 as never })])).toThrow(
      ChangeStreamConfigError,
    );
    expect(() => planStreams([handler('A.on', { enabled: 0 as never })])).toThrow(/enabled/);
  });

  it('a disabled handler is validated but left out: the filter is what the others make it; an all-disabled stream is not planned', () => {
    const plans = planStreams([
      handler('A.onInsert', { operationTypes: ['insert'] }),
      handler('A.onAll', { enabled: false }),
      handler('A.onPayment', { enabled: false }, 'payments'),
    ]);
    expect(plans).toHaveLength(1);
    expect(plans[0].handlers.map((h) => h.name)).toEqual(['A.onInsert']);
    // With A.onAll in the plan, the stream would carry every operation type (no $match).
    expect(plans[0].pipeline).toEqual(
      planStreams([handler('A.onInsert', { operationTypes: ['insert'] })])[0].pipeline,
    );
    expect(plans[0].pipeline).not.toEqual([]);
    // Bad options fail startup even on a disabled handler.
    expect(() => planStreams([handler('A.bad', { enabled: false, retries: -1 })])).toThrow(
      /retries/,
    );
  });

  it('names the disabled handlers of each stream, and a plan (for its key and status) of the streams left without any', () => {
    const handlers = [
      handler('A.onInsert', {}),
      handler('A.onAll', { enabled: false }),
      handler('A.onPayment', { enabled: false }, 'payments'),
    ];
    const parts = disabledParts(handlers, planStreams(handlers));
    expect(parts.handlers).toEqual(['A.onAll', 'A.onPayment']);
    expect(parts.idlePlans.map((p) => p.collection)).toEqual(['payments']);
    expect([...parts.byStream.values()].map((group) => group.map((h) => h.name))).toEqual([
      ['A.onAll'],
      ['A.onPayment'],
    ]);
  });

  it('shows a stream whose handlers are all disabled with those handlers and their disabled state, not as a stream without handlers', () => {
    const handlers = [
      handler('A.onInsert', {}),
      handler('A.onPayment', { enabled: false }, 'payments'),
      handler('A.onRefund', { enabled: false }, 'payments'),
    ];
    const parts = disabledParts(handlers, planStreams(handlers));
    const [plan] = parts.idlePlans;
    const status = disabledStatus(
      { plan, database: 'db', key: 'cs:{svc:db:payments}' } as KeyedPlan,
      disabledOf(parts.byStream, plan),
    );
    expect(status).toMatchObject({
      state: 'disabled',
      handlers: ['A.onPayment', 'A.onRefund'],
      disabledHandlers: ['A.onPayment', 'A.onRefund'],
    });
  });
});

describe('pause key value', () => {
  it("round-trips what ChangeStreamControl writes, and takes an operator's plain text as the reason", () => {
    const since = new Date('2026-01-02T03:04:05.000Z');
    expect(decodePauseFlag(encodePauseFlag({ by: 'ops', reason: 'incident 7', since }))).toEqual({
      scope: 'fleet',
      by: 'ops',
      reason: 'incident 7',
      since,
    });
    expect(decodePauseFlag('incident 7')).toEqual({
      scope: 'fleet',
      by: null,
      reason: 'incident 7',
      since: null,
    });
    expect(decodePauseFlag('1')).toEqual({ scope: 'fleet', by: null, reason: '1', since: null });
    expect(decodePauseFlag('{"since":"not a date"}').since).toBeNull();
  });
});

describe('CollectionStream: pause and resume on one instance', () => {
  it('drains the running handler, saves its position, reads nothing until resumed, then resumes after it (each event once)', async () => {
    const first = deferred();
    const { stream, seen, tokens, server } = setup({
      options: { checkpoint: { maxEvents: 100, intervalMs: 60_000 } },
      scripts: [{ getMores: [[insert(1)], [insert(2)]] }, { getMores: [[insert(2), insert(3)]] }],
      handle: (id) => (id === 1 ? first.promise : undefined),
    });
    stream.start();
    await eventually('event 1 running', () => stream.status().inFlightEvents === 1);
    let pausedDone = false;
    const paused = stream
      .pause({ by: 'test', reason: 'maintenance', since: null })
      .then(() => (pausedDone = true));
    await eventually('paused waits for the handler', () =>
      logs.messages('log').some((m) => m.includes('paused on this instance by test (maintenance)')),
    );
    expect(pausedDone).toBe(false);
    first.resolve();
    await paused;
    expect(stream.status()).toMatchObject({
      state: 'paused',
      paused: { scope: 'local', by: 'test', reason: 'maintenance' },
      inFlightEvents: 0,
    });
    expect(await tokens.load(KEY)).toEqual(positionOf(1)); // saved by the pause, not by the checkpoint policy
    expect(seen).toEqual([1]); // event 2 of the first cursor was not dispatched
    expect(server.opens).toHaveLength(1);
    expect(stream.resume()).toBe(true);
    await eventually('2 and 3 handled', () => seen.length === 3);
    expect(seen).toEqual([1, 2, 3]);
    expect(server.opens[1]).toMatchObject({ resumeAfter: token(1) });
    expect(stream.status().state).toBe('open');
    expect(stream.status().paused).toBeUndefined();
  });

  it('with no position yet (a server that gives none at open), pauses only after the first handled event, so nothing written during the pause is skipped', async () => {
    const gate = deferred();
    const { stream, seen, tokens } = setup({
      scripts: [{ getMores: [{ after: gate.promise }, [insert(1)], [insert(2)]] }, {}],
    });
    stream.start();
    await eventually('open', () => stream.status().state === 'open');
    const paused = stream.pause({ by: null, reason: null, since: null });
    await eventually('deferral said', () =>
      logs.messages('warn').some((m) => m.includes('no position to resume from yet')),
    );
    expect(stream.status().state).toBe('open');
    gate.resolve();
    await paused;
    expect(stream.status().state).toBe('paused');
    expect(seen).toEqual([1]);
    expect(await tokens.load(KEY)).toEqual(positionOf(1));
  });
});

describe('CollectionStream: pause of a stream that cannot get there', () => {
  it('a failed stream: pause() resolves (no wait for a pause that never comes), and it shows failed', async () => {
    const { stream } = setup({
      scripts: [{ getMores: [[insert(1)]] }],
      handle: () => {
        throw new Error('poison');
      },
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    await stream.pause({ by: null, reason: null, since: null });
    expect(stream.status().state).toBe('failed');
  });
});

describe('LeaseBalancer: a stream paused on this instance', () => {
  it('leaves its candidates at once, so another instance already at its share may take it; resumed, it counts again', async () => {
    const store = new MemoryLeaseStore();
    const timing = { ttlMs: 60_000, renewIntervalMs: 60_000, pollIntervalMs: 60_000 };
    const [k1, k2] = ['cs:{svc:db:a}', 'cs:{svc:db:b}'];
    const a = new LeaseBalancer(store, 'A', timing, [k1, k2], () => false);
    const b = new LeaseBalancer(store, 'B', timing, [k1, k2], () => false);
    await a.start();
    await b.start();
    await a.refresh(k1);
    await a.refresh(k2);
    expect([a.fairShare, b.fairShare]).toEqual([1, 1]);
    b.acquired(k2);
    expect(b.reserve(k1)).toBe(false); // at its share: A is there for k1
    a.withdraw(k1);
    await eventually('B sees A gone from k1', async () => (await b.refresh(k1)) && b.reserve(k1));
    expect(a.fairShare).toBe(1); // k2 only
    b.unreserve(k1);
    a.rejoin(k1);
    await eventually('B sees A back for k1', async () => (await b.refresh(k1)) && !b.reserve(k1));
    await Promise.all([a.stop(), b.stop()]);
  });
});

describe('CollectionStream: pause with leases', () => {
  it('a local pause releases the lease for another instance and takes none until resumed', async () => {
    const tokens = new FencedMemoryStore();
    const a = setup({
      tokens,
      leases: { instanceId: 'A' },
      scripts: [{ getMores: [[insert(1)]] }, {}],
    });
    a.stream.start();
    await eventually('A handled 1', () => a.seen.length === 1);
    const b = setup({
      tokens,
      leases: { instanceId: 'B' },
      scripts: [{ getMores: [[insert(2)]] }],
    });
    b.stream.start();
    await eventually('B stands by', () => b.stream.status().state === 'standby');
    await a.stream.pause({ by: 'A', reason: null, since: null });
    expect(a.stream.status()).toMatchObject({ state: 'paused', role: 'standby' });
    expect(tokens.saves.at(-1)).toEqual({ position: positionOf(1), fence: 1 });
    await eventually('B took over', () => b.stream.status().role === 'active');
    expect(tokens.leases.current(KEY)).toEqual({ holder: 'B', fence: 2 });
    await eventually('B handled 2', () => b.seen.length === 1);
    a.stream.resume();
    await eventually('A stands by again', () => a.stream.status().state === 'standby');
    expect(a.stream.status().holder).toBe('B');
  });

  it('the fleet-wide pause key stops the holder at its next renewal and keeps every standby out until it is deleted', async () => {
    const tokens = new FencedMemoryStore();
    const running = deferred();
    const a = setup({
      tokens,
      leases: { instanceId: 'A' },
      options: { checkpoint: { maxEvents: 100, intervalMs: 60_000 } },
      scripts: [{ getMores: [[insert(1)], [insert(2)]] }, { getMores: [[insert(2), insert(3)]] }],
      handle: (id) => (id === 1 ? running.promise : undefined),
    });
    const b = setup({
      tokens,
      leases: { instanceId: 'B' },
      scripts: [{ getMores: [[insert(2), insert(3)]] }],
    });
    a.stream.start();
    await eventually('A runs 1', () => a.stream.status().inFlightEvents === 1);
    b.stream.start();
    await eventually('B stands by', () => b.stream.status().state === 'standby');
    await tokens.leases.writePause(KEY, 'incident 7');
    // Both learn it from the store (A with its renewal, B with its next attempt); A first drains.
    await eventually('B paused', () => b.stream.status().state === 'paused');
    await eventually('A saw it with a renewal', () => a.stream.pauses.fleet !== null);
    expect(a.stream.status().state).not.toBe('paused'); // still draining event 1
    running.resolve();
    await eventually('A paused', () => a.stream.status().state === 'paused');
    expect(a.stream.status().paused).toEqual({
      scope: 'fleet',
      by: null,
      reason: 'incident 7',
      since: null,
    });
    expect(b.stream.status().paused).toMatchObject({ scope: 'fleet', reason: 'incident 7' });
    expect(tokens.saves.at(-1)).toEqual({ position: positionOf(1), fence: 1 });
    expect(tokens.leases.current(KEY)).toBeUndefined();
    await tokens.leases.writePause(KEY, null);
    await eventually('someone holds it again', () => tokens.leases.current(KEY) !== undefined);
    // Fence 2: nobody acquired the stream while it was paused.
    expect(tokens.leases.current(KEY)!.fence).toBe(2);
    await eventually('3 handled', () => a.seen.includes(3) || b.seen.includes(3));
    // Event 2 (read, never dispatched before the pause) is handled after it, once.
    expect([...a.seen, ...b.seen].sort()).toEqual([1, 2, 3]);
  });
});

describe('CollectionStream: pause and resume while Redis is unreachable', () => {
  it('says no lease was held (nothing to release), and resume() takes it out of paused: reconnecting, as the lease attempts say', async () => {
    const tokens = new FencedMemoryStore();
    let answer = true;
    tokens.leases.acquire = async () => {
      // Refused at once, then (commands queued while Redis is away) no answer at all.
      if (!answer) await new Promise(() => undefined);
      throw new Error('Redis is not reachable');
    };
    const timing = { ttlMs: 60_000, renewIntervalMs: 100, pollIntervalMs: 20 };
    const { stream } = setup({ tokens, leases: { timing }, scripts: [] });
    stream.start();
    await eventually('reconnecting', () => stream.status().state === 'reconnecting');
    answer = false;
    await stream.pause({ by: 'ops', reason: 'incident', since: null });
    expect(stream.status()).toMatchObject({ state: 'paused', paused: { scope: 'local' } });
    const line = logs.messages('log').find((m) => m.includes('paused on this instance by ops'));
    expect(line).toBe(
      `Stream ${KEY} paused on this instance by ops (incident): it holds no lease (waiting for one), so there is nothing to drain, save or release; it takes no lease until resumed.`,
    );
    expect(stream.resume()).toBe(true);
    // The next lease attempt never answers: the state is what the last one said.
    await eventually('out of paused', () => stream.status().state !== 'paused');
    expect(stream.status().state).toBe('reconnecting');
    expect(stream.status().paused).toBeUndefined();
    expect(stream.status().lastError).toContain('Redis is not reachable');
  });
});
