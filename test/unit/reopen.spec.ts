import { afterEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { InMemoryPositionStore } from '../../lib/index.js';
import { insert, serverError } from '../fixtures/fake-change-stream.js';
import { deferred, KEY, logs, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

const attempts = () =>
  logs
    .messages('warn')
    .flatMap((m) => /broke .*\(attempt (\d+)\)\.$/.exec(m)?.[1] ?? [])
    .map(Number);

describe('Reopening: an error on the first read after every open', () => {
  it('backs off: the attempt grows across opens and status counts the identical failures, both reset once the stream reads', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, { token: { _data: 'old' } });
    const repeated = () => ({
      getMores: [{ error: serverError(2, 'BadValue: the same failure') }],
    });
    const counts: number[] = [];
    const { stream, seen } = setup({
      tokens,
      options: { reconnect: { initialDelayMs: 1, maxDelayMs: 5 } },
      scripts: [repeated(), repeated(), repeated(), repeated(), { getMores: [[insert(1)]] }],
      handle: () => void counts.push(stream.status().consecutiveFailures),
    });
    stream.start();
    await eventually('event 1 handled after four failed opens', () => seen.length === 1);
    expect(attempts()).toEqual([1, 2, 3, 4]);
    // When event 1 runs, the open that read it has reset the count.
    expect(counts).toEqual([0]);
    expect(
      logs.messages('warn').filter((m) => m.includes('BadValue: the same failure')),
    ).toHaveLength(4);
  });

  it('counts consecutive identical failures in status while they go on', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, { token: { _data: 'old' } });
    const repeated = () => ({
      getMores: [{ error: serverError(2, 'BadValue: the same failure') }],
    });
    const quiet = deferred();
    const { stream } = setup({
      tokens,
      options: { reconnect: { initialDelayMs: 1, maxDelayMs: 5 } },
      // The last open succeeds but its first read waits: no progress yet, so the count stays.
      scripts: [
        repeated(),
        { getMores: [{ error: serverError(2, 'another failure') }] },
        repeated(),
        repeated(),
        repeated(),
        { aggregate: { error: serverError(2, 'BadValue: the same failure') } },
        { getMores: [{ after: quiet.promise }] },
      ],
    });
    stream.start();
    await eventually(
      'six failures, the last four identical',
      () => attempts().length === 6 && stream.status().state === 'open',
    );
    expect(stream.status().consecutiveFailures).toBe(4);
    expect(stream.status().lastError).toBeNull();
    quiet.resolve();
    await eventually(
      'reset once the first read answered',
      () => stream.status().consecutiveFailures === 0,
    );
  });

  it('history lost reported by the first getMore after an open is judged as at the open: the policy runs, no reopen loop', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, { token: { _data: 'old' } });
    const { stream, server, events } = setup({
      tokens,
      scripts: [
        { getMores: [{ error: serverError(286, 'Resume of change stream was not possible') }] },
        { getMores: [[insert(1)]] },
      ],
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(server.opens).toHaveLength(1);
    expect(events.find((e) => e.type === 'history-lost')).toMatchObject({
      action: 'fail',
      position: { token: { _data: 'old' } },
    });
  });
});

describe('Reopening: the server does not find the stored token (its pipeline changed)', () => {
  const mongodToken = { _data: '8265A1B2C30000000746645F6964006400000004' };
  const notFound = () =>
    serverError(
      280,
      `PlanExecutor error during aggregation :: caused by :: cannot resume stream; the resume token was not found. {_data: "${mongodToken._data}"}`,
    );

  it("resumes at the token's cluster time (inclusive): no history lost, no restart from now", async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, { token: mongodToken });
    const { stream, seen, server, events } = setup({
      tokens,
      options: { onHistoryLost: 'restart-from-now' },
      scripts: [{ aggregate: { error: notFound() } }, { getMores: [[insert(1), insert(2)]] }],
    });
    stream.start();
    await eventually('events 1 and 2 handled', () => seen.length === 2);
    expect(server.opens[0].resumeAfter).toEqual(mongodToken);
    expect(server.opens[1]).toMatchObject({
      startAtOperationTime: new mongoose.mongo.Timestamp({ t: 0x65a1b2c3, i: 7 }),
    });
    expect(server.opens[1].resumeAfter).toBeUndefined();
    expect(events.some((e) => e.type === 'history-lost')).toBe(false);
    expect(logs.messages('error').some((m) => m.includes('DATA LOSS'))).toBe(false);
    expect(
      logs
        .messages('warn')
        .some((m) =>
          m.includes("Resuming at the token's cluster time Timestamp({ t: 1705095875, i: 7 })"),
        ),
    ).toBe(true);
    await eventually(
      'the new position replaced the refused token',
      async () =>
        JSON.stringify(await tokens.load(KEY)) === JSON.stringify({ token: insert(2)._id }),
    );
  });

  it('a token whose time cannot be read is history lost, as before (the policy decides)', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, { token: { _data: 'old' } });
    const { stream, server, events } = setup({
      tokens,
      scripts: [{ aggregate: { error: notFound() } }],
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(server.opens).toHaveLength(1);
    expect(events.find((e) => e.type === 'history-lost')).toMatchObject({ action: 'fail' });
  });
});
