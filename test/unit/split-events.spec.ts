import { afterEach, describe, expect, it } from '@jest/globals';
import { InMemoryPositionStore, type StreamPosition } from '../../lib/index.js';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { planStreams } from '../../lib/stream/stream-plan.js';
import {
  fragmentsOf,
  insert,
  networkError,
  serverError,
  token,
  update,
} from '../fixtures/fake-change-stream.js';
import { KEY, positionOf, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

const big = (n: number, documentId: number): ChangeEvent =>
  ({
    ...update(n, documentId),
    fullDocument: { _id: documentId, blob: 'after' },
    fullDocumentBeforeChange: { _id: documentId, blob: 'before' },
  }) as unknown as ChangeEvent;

function recordingStore() {
  const tokens = new InMemoryPositionStore();
  const saved: StreamPosition[] = [];
  const save = tokens.save.bind(tokens);
  tokens.save = async (key, position) => {
    saved.push(position);
    await save(key, position);
  };
  return { tokens, saved };
}

describe('splitLargeEvents: events over 16 MB', () => {
  it("puts $changeStreamSplitLargeEvent last, joins the fragments into one event and acknowledges only the last fragment's token", async () => {
    const { tokens, saved } = recordingStore();
    const received: ChangeEvent[] = [];
    const [a, b, c] = fragmentsOf(big(2, 7), ['2a', '2b', '2c']);
    const { stream, seen, server } = setup({
      tokens,
      handlerOptions: { operationTypes: ['insert', 'update'], splitLargeEvents: true },
      // The fragments span two batches with an empty one between, each batch's post-batch token
      // mid-event until c; event 3 follows.
      scripts: [
        {
          getMores: [
            { batch: [insert(1), a, b], postBatchResumeToken: token('mid1') },
            { batch: [], postBatchResumeToken: token('mid2') },
            // Long enough for a save of whatever position the empty batch gave.
            {
              after: new Promise((resolve) => setTimeout(resolve, 200)),
              then: { batch: [c, insert(3)], postBatchResumeToken: token('p3') },
            },
          ],
          idleToken: token('p3'),
        },
      ],
      handle: (_id, _context, change) => void received.push(change),
    });
    stream.start();
    await eventually('three events handled', () => seen.length === 3);
    expect(server.pipelines[0].at(-1)).toEqual({ $changeStreamSplitLargeEvent: {} });
    expect(seen).toEqual([1, 7, 3]);
    const joined = received[1] as unknown as Record<string, unknown>;
    expect(joined).toMatchObject({
      _id: token('2c'),
      operationType: 'update',
      documentKey: { _id: 7 },
      fullDocument: { blob: 'after' },
      fullDocumentBeforeChange: { blob: 'before' },
    });
    expect(joined.splitEvent).toBeUndefined();
    await eventually(
      'the post-batch token after event 3 stored',
      async () => JSON.stringify(await tokens.load(KEY)) === JSON.stringify(positionOf('p3')),
    );
    const storedTokens = saved.map((p) => JSON.stringify(p));
    expect(storedTokens).not.toContain(JSON.stringify(positionOf('2a')));
    expect(storedTokens).not.toContain(JSON.stringify(positionOf('2b')));
    expect(storedTokens).not.toContain(JSON.stringify(positionOf('mid1')));
    expect(storedTokens).not.toContain(JSON.stringify(positionOf('mid2')));
  });

  it('a stream broken between fragments reopens after the last whole event and joins the resent fragments: the event is handled once', async () => {
    const [a, b] = fragmentsOf(
      { ...insert(2, 7), fullDocument: { _id: 7, blob: 'x' } } as unknown as ChangeEvent,
      ['2a', '2b'],
    );
    const { stream, seen, server } = setup({
      handlerOptions: { splitLargeEvents: true },
      scripts: [{ getMores: [[insert(1), a], { error: networkError() }] }, { getMores: [[a, b]] }],
    });
    stream.start();
    await eventually('two events handled', () => seen.length === 2);
    expect(seen).toEqual([1, 7]);
    expect(server.opens.map((o) => o.resumeAfter ?? null)).toEqual([null, token(1)]);
  });

  it('fragments out of order break the stream (reopen from the last acknowledged event), never a half event to a handler', async () => {
    const [a, b] = fragmentsOf(
      { ...insert(2, 7), fullDocument: { _id: 7 } } as unknown as ChangeEvent,
      ['2a', '2b'],
    );
    const { stream, seen, server } = setup({
      handlerOptions: { splitLargeEvents: true },
      scripts: [{ getMores: [[insert(1), b]] }, { getMores: [[a, b]] }],
    });
    stream.start();
    await eventually('two events handled', () => seen.length === 2);
    expect(seen).toEqual([1, 7]);
    expect(server.opens).toHaveLength(2);
  });

  it('without the option, an oversized event (BSONObjectTooLarge) fails the stream with a message naming the option: no reopen loop', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(KEY, positionOf(1));
    const tooLarge = () =>
      serverError(
        10334,
        'BSONObj size: 17000000 (0x1036640) is invalid. Size must be between 0 and 16793600(16MB)',
      );
    const { stream, server } = setup({
      tokens,
      scripts: [
        { getMores: [{ error: tooLarge() }] },
        { getMores: [{ error: tooLarge() }] },
        { getMores: [{ error: tooLarge() }] },
      ],
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(stream.status().lastError).toContain('splitLargeEvents: true');
    expect(server.opens).toHaveLength(1);
    expect(server.pipelines[0]).toEqual([]);
    expect(await tokens.load(KEY)).toEqual(positionOf(1));
  });

  it('a server that does not know the stage fails the stream once, naming the option and the versions', async () => {
    const { stream, server } = setup({
      handlerOptions: { splitLargeEvents: true },
      scripts: [
        {
          aggregate: {
            error: serverError(
              40324,
              "Unrecognized pipeline stage name: '$changeStreamSplitLargeEvent'",
            ),
          },
        },
      ],
    });
    stream.start();
    await eventually('failed', () => stream.status().state === 'failed');
    expect(stream.status().lastError).toMatch(/refused "splitLargeEvents".*7\.0\+ or 6\.0\.9\+/);
    expect(server.opens).toHaveLength(1);
  });
});

describe('splitLargeEvents in the plan', () => {
  const handler = (name: string, options: ChangeHandler['options']): ChangeHandler => ({
    name,
    collection: 'orders',
    connectionName: 'default',
    options,
    invoke: () => undefined,
  });

  it('one handler asking is enough, and the stage stays last after the shared filters', () => {
    const [plan] = planStreams([
      handler('A.a', {
        operationTypes: ['insert'],
        pipeline: [{ $match: { 'fullDocument.x': 1 } }],
      }),
      handler('B.b', {
        operationTypes: ['update'],
        pipeline: [{ $match: { 'fullDocument.x': 1 } }],
        splitLargeEvents: true,
      }),
    ]);
    expect(plan.splitLargeEvents).toBe(true);
    expect(plan.pipeline).toHaveLength(3);
    expect(plan.pipeline.at(-1)).toEqual({ $changeStreamSplitLargeEvent: {} });
  });

  it('is off unless asked, and must be a boolean', () => {
    expect(planStreams([handler('A.a', {})])[0].splitLargeEvents).toBe(false);
    expect(() => planStreams([handler('A.a', { splitLargeEvents: 'yes' as never })])).toThrow(
      '"splitLargeEvents" must be true or false.',
    );
  });
});
