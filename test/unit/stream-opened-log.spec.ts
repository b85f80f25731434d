import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { InMemoryPositionStore } from '../../lib/index.js';
import { insert, lifecycle, timestamp } from '../fixtures/fake-change-stream.js';
import { KEY, logs, positionOf, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

let from = 0;
beforeEach(() => {
  from = logs.lines.length;
});
/** The open lines logged since this test began, in order. */
const openLines = () =>
  logs.lines
    .slice(from)
    .filter((l) => l.level === 'log' && l.message.startsWith(`Stream ${KEY} opened`))
    .map((l) => l.message);

describe('CollectionStream: the open line says what it resumes from', () => {
  it('says "after the stored token" only for a stored token', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf(1));
    const { stream, seen } = setup({ tokens, scripts: [{ getMores: [[insert(2)]] }] });
    stream.start();
    await eventually('handled', () => seen.length === 1);
    expect(openLines()).toEqual([`Stream ${KEY} opened, resuming after the stored token.`]);
  });

  it('names a stored cluster time as a time, not a token', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, { operationTime: timestamp(7) });
    const { stream, seen, server } = setup({ tokens, scripts: [{ getMores: [[insert(2)]] }] });
    stream.start();
    await eventually('handled', () => seen.length === 1);
    expect(server.opens[0]).toMatchObject({ startAtOperationTime: timestamp(7) });
    expect(openLines()).toEqual([
      `Stream ${KEY} opened, starting at a cluster time (startAtOperationTime, inclusive), not after a token: a start point stored before any event was acknowledged, another stream's position after a switch of "streams" (see the line before), or the fallback for a token the server no longer finds.`,
    ]);
  });

  it('names the reopen after an invalidate event as such', async () => {
    const { stream, seen } = setup({
      scripts: [
        { getMores: [[insert(1), lifecycle(2, 'drop'), lifecycle(3, 'invalidate')]] },
        { getMores: [[insert(4)]] },
      ],
    });
    stream.start();
    await eventually('4 handled', () => seen.includes(4));
    expect(openLines()).toEqual([
      `Stream ${KEY} opened with no stored token: starting from now.`,
      `Stream ${KEY} opened, starting after the invalidate event (the collection was dropped or renamed).`,
    ]);
  });
});
