/*
 * Compile-time tests of the handler typing with `backfill` (see on-change.types.ts for how these
 * run: every `// @ts-expect-error` must meet an error, under strict and loose settings).
 */
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type BackfillEvent,
  type ChangeContext,
  type ChangeOf,
  type ChangeOrBackfill,
  OnChange,
} from '../../lib/index.js';

interface Order {
  _id: string;
  total: number;
}
interface Invoice {
  _id: string;
  total: string;
}

@Injectable()
export class BackfillListeners {
  @OnChange<Order>('orders', { backfill: true, fullDocument: 'updateLookup' })
  changesAndDocuments(change: ChangeOf<Order> | BackfillEvent<Order>, context: ChangeContext) {
    if (change.operationType === 'backfill') {
      const total: number = change.fullDocument.total;
      const run: string = change.backfill.run;
      void [total, run, context];
    }
  }

  @OnChange<Order, 'insert'>('orders', {
    operationTypes: ['insert'],
    backfill: { batchSize: 500, filter: { total: { $gt: 0 } } },
    fullDocument: 'updateLookup',
  })
  insertsAndDocuments(change: ChangeOrBackfill<Order, 'insert'>) {
    const document: Order = change.fullDocument;
    void document;
  }

  @OnChange('orders', { operationTypes: ['insert'], backfill: true, fullDocument: 'updateLookup' })
  inferred(change: mongo.ChangeStreamInsertDocument | BackfillEvent) {}

  @OnChange('orders', { backfill: false })
  noBackfill(change: ChangeOf) {}

  // @ts-expect-error a backfill is asked for, the handler takes only changes
  @OnChange<Order>('orders', { backfill: true, fullDocument: 'updateLookup' })
  changesOnly(change: ChangeOf<Order>) {}

  // @ts-expect-error a backfill (options object) is asked for, the handler takes only inserts
  @OnChange('orders', { operationTypes: ['insert'], backfill: {}, fullDocument: 'updateLookup' })
  insertsOnly(change: mongo.ChangeStreamInsertDocument) {}

  // @ts-expect-error backfill of Orders, the handler takes documents of Invoices
  @OnChange<Order>('orders', { backfill: true, fullDocument: 'updateLookup' })
  wrongDocument(change: ChangeOf<Order> | BackfillEvent<Invoice>) {}
}
