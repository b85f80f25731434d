import { afterEach, describe, expect, it } from '@jest/globals';
import {
  ChangeStreamDeadLetters,
  InMemoryDeadLetterStore,
  InMemoryPositionStore,
} from '../../lib/index.js';
import { ChangeStreamRegistry } from '../../lib/change-stream.registry.js';
import { resolveOptions } from '../../lib/options/module-options.js';
import type { ChangeStreamStores } from '../../lib/stores.factory.js';
import {
  backfillStream,
  BACKFILL_KEY,
  FakeCollection,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopBackfillStreams);

describe('Backfill events and failure policies', () => {
  it('dead-letters a failing backfill event (one letter per document), goes on, and replays the letter to the handler', async () => {
    const store = new InMemoryPositionStore();
    const deadLetters = new InMemoryDeadLetterStore();
    let failing = true;
    const { stream, seen } = backfillStream({
      scripts: [{ aggregate: { postBatchResumeToken: startToken } }],
      collection: new FakeCollection([1, 2, 3, 4]),
      store,
      deadLetters,
      handlers: {
        onOrder: {
          backfill: true,
          fullDocument: 'updateLookup',
          onFailure: 'dead-letter',
          retries: 1,
        },
      },
      handle: (s) => {
        if (failing && (s.id === 2 || s.id === 3)) throw new Error(`cannot index ${s.id}`);
      },
      options: { handlerRetry: { retries: 1, initialDelayMs: 1 } },
    });
    stream.start();
    await eventually('completed', async () =>
      ((await store.load(BACKFILL_KEY))?.backfill?.completed ?? []).includes('Listener.onOrder'),
    );
    expect(seen.map((s) => s.id)).toEqual([1, 4]);
    const letters = await deadLetters.list();
    expect(
      letters.map((l) => (l.change as { documentKey: { _id: number } }).documentKey._id).sort(),
    ).toEqual([2, 3]);
    expect(new Set(letters.map((l) => l.id)).size).toBe(2);
    expect(letters[0]).toMatchObject({
      handler: 'Listener.onOrder',
      attempts: 2,
      change: { operationType: 'backfill' },
    });

    const registry = new ChangeStreamRegistry(resolveOptions({ consumer: 'svc' }));
    registry.streams.push(stream);
    const service = new ChangeStreamDeadLetters(
      { deadLetters } as unknown as ChangeStreamStores,
      registry,
    );
    failing = false;
    const letter = letters.find(
      (l) => (l.change as { documentKey: { _id: number } }).documentKey._id === 3,
    )!;
    await service.replay(letter.id);
    expect(seen.map((s) => `${s.op}:${s.id}`)).toEqual(['backfill:1', 'backfill:4', 'backfill:3']);
    expect((await deadLetters.list()).map((l) => l.id)).toEqual(
      letters.filter((l) => l !== letter).map((l) => l.id),
    );
  });
});
