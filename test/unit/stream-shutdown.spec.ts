import { afterEach, describe, expect, it } from '@jest/globals';
import { InMemoryPositionStore } from '../../lib/memory/in-memory-position.store.js';
import { decodePosition } from '../../lib/position/position.codec.js';
import { insert, token } from '../fixtures/fake-change-stream.js';
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

/** Long enough that a lease stays this instance's through a Redis outage for the whole spec (renewals unconfirmed, not refused). */
const LONG_TTL = { ttlMs: 30_000, renewIntervalMs: 100, pollIntervalMs: 20 };

/** Redis goes away: saves, renewals and the orphan check fail with a connection error. Returns its way back. */
function takeRedisAway(tokens: FencedMemoryStore): () => void {
  tokens.failSaves = true;
  tokens.failOrphanWrites = Number.MAX_SAFE_INTEGER;
  const renew = tokens.leases.renew;
  tokens.leases.renew = async () => {
    throw new Error('ECONNREFUSED (test)');
  };
  return () => {
    tokens.failSaves = false;
    tokens.failOrphanWrites = 0;
    tokens.leases.renew = renew;
  };
}

describe('CollectionStream shutdown', () => {
  it('a read the server never answers does not hold shutdown: with nothing in flight, the lease is released at once', async () => {
    const tokens = new FencedMemoryStore();
    const never = new Promise(() => undefined);
    const { stream, seen } = setup({
      tokens,
      leases: {},
      scripts: [{ getMores: [[insert(1)], { after: never }] }],
    });
    stream.start();
    await eventually(
      '1 handled and saved',
      () =>
        seen.length === 1 &&
        tokens.saves.some((s) => JSON.stringify(s.position) === JSON.stringify(positionOf(1))),
    );
    await stream.stop(5_000);
    expect(logs.messages('warn').filter((m) => m.includes('did not finish within'))).toEqual([]);
    expect(tokens.leases.current(KEY)).toBeUndefined(); // released: the next instance takes over now, not after a TTL
    expect(stream.status().state).toBe('closed');
    expect(
      logs.messages('log').some((m) => m.includes('drained and closed; its position is stored')),
    ).toBe(true);
  });

  it('a stream that failed before it read its stored position says the position stays, not that it has none', async () => {
    const tokens = new InMemoryPositionStore();
    (tokens as unknown as { values: Map<string, string> }).values.set(KEY, 'not a position');
    const { stream } = setup({ tokens, scripts: [{ getMores: [] }] });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    await stream.stop(5_000);
    expect(logs.messages('log').filter((m) => m.startsWith(`Stream ${KEY} `))).toContainEqual(
      `Stream ${KEY} closed before it read its stored position; what the store holds stays as it is.`,
    );
    expect(tokens.raw(KEY)).toBe('not a position');
  });

  it('a stream stopped while its stored position cannot be read (store down) says the position stays', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf(5));
    const stored = tokens.raw(KEY);
    tokens.load = async () => {
      throw new Error('ECONNREFUSED (test)');
    };
    const { stream } = setup({ tokens, scripts: [{ getMores: [] }] });
    stream.start();
    await eventually('reconnecting', () => stream.status().state === 'reconnecting');
    await stream.stop(5_000);
    expect(logs.messages('log').filter((m) => m.startsWith(`Stream ${KEY} `))).toContainEqual(
      `Stream ${KEY} closed before it read its stored position; what the store holds stays as it is.`,
    );
    expect(tokens.raw(KEY)).toBe(stored);
  });

  it('a stream that read events and failed on one, with no start position from the server, says it has no position yet', async () => {
    const { stream } = setup({
      scripts: [{ getMores: [[insert(1)]] }],
      handle: () => {
        throw new Error('boom');
      },
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    await stream.stop(5_000);
    expect(logs.messages('log').filter((m) => m.startsWith(`Stream ${KEY} `))).toContainEqual(
      `Stream ${KEY} closed; it has no position yet (no event handled, and the server gave no start position).`,
    );
  });

  it('a final save that cannot reach Redis logs the position reached with the command that restores it, and following it loses nothing', async () => {
    const tokens = new FencedMemoryStore();
    const gate = deferred();
    const first = setup({
      tokens,
      leases: { timing: LONG_TTL },
      scripts: [{ getMores: [[insert(1)], { after: gate.promise }, [insert(2), insert(3)]] }],
    });
    first.stream.start();
    await eventually('1 saved', () =>
      tokens.saves.some((s) => JSON.stringify(s.position) === JSON.stringify(positionOf(1))),
    );
    const bringRedisBack = takeRedisAway(tokens);
    gate.resolve();
    await eventually('2 and 3 handled', () => first.seen.length === 3);
    await first.stream.stop(3_000);

    const warning = logs
      .messages('warn')
      .find((m) => m.includes('the final position could not be stored'));
    expect(warning).toBeDefined();
    expect(warning).not.toMatch(/^[^.]*will be delivered again on the next start\.$/); // no unconditional promise of a redelivery
    const restore = /SET (\S+):orphan '(.+)' EX 3600/.exec(warning!);
    expect(restore?.[1]).toBe(KEY);
    expect(decodePosition(KEY, restore![2])).toEqual(positionOf(3));

    // Redis comes back empty; the operator runs the command; the next instance resumes after event 3.
    tokens.wipe();
    bringRedisBack();
    tokens.orphans.set(restore![1], decodePosition(KEY, restore![2]));
    const next = setup({
      tokens,
      leases: { instanceId: 'B' },
      scripts: [{ getMores: [[insert(4)]] }],
    });
    next.stream.start();
    await eventually('4 handled by the next instance', () => next.seen.includes(4));
    expect(next.server.opens[0].resumeAfter).toEqual(token(3));
  });

  it('a final save that cannot reach Redis tries once more to leave the position for the next holder (Redis back, empty)', async () => {
    const tokens = new FencedMemoryStore();
    const gate = deferred();
    const first = setup({
      tokens,
      leases: { timing: LONG_TTL },
      scripts: [{ getMores: [[insert(1)], { after: gate.promise }, [insert(2)]] }],
    });
    first.stream.start();
    await eventually('1 saved', () => tokens.saves.length > 0);
    takeRedisAway(tokens);
    gate.resolve();
    await eventually('2 handled', () => first.seen.length === 2);
    tokens.wipe(); // Redis restarted empty, and answers the last attempt (saves still fail: a slow client reconnecting)
    tokens.failOrphanWrites = 0;
    await first.stream.stop(3_000);
    expect(await tokens.loadOrphan(KEY)).toEqual(positionOf(2));
    expect(logs.messages('warn').some((m) => m.includes('left the position it reached'))).toBe(
      true,
    );
  });

  it('says what it waits for when a step takes more than a moment: the final save, the lease release', async () => {
    const tokens = new FencedMemoryStore();
    const gate = deferred();
    const { stream, seen } = setup({
      tokens,
      leases: {},
      options: { checkpoint: { maxEvents: 100, intervalMs: 60_000 } },
      scripts: [{ getMores: [[insert(1)], { after: gate.promise }] }],
    });
    stream.start();
    await eventually('1 handled', () => seen.length === 1);
    const save = tokens.save.bind(tokens);
    const saveAnswers = deferred();
    tokens.save = async (...args) => {
      await saveAnswers.promise;
      return save(...args);
    };
    const release = tokens.leases.release.bind(tokens.leases);
    const releaseAnswers = deferred();
    tokens.leases.release = async (...args) => {
      await releaseAnswers.promise;
      return release(...args);
    };
    const stopped = stream.stop(60_000);
    await eventually('says it waits for the save', () =>
      logs
        .messages('log')
        .some((m) =>
          m.includes(`Stream ${KEY}: shutdown is waiting for the final save of the position`),
        ),
    );
    saveAnswers.resolve();
    await eventually('says it waits for the release', () =>
      logs
        .messages('log')
        .some((m) => m.includes(`Stream ${KEY}: shutdown is waiting for the release of the lease`)),
    );
    releaseAnswers.resolve();
    await stopped;
    expect(tokens.saves.at(-1)).toEqual({ position: positionOf(1), fence: 1 });
    expect(tokens.leases.current(KEY)).toBeUndefined();
  });
});
