import { afterEach, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import type { ChangeStreamEvent } from '../../lib/change-stream.events.js';
import { resolveOptions } from '../../lib/change-stream.options.js';
import { Checkpointer } from '../../lib/checkpoint/checkpointer.js';
import { InMemoryDeadLetterStore, InMemoryResumeTokenStore, type ChangeStreamModuleOptions } from '../../lib/index.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { CollectionStream } from '../../lib/stream/collection-stream.js';
import { planStreams } from '../../lib/stream/stream-plan.js';
import { insert, invalidate, ScriptedCursor, ScriptedServer, serverError } from '../fixtures/scripted-cursor.js';
import { eventually } from '../fixtures/test-env.js';

Logger.overrideLogger(false);
const KEY = 'cs:svc:db:orders';

/** A stream over a scripted server, with a handler that records document ids. */
function setup(cursors: ScriptedCursor[], options: Partial<ChangeStreamModuleOptions> = {}, handle?: (id: number) => void) {
  const seen: number[] = [];
  const handler: ChangeHandler = {
    name: 'Listener.onOrder',
    collection: 'orders',
    connectionName: 'default',
    options: {},
    invoke: (change) => {
      const id = (change as { documentKey?: { _id: number } }).documentKey?._id ?? -1;
      handle?.(id);
      seen.push(id);
    },
  };
  const resolved = resolveOptions({ consumer: 'svc', checkpoint: { maxEvents: 1, intervalMs: 10 }, reconnect: { initialDelayMs: 1, maxDelayMs: 5 }, handlerRetry: { retries: 0 }, maxAwaitTimeMS: 10, ...options });
  const tokens = new InMemoryResumeTokenStore();
  const deadLetters = new InMemoryDeadLetterStore();
  const server = new ScriptedServer(cursors);
  const events: ChangeStreamEvent[] = [];
  const stream = new CollectionStream({
    plan: planStreams([handler])[0],
    database: 'db',
    deadLetters,
    checkpointer: new Checkpointer(tokens, KEY, resolved.checkpoint),
    options: resolved,
    openCursor: server.factory,
    emit: (e) => events.push(e),
  });
  streams.push(stream);
  return { stream, seen, tokens, deadLetters, server, events };
}
const streams: CollectionStream[] = [];
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.stop(1000)));
});

