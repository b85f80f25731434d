import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type ChangeContext,
  type ChangeStreamModuleOptions,
  decodePosition,
  OnChange,
  positionKey,
} from '../../lib/index.js';
import { leaseKey } from '../../lib/redis/redis-keys.js';
import { EventLog } from '../fixtures/event-log.js';
import { ServerProbe, TestApp } from '../fixtures/test-app.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';

@Injectable()
class OrdersAndUsers {
  constructor(private readonly log: EventLog) {}

  @OnChange('orders')
  onOrder(change: mongo.ChangeStreamDocument, context: ChangeContext) {
    this.log.record(context.collection, change);
  }

  @OnChange('users')
  onUser(change: mongo.ChangeStreamDocument, context: ChangeContext) {
    this.log.record(context.collection, change);
  }
}

/** Short idle reads, saves and renewals: many of each while the stream idles. */
const IDLE: Partial<ChangeStreamModuleOptions> = {
  streams: 'database',
  maxAwaitTimeMS: 100,
  checkpoint: { intervalMs: 50 },
  leases: { ttlMs: 3000 },
};

describe('an idle database stream (real test servers)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  it('does not rewrite its stored position (with its coverage) while the position does not move, and saves again once it does', async () => {
    const dbName = uniqueName('idle');
    const consumer = uniqueName('svc');
    const probe = await ServerProbe.open(dbName);
    cleanups.push(() => probe.close());
    const app = await TestApp.start({
      dbName,
      consumer,
      providers: [OrdersAndUsers],
      changeStreams: IDLE,
    });
    cleanups.push(() => app.close());
    const key = positionKey('change-stream', consumer, dbName, '$database');
    const tokenOf = (raw: string | null) =>
      raw === null ? null : JSON.stringify((decodePosition(key, raw) as { token?: unknown }).token);

    await probe.collection('orders').insertOne({ _id: 1 as never });
    await eventually('the insert handled', () => app.events.of('orders').length === 1);
    const handled = JSON.stringify(app.events.of('orders')[0].token);
    await eventually(
      'its position stored',
      async () => tokenOf(await probe.redis.get(key)) === handled,
    );
    const stored = await probe.redis.get(key);
    expect(stored).toContain('"coverage"');

    // Time passes for the stream: its lease is renewed twice (every second); meanwhile it reads
    // idle every 100 ms and would save within 50 ms of a new position.
    let renewals = 0;
    let last = await probe.redis.pttl(leaseKey(key));
    await eventually(
      'two lease renewals',
      async () => {
        const now = await probe.redis.pttl(leaseKey(key));
        if (now > last) renewals++;
        last = now;
        return renewals >= 2;
      },
      15_000,
    );
    // Byte for byte: the save time in the stored value did not change either.
    expect(await probe.redis.get(key)).toBe(stored);

    // Still reading: a later event is handled and its position stored.
    await probe.collection('users').insertOne({ _id: 2 as never });
    await eventually('the later insert handled', () => app.events.of('users').length === 1);
    const later = JSON.stringify(app.events.of('users')[0].token);
    await eventually(
      'the later position stored',
      async () => tokenOf(await probe.redis.get(key)) === later,
    );
  });
});
