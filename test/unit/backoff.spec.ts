import { describe, expect, it } from '@jest/globals';
import { backoffDelay, sleep } from '../../lib/common/backoff.js';

describe('backoffDelay', () => {
  it('doubles per attempt up to the cap, with jitter between half and all of it', () => {
    expect([1, 2, 3, 4, 10].map((a) => backoffDelay(a, 100, 1000, () => 1))).toEqual([
      100, 200, 400, 800, 1000,
    ]);
    expect([1, 2, 3, 4, 10].map((a) => backoffDelay(a, 100, 1000, () => 0))).toEqual([
      50, 100, 200, 400, 500,
    ]);
  });
});

describe('sleep', () => {
  it('ends early with false when aborted', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = sleep(10_000, controller.signal);
    controller.abort();
    await expect(pending).resolves.toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
