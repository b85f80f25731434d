import { afterEach, describe, expect, it } from '@jest/globals';
import { BACKFILL_MAX_AWAIT_MS } from '../../lib/options/defaults.js';
import {
  backfillStream,
  FakeCollection,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import { insert } from '../fixtures/fake-change-stream.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopBackfillStreams);

// A backfill opens the cursor with a short maxAwaitTimeMS (each chunk's window waits for an idle
// getMore); kept after the backfill, an idle stream would poll the server ten times as often.
describe('backfill: the cursor after the backfill', () => {
  it("is opened again with the module's maxAwaitTimeMS once the run ended and the stream is idle, losing nothing", async () => {
    const { stream, seen, server } = backfillStream({
      scripts: [
        { aggregate: { postBatchResumeToken: startToken }, getMores: [[], []] },
        { getMores: [[insert(7)]] },
      ],
      collection: new FakeCollection([1, 2, 3]),
      options: { maxAwaitTimeMS: 1000 },
    });
    stream.start();
    await eventually('the reopened stream delivered insert 7', () =>
      seen.some((s) => s.op === 'insert'),
    );
    expect(server.opens.map((o) => o.maxAwaitTimeMS)).toEqual([BACKFILL_MAX_AWAIT_MS, 1000]);
    expect(server.opens[1].resumeAfter).toBeDefined();
    expect(seen.map((s) => [s.op, s.id])).toEqual([
      ['backfill', 1],
      ['backfill', 2],
      ['backfill', 3],
      ['insert', 7],
    ]);
  });
});
