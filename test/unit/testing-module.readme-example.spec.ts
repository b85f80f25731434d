// The example of docs/testing.md ("Testing your handlers"), run as written (only the import paths differ).
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { type ChangeOf, OnChange } from '../../lib/index.js';
import { ChangeStreamTester, ChangeStreamTestingModule, changeEvents } from '../../lib/testing/index.js';

interface Order {
  _id: string;
  customer: string;
  total: number;
}

@Injectable()
export class SearchIndex {
  async upsert(id: string, order: Order): Promise<void> {}
  async remove(id: string): Promise<void> {}
}

@Injectable()
export class OrdersListener {
  constructor(private readonly search: SearchIndex) {}

  @OnChange<Order, 'insert' | 'update'>('orders', { operationTypes: ['insert', 'update'], fullDocument: 'updateLookup', onFailure: 'dead-letter' })
  async onOrder(change: ChangeOf<Order, 'insert' | 'update'>) {
    if (change.fullDocument) await this.search.upsert(change.fullDocument._id, change.fullDocument);
  }

  @OnChange<Order, 'delete'>('orders', { operationTypes: ['delete'] })
  async onDelete(change: ChangeOf<Order, 'delete'>) {
    await this.search.remove(change.documentKey._id);
  }
}

describe('OrdersListener', () => {
  let moduleRef: TestingModule;
  let tester: ChangeStreamTester;
  let search: { upsert: jest.Mock<SearchIndex['upsert']>; remove: jest.Mock<SearchIndex['remove']> };

  beforeEach(async () => {
    search = { upsert: jest.fn<SearchIndex['upsert']>(), remove: jest.fn<SearchIndex['remove']>() };
    moduleRef = await Test.createTestingModule({
      imports: [ChangeStreamTestingModule.forRoot()], // instead of ChangeStreamModule: no MongoDB, no Redis
      providers: [OrdersListener, SearchIndex],
    })
      .overrideProvider(SearchIndex)
      .useValue(search)
      .compile();
    await moduleRef.init(); // as app.init(): runs your lifecycle hooks; a bad @OnChange fails here
    tester = moduleRef.get(ChangeStreamTester);
  });

  afterEach(() => moduleRef.close());

  it('indexes a new order', async () => {
    const order = { _id: 'o1', customer: 'ada', total: 30 };
    const outcome = await tester.emit('orders', changeEvents.insert<Order>('orders', order));

    expect(search.upsert).toHaveBeenCalledWith('o1', order);
    expect(outcome.acknowledged).toBe(true);
    expect(outcome.handlers.map((run) => run.handler)).toEqual(['OrdersListener.onOrder']);
  });

  it('unindexes a deleted order; the insert/update handler is not called', async () => {
    const outcome = await tester.emit('orders', changeEvents.delete<Order>('orders', { _id: 'o1' }));

    expect(search.remove).toHaveBeenCalledWith('o1');
    expect(outcome.handlers.map((run) => run.handler)).toEqual(['OrdersListener.onDelete']);
  });

  it('retries, then dead-letters an order the index keeps rejecting', async () => {
    search.upsert.mockRejectedValue(new Error('mapping conflict'));
    const order = { _id: 'o2', customer: 'bob', total: 20 };
    const outcome = await tester.emit('orders', changeEvents.update<Order>('orders', order, { updatedFields: { total: 20 } }));

    expect(outcome.handlers[0]).toMatchObject({ status: 'dead-lettered', attempts: 4 }); // 1 + 3 retries
    expect(outcome.acknowledged).toBe(true); // the stream would move on
    const [letter] = await tester.deadLetters();
    expect(letter).toMatchObject({ id: outcome.deadLetters[0], handler: 'OrdersListener.onOrder', error: { message: 'mapping conflict' } });
  });
});

describe('docs/testing.md', () => {
  it('shows this example as it is here (imports by package name)', async () => {
    const { readFileSync } = await import('node:fs');
    const here = readFileSync(new URL(import.meta.url), 'utf8').split('\ndescribe(\'docs/testing.md\'')[0].split('\n').slice(1).join('\n');
    const asUsers = here.replace("from '../../lib/index.js'", "from 'nestjs-change-streams'").replace("from '../../lib/testing/index.js'", "from 'nestjs-change-streams/testing'");
    expect(readFileSync(new URL('../../docs/testing.md', import.meta.url), 'utf8')).toContain(asUsers.trim());
  });
});
