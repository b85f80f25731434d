import { afterEach, describe, expect, it } from '@jest/globals';
import type { Logger } from '@nestjs/common';
import mongoose from 'mongoose';
import { InMemoryPositionStore, type StreamPosition } from '../../lib/index.js';
import { readStartPosition } from '../../lib/checkpoint/start-position.js';
import { databaseStream, stopDatabaseStreams } from '../fixtures/database-stream-harness.js';
import { inCollection, insert, token } from '../fixtures/fake-change-stream.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopDatabaseStreams);

const ts = (t: number) => new mongoose.mongo.Timestamp({ t, i: 1 });
const tokenAt = (t: number) => ({
  _data: `82${t.toString(16).padStart(8, '0')}00000001` + '2B022C0100296E5A1004',
});
const DB = 'cs:{svc:db:$database}';
const ORDERS = 'cs:{svc:db:orders}';

function recordingLogger() {
  const warnings: string[] = [];
  const logger = { warn: (m: string) => warnings.push(m), log: () => undefined };
  return { logger: logger as unknown as Logger, warnings };
}

describe('readStartPosition with the records of the streams that share its collections', () => {
  it('a rolled-back collection stream starts where the database stream got to, says so, and keeps its backfill record', async () => {
    const store = new InMemoryPositionStore();
    const backfill = { completed: ['Orders.sync'] };
    await store.save(ORDERS, { token: tokenAt(10), backfill });
    await store.save(DB, { token: tokenAt(100), coverage: { serves: ['orders', 'users'] } });
    const { logger, warnings } = recordingLogger();
    const start = await readStartPosition(store, ORDERS, false, null, logger, {
      collection: 'orders',
      databaseKey: DB,
    });
    expect(start).toEqual({
      position: { operationTime: ts(100), backfill },
      from: 'replaced',
      base: { token: tokenAt(10), backfill },
    });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`Stream ${ORDERS} starts at cluster time 100.1, not at its own`);
    expect(warnings[0]).toContain(`${DB} holds the newest stored position for collection 'orders'`);
  });

  it('says once per stream that a database record carries no coverage, and keeps to the rule before', async () => {
    const store = new InMemoryPositionStore();
    await store.save(ORDERS, { token: tokenAt(10) });
    await store.save(DB, { token: tokenAt(100) });
    const { logger, warnings } = recordingLogger();
    const warned = new Set<string>();
    const read = () =>
      readStartPosition(
        store,
        ORDERS,
        false,
        null,
        logger,
        { collection: 'orders', databaseKey: DB },
        warned,
      );
    expect((await read()).position).toEqual({ token: tokenAt(10) });
    expect((await read()).position).toEqual({ token: tokenAt(10) });
    expect(warnings).toEqual([
      expect.stringContaining(`the database stream position stored under ${DB} does not say`),
    ]);
  });

  it('a left or remembered position keeps its precedence', async () => {
    const store = new InMemoryPositionStore();
    await store.save(DB, { token: tokenAt(100), coverage: { serves: ['orders'] } });
    const remembered: StreamPosition = { token: tokenAt(5) };
    const { logger } = recordingLogger();
    const start = await readStartPosition(store, ORDERS, false, remembered, logger, {
      collection: 'orders',
      databaseKey: DB,
    });
    expect(start).toMatchObject({ position: remembered, from: 'memory' });
  });
});

describe('a database stream stores what it covers', () => {
  it('with every position: the collections it serves, and one it stopped serving retired at its last position’s time', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(DB, { token: tokenAt(300), coverage: { serves: ['orders', 'users'] } });
    const { stream, server, seen } = databaseStream(
      [{ collection: 'orders' }],
      [{ getMores: [[inCollection('orders', insert(1, 1))]] }],
      { tokens },
    );
    stream.start();
    await eventually('event handled', () => seen.length === 1);
    expect(server.opens[0].resumeAfter).toEqual(tokenAt(300));
    await eventually(
      'position stored with its coverage',
      async () =>
        JSON.stringify(await tokens.load(DB)) ===
        JSON.stringify({
          token: token(1),
          coverage: { serves: ['orders'], retired: { users: ts(300) } },
        }),
    );
  });

  it('a collection joining it is read from its own stream’s position (older than the database stream’s), not skipped', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(DB, {
      token: tokenAt(300),
      coverage: { serves: ['users'], retired: { orders: ts(100) } },
    });
    await tokens.save(ORDERS, { token: tokenAt(250) });
    const { stream, server } = databaseStream(
      [{ collection: 'orders' }, { collection: 'users' }],
      [{}],
      { tokens },
    );
    stream.start();
    await eventually('opened', () => server.opens.length === 1);
    expect(server.opens[0].startAtOperationTime).toEqual(ts(250));
    expect(server.opens[0].resumeAfter).toBeUndefined();
  });
});
