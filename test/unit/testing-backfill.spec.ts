import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { type BackfillEvent, type ChangeOf, OnChange } from '../../lib/index.js';
import { ChangeStreamTester, ChangeStreamTestingModule } from '../../lib/testing/index.js';

interface Order {
  _id: string;
  total: number;
}

@Injectable()
class IndexListener {
  readonly indexed: Array<{ id: string; total?: number; op: string; run?: string }> = [];

  @OnChange<Order>('orders', { backfill: true, fullDocument: 'updateLookup' })
  index(change: ChangeOf<Order> | BackfillEvent<Order>) {
    const total = 'fullDocument' in change ? change.fullDocument?.total : undefined;
    this.indexed.push({
      id: String((change as { documentKey: { _id: unknown } }).documentKey._id),
      total,
      op: change.operationType,
      ...(change.operationType === 'backfill' && { run: change.backfill.run }),
    });
  }
}

@Injectable()
class AuditListener {
  readonly seen: string[] = [];

  @OnChange('orders')
  audit(change: ChangeOf<Order>) {
    this.seen.push(change.operationType);
  }

  @OnChange('invoices')
  invoices() {}
}

const opened: TestingModule[] = [];
afterEach(async () => Promise.all(opened.splice(0).map((m) => m.close())));

async function compile(): Promise<TestingModule> {
  const moduleRef = await Test.createTestingModule({
    imports: [ChangeStreamTestingModule.forRoot()],
    providers: [IndexListener, AuditListener],
  }).compile();
  await moduleRef.init();
  opened.push(moduleRef);
  return moduleRef;
}

describe('ChangeStreamTester.backfill (feeding backfill events in tests)', () => {
  it('delivers a document as a backfill event to the handlers declared with backfill only, in order with changes', async () => {
    const moduleRef = await compile();
    const tester = moduleRef.get(ChangeStreamTester);
    const outcome = await tester.backfill<Order>('orders', { _id: 'o1', total: 5 }, { run: 'r7' });
    await tester.emit<Order>('orders', {
      operationType: 'insert',
      fullDocument: { _id: 'o2', total: 9 },
    });
    expect(outcome.change).toMatchObject({
      operationType: 'backfill',
      documentKey: { _id: 'o1' },
      fullDocument: { _id: 'o1', total: 5 },
      ns: { db: 'test', coll: 'orders' },
      backfill: { run: 'r7' },
    });
    expect(outcome.handlers.map((h) => [h.handler, h.status])).toEqual([
      ['IndexListener.index', 'succeeded'],
    ]);
    expect(moduleRef.get(IndexListener).indexed).toEqual([
      { id: 'o1', total: 5, op: 'backfill', run: 'r7' },
      { id: 'o2', total: 9, op: 'insert' },
    ]);
    expect(moduleRef.get(AuditListener).seen).toEqual(['insert']);
    await expect(tester.backfill('invoices', { _id: 1 })).rejects.toThrow(
      /no handler of .* is declared with backfill/,
    );
  });
});
