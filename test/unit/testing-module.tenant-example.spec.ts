// The tenant example of docs/testing.md ("Tenant databases"), run as written (only the import paths differ).
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { type ChangeContext, type ChangeOf, OnChange } from '../../lib/index.js';
import {
  ChangeStreamTester,
  ChangeStreamTestingModule,
  changeEvents,
} from '../../lib/testing/index.js';

interface Order {
  _id: string;
  total: number;
}

@Injectable()
export class TenantTotals {
  readonly totals = new Map<string, number>();

  @OnChange({ collection: 'orders', database: /^tenant_/ }, { operationTypes: ['insert'] })
  onOrder(change: ChangeOf<Order, 'insert'>, context: ChangeContext) {
    const total = this.totals.get(context.database) ?? 0;
    this.totals.set(context.database, total + change.fullDocument.total);
  }
}

describe('TenantTotals', () => {
  let moduleRef: TestingModule;
  let tester: ChangeStreamTester;

  beforeEach(async () => {
    moduleRef = await Test.createTestingModule({
      imports: [ChangeStreamTestingModule.forRoot()],
      providers: [TenantTotals],
    }).compile();
    await moduleRef.init();
    tester = moduleRef.get(ChangeStreamTester);
  });

  afterEach(() => moduleRef.close());

  it("adds an order to its tenant's total", async () => {
    const tenantA = changeEvents.forDatabase('tenant_a'); // events with ns.db 'tenant_a'
    const order = { _id: 'o1', total: 30 };
    const outcome = await tester.emit('orders', tenantA.insert<Order>('orders', order));

    expect(outcome.database).toBe('tenant_a');
    expect(outcome.handlers[0].contexts[0].database).toBe('tenant_a');
    expect(moduleRef.get(TenantTotals).totals).toEqual(new Map([['tenant_a', 30]]));
  });

  it('ignores a database the pattern does not match', async () => {
    const insert = { operationType: 'insert', fullDocument: { _id: 'o2', total: 5 } } as const;
    const outcome = await tester.emit<Order>('orders', insert, { database: 'shop' });

    expect(outcome.handlers).toEqual([]); // no handler ran for it
    expect(moduleRef.get(TenantTotals).totals.size).toBe(0);
  });
});

describe('docs/testing.md', () => {
  it('shows this example as it is here (imports by package name)', async () => {
    const { readFileSync } = await import('node:fs');
    const here = readFileSync(new URL(import.meta.url), 'utf8')
      .split("\ndescribe('docs/testing.md'")[0]
      .split('\n')
      .slice(1)
      .join('\n');
    const asUsers = here
      .replace("from '../../lib/index.js'", "from 'nestjs-change-streams'")
      .replace("from '../../lib/testing/index.js'", "from 'nestjs-change-streams/testing'");
    expect(readFileSync(new URL('../../docs/testing.md', import.meta.url), 'utf8')).toContain(
      asUsers.trim(),
    );
  });
});

describe('TenantTotals, emitted as the README says', () => {
  let moduleRef: TestingModule;
  afterEach(() => moduleRef.close());

  it("delivers a changeEvents event in the database the emit options name, and refuses one left in the app's database", async () => {
    moduleRef = await Test.createTestingModule({
      imports: [ChangeStreamTestingModule.forRoot()],
      providers: [TenantTotals],
    }).compile();
    await moduleRef.init();
    const tester = moduleRef.get(ChangeStreamTester);
    const order = { _id: 'o1', total: 7 };

    const outcome = await tester.emit('orders', changeEvents.insert<Order>('orders', order), {
      database: 'tenant_q',
    });
    expect(outcome.database).toBe('tenant_q');
    expect(outcome.handlers.map((h) => h.contexts[0].database)).toEqual(['tenant_q']);
    expect(moduleRef.get(TenantTotals).totals).toEqual(new Map([['tenant_q', 7]]));

    await expect(
      tester.emit('orders', changeEvents.insert<Order>('orders', order)),
    ).rejects.toThrow('"orders" is watched only in databases /^tenant_/ (connection "default")');
    expect(moduleRef.get(TenantTotals).totals).toEqual(new Map([['tenant_q', 7]]));
  });
});