describe('CollectionStream against a scripted server', () => {
  it('reopens from the last acknowledged event when the server closes the cursor without an error', async () => {
    const { stream, seen, server } = setup([new ScriptedCursor([insert(1), insert(2), 'closed']), new ScriptedCursor([insert(3)])]);
    stream.start();
    await eventually('3 handled', () => seen.length === 3);
    expect(seen).toEqual([1, 2, 3]);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([null, { _data: 't2' }]);
  });

  it('reopens after a network error, showing reconnecting meanwhile', async () => {
    const { stream, seen, server, events } = setup([
      new ScriptedCursor([insert(1), { error: Object.assign(new Error('connection reset'), { name: 'MongoNetworkError' }) }]),
      new ScriptedCursor([insert(2)]),
    ]);
    stream.start();
    await eventually('2 handled', () => seen.length === 2);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([null, { _data: 't1' }]);
    expect(events.filter((e) => e.type === 'state').map((e) => e.type === 'state' && e.state)).toEqual(['open', 'reconnecting', 'open']);
  });

  it('history lost (286) with the default policy: failed, stored token kept, never reopened', async () => {
    const { stream, tokens, server, events } = setup([new ScriptedCursor([{ error: serverError(286, 'Resume of change stream was not possible') }])]);
    await tokens.save(KEY, { _data: 'old' });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(stream.status().lastError).toContain('no longer in the oplog');
    expect(server.opens).toHaveLength(1);
    expect(await tokens.load(KEY)).toEqual({ _data: 'old' });
    expect(events.find((e) => e.type === 'history-lost')).toMatchObject({ action: 'fail', position: { _data: 'old' } });
  });

  it('history lost with restart-from-now: logs the gap, emits an event and reads on from now', async () => {
    const { stream, seen, tokens, server, events } = setup(
      [new ScriptedCursor([{ error: serverError(286, 'history lost') }]), new ScriptedCursor([insert(7)])],
      { onHistoryLost: 'restart-from-now' },
    );
    await tokens.save(KEY, { _data: 'old' });
    stream.start();
    await eventually('7 handled', () => seen.length === 1);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([{ _data: 'old' }, null]);
    expect(events.find((e) => e.type === 'history-lost')).toMatchObject({ action: 'restart-from-now', collection: 'orders' });
    await eventually('new position stored', async () => JSON.stringify(await tokens.load(KEY)) === JSON.stringify({ _data: 't7' }));
  });

  it('a callback decides: here it resyncs, then restarts from now', async () => {
    const decisions: string[] = [];
    const { stream, seen, tokens } = setup([new ScriptedCursor([{ error: serverError(260, 'Invalid resume token') }]), new ScriptedCursor([insert(1)])], {
      onHistoryLost: async (lost) => {
        decisions.push(lost.reason);
        return 'restart-from-now' as const;
      },
    });
    await tokens.save(KEY, { _data: 'old' });
    stream.start();
    await eventually('handled after restart', () => seen.length === 1);
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toContain('Invalid resume token');
  });

  it('does not treat a server error as history lost when no position was used', async () => {
    const { stream, seen, server } = setup([new ScriptedCursor([{ error: serverError(undefined, 'odd') }]), new ScriptedCursor([insert(1)])]);
    stream.start();
    await eventually('handled', () => seen.length === 1);
    expect(server.opens).toHaveLength(2);
    expect(stream.status().state).toBe('open');
  });

  it('after an invalidate event, reopens with startAfter and does not store the invalidate token', async () => {
    const { stream, seen, server, tokens } = setup([new ScriptedCursor([insert(1), invalidate(2)]), new ScriptedCursor([insert(3)])]);
    stream.start();
    await eventually('3 handled', () => seen.includes(3));
    expect(seen).toEqual([1, -1, 3]);
    expect(server.opens[1]).toMatchObject({ startAfter: { _data: 't2' } });
    expect(server.opens[1].resumeAfter).toBeUndefined();
    expect(stream.status().lastInvalidatedAt).toBeInstanceOf(Date);
    await eventually('t3 stored', async () => JSON.stringify(await tokens.load(KEY)) === JSON.stringify({ _data: 't3' }));
  });

  it('waits for an unreachable store at startup instead of starting from now', async () => {
    const { stream, seen, tokens, server } = setup([new ScriptedCursor([insert(2)])]);
    await tokens.save(KEY, { _data: 't1' });
    const load = tokens.load.bind(tokens);
    let failures = 3;
    tokens.load = async (key) => {
      if (failures-- > 0) throw new Error('connect ECONNREFUSED');
      return load(key);
    };
    stream.start();
    await eventually('handled', () => seen.length === 1);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([{ _data: 't1' }]);
  });

  it('stores the post-batch token at first open and refreshes it while idle', async () => {
    const { stream, tokens } = setup([new ScriptedCursor([null, null], { _data: 'pbrt' })]);
    stream.start();
    await stream.whenSettled();
    expect(await tokens.load(KEY)).toEqual({ _data: 'pbrt' });
  });

  it('dead-letters a failing event and moves on, acknowledging past it', async () => {
    const { stream, seen, deadLetters, tokens, events } = setup([new ScriptedCursor([insert(1), insert(2), insert(3)])], { onHandlerFailure: 'dead-letter' }, (id) => {
      if (id === 2) throw new Error('bad order 2');
    });
    stream.start();
    await eventually('3 handled', () => seen.includes(3));
    const [letter] = await deadLetters.list();
    expect(letter).toMatchObject({ handler: 'Listener.onOrder', streamKey: KEY, attempts: 1, error: { message: 'bad order 2' } });
    expect((letter.change as { documentKey: { _id: number } }).documentKey._id).toBe(2);
    expect(events.some((e) => e.type === 'dead-lettered' && e.id === letter.id)).toBe(true);
    await eventually('t3 stored', async () => JSON.stringify(await tokens.load(KEY)) === JSON.stringify({ _data: 't3' }));
  });

  it('pauses reading once maxUnsavedEvents are unsaved, shows degraded, and catches up when the store is back', async () => {
    const { stream, seen, tokens, events } = setup([new ScriptedCursor([1, 2, 3, 4, 5, 6].map(insert))], { checkpoint: { maxEvents: 1, intervalMs: 10, maxUnsavedEvents: 3 } });
    const save = tokens.save.bind(tokens);
    let storeUp = false;
    tokens.save = async (key, token) => {
      if (!storeUp) throw new Error('store down');
      return save(key, token);
    };
    stream.start();
    await eventually('three handled', () => seen.length === 3);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([1, 2, 3]);
    expect(stream.status()).toMatchObject({ state: 'degraded', unsavedEvents: 3 });
    storeUp = true;
    await eventually('all handled', () => seen.length === 6, 5000);
    await eventually('t6 stored', async () => JSON.stringify(await tokens.load(KEY)) === JSON.stringify({ _data: 't6' }), 5000);
    expect(stream.status().state).toBe('open');
    expect(events.flatMap((e) => (e.type === 'state' ? [e.state] : []))).toEqual(['open', 'degraded', 'open']);
  });
});
