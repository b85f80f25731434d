import { afterEach, describe, expect, it } from '@jest/globals';
import { insert } from '../fixtures/fake-change-stream.js';
import { deferred, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { delay, eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

describe('pause then resume while the pause drains', () => {
  it('the pause() promise settles', async () => {
    const first = deferred();
    const { stream } = setup({
      options: { checkpoint: { maxEvents: 100, intervalMs: 60_000 } },
      scripts: [{ getMores: [[insert(1)], [insert(2)]] }, { getMores: [[insert(2), insert(3)]] }],
      handle: (id) => (id === 1 ? first.promise : undefined),
    });
    stream.start();
    await eventually('event 1 running', () => stream.status().inFlightEvents === 1);
    let pausedDone = false;
    const paused = stream
      .pause({ by: 'test', reason: 'r', since: null })
      .then(() => (pausedDone = true));
    expect(stream.resume()).toBe(true);
    first.resolve();
    await eventually('reading again', () => stream.state === 'open');
    await delay(200);
    expect(pausedDone).toBe(true);
    void paused;
  });
});
