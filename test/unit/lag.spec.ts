import { afterEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { CatchUpReporter } from '../../lib/stream/catch-up-reporter.js';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import { eventTime, LagTracker } from '../../lib/stream/lag-tracker.js';
import { insert } from '../fixtures/fake-change-stream.js';
import { deferred, logs, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

const at = (n: number, wallTime: Date): ChangeEvent => ({ ...insert(n), wallTime }) as ChangeEvent;

describe('lag', () => {
  it('takes the event time from wallTime, else from the clusterTime seconds', () => {
    expect(eventTime(at(1, new Date(1_700_000_000_123)))).toBe(1_700_000_000_123);
    expect(
      eventTime({
        ...insert(1),
        clusterTime: new mongoose.mongo.Timestamp({ t: 1_700_000_000, i: 4 }),
      } as ChangeEvent),
    ).toBe(1_700_000_000_000);
    expect(eventTime(insert(1))).toBeNull();
  });

  it('is now minus the last handled event while events are pending, and 0 once caught up', () => {
    const lag = new LagTracker();
    expect(lag.lagMs()).toBe(0);
    lag.read(at(1, new Date(10_000)));
    lag.handled(at(1, new Date(10_000)));
    expect(lag.lagMs(70_000)).toBe(60_000);
    lag.idle();
    expect(lag.lagMs(70_000)).toBe(0);
  });

  it("measures a quiet collection's first event in an hour from that event, not from the last one an hour ago", () => {
    const lag = new LagTracker();
    lag.read(at(1, new Date(0)));
    lag.handled(at(1, new Date(0)));
    lag.idle();
    lag.read(at(2, new Date(3_600_000)));
    expect(lag.lagMs(3_600_050)).toBe(50);
  });

  it('shows in the status of a stream held back by a slow handler', async () => {
    const second = deferred();
    const minuteAgo = new Date(Date.now() - 60_000);
    const { stream, seen } = setup({
      scripts: [{ getMores: [[at(1, minuteAgo), at(2, minuteAgo), at(3, minuteAgo)]] }],
      handle: (id) => (id === 2 ? second.promise : undefined),
    });
    stream.start();
    await eventually(
      'event 2 in flight',
      () => seen.length === 1 && stream.status().inFlightEvents === 1,
    );
    expect(stream.status().lagMs).toBeGreaterThanOrEqual(60_000);
    second.resolve();
    await eventually('caught up', () => seen.length === 3 && stream.status().lagMs === 0);
  });

  it('logs catch-up progress at a calm pace, and only while far behind', () => {
    let state: { handled: number; lagMs: number; inFlightForMs?: number } = {
      handled: 12_400,
      lagMs: 190_000,
    };
    const reporter = new CatchUpReporter('change-stream:{svc:shop:orders}', () => state);
    const t0 = Date.now();
    reporter.tick(t0);
    logs.lines.splice(0);
    state = { handled: 12_400 + 63_000, lagMs: 190_000 };
    reporter.tick(t0 + 30_000);
    expect(logs.messages('log')).toEqual([
      'change-stream:{svc:shop:orders}: 75,400 events handled, 3 m 10 s behind, catching up at 2,100/s.',
    ]);
    state = { handled: 80_000, lagMs: 2_000 };
    reporter.tick(t0 + 60_000);
    expect(logs.messages('log')).toHaveLength(1);
    state = { handled: 80_000, lagMs: 95_000, inFlightForMs: 65_000 };
    reporter.tick(t0 + 90_000);
    expect(logs.messages('warn')).toEqual([
      'change-stream:{svc:shop:orders}: 80,000 events handled, 1 m 35 s behind, and no event finished in the last 30 s: the current one has been running for 1 m 5 s (a stuck handler? see handlerStuck).',
    ]);
  });

  it('the catch-up line names the history headroom when it is known', () => {
    let state: { handled: number; lagMs: number; inFlightForMs?: number; headroomMs: number } = {
      handled: 0,
      lagMs: 190_000,
      headroomMs: 26 * 3_600_000,
    };
    const reporter = new CatchUpReporter('change-stream:{svc:shop:orders}', () => state);
    const t0 = Date.now();
    reporter.tick(t0);
    expect(logs.messages('log')).toEqual([
      'change-stream:{svc:shop:orders}: 0 events handled, 3 m 10 s behind, catching up at 0/s, history headroom 1 d 2 h.',
    ]);
    state = { handled: 0, lagMs: 250_000, inFlightForMs: 65_000, headroomMs: 2_400_000 };
    reporter.tick(t0 + 30_000);
    expect(logs.messages('warn')).toEqual([
      'change-stream:{svc:shop:orders}: 0 events handled, 4 m 10 s behind, and no event finished in the last 30 s: the current one has been running for 1 m 5 s (a stuck handler? see handlerStuck); history headroom 40 m 0 s.',
    ]);
  });
});
