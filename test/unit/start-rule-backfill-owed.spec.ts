import { describe, expect, it } from '@jest/globals';
import type { Logger } from '@nestjs/common';
import { InMemoryPositionStore } from '../../lib/index.js';
import { readStartPosition } from '../../lib/checkpoint/start-position.js';

const tokenAt = (t: number) => ({
  _data: `82${t.toString(16).padStart(8, '0')}00000001` + '2B022C0100296E5A1004',
});
const DB = 'cs:{svc:db:$database}';
const ORDERS = 'cs:{svc:db:orders}';
const logger = { warn: () => undefined, log: () => undefined } as unknown as Logger;

describe('start rule: a collection stream owing a backfill handler its changes', () => {
  it('orders had a run for Orders.sync in progress at 10; Orders.sync removed, orders joined the database stream (its other handlers), which got to 100; Orders.sync back: the run resumes after its last chunk, so its changes between 10 and 100 to documents already backfilled must come from the stream', async () => {
    const store = new InMemoryPositionStore();
    const backfill = {
      completed: [],
      run: {
        id: 'r1',
        handlers: ['Orders.sync'],
        after: '{"$oid":"650000000000000000000500"}',
        done: 500,
        total: 1000,
        startedAt: new Date(0).toISOString(),
      },
    };
    await store.save(ORDERS, { token: tokenAt(10), backfill });
    await store.save(DB, { token: tokenAt(100), coverage: { serves: ['orders', 'users'] } });
    const start = await readStartPosition(store, ORDERS, false, null, logger, {
      collection: 'orders',
      databaseKey: DB,
      backfillHandlers: ['Orders.sync'],
    });
    // Orders.sync never saw orders' events between 10 and 100 (the database stream ran without it),
    // and its resumed run will not read documents at or before `after` again.
    expect(start.position).toEqual({ token: tokenAt(10), backfill });
  });

  it('a collection leaving the database stream for a new backfill handler starts where the database stream got to', async () => {
    const store = new InMemoryPositionStore();
    const backfill = { completed: ['Orders.old'] };
    await store.save(ORDERS, { token: tokenAt(10), backfill });
    await store.save(DB, { token: tokenAt(100), coverage: { serves: ['orders', 'users'] } });
    const start = await readStartPosition(store, ORDERS, false, null, logger, {
      collection: 'orders',
      databaseKey: DB,
      backfillHandlers: ['Orders.sync'],
    });
    // Orders.sync's backfill reads what exists; the changes before 100 reached the handlers the database stream ran.
    expect(start.position).toMatchObject({ operationTime: expect.anything(), backfill });
    expect(start.from).toBe('replaced');
  });
});
