import { Injectable, Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { type ChangeContext, OnChange } from '../../lib/index.js';
import type { Order } from './order.schema.js';

type OrderDoc = Order & { _id: unknown };

/**
 * Keeps a read model (revenue per customer) in step with the `orders` collection.
 * Idempotent by design: it recomputes from the full document, so a replayed event is harmless.
 */
@Injectable()
export class OrderTotalsListener {
  private readonly logger = new Logger(OrderTotalsListener.name);
  private readonly orders = new Map<string, OrderDoc>();
  handled = 0;

  @OnChange('orders', {
    operationTypes: ['insert', 'update', 'replace', 'delete'],
    fullDocument: 'updateLookup',
  })
  onOrderChange(change: mongo.ChangeStreamDocument<OrderDoc>, context: ChangeContext): void {
    const fullDocument = 'fullDocument' in change ? change.fullDocument : undefined;
    const id = String(
      fullDocument?._id ?? (change as { documentKey?: { _id: unknown } }).documentKey?._id,
    );
    if (change.operationType === 'delete') this.orders.delete(id);
    else if (fullDocument) this.orders.set(id, fullDocument);
    this.handled++;
    this.logger.log(
      `${change.operationType} order ${id} (${context.database}.${context.collection}) -> ${JSON.stringify(this.totals())}`,
    );
  }

  /** The order as the last event showed it, if one was handled. */
  seen(id: unknown): OrderDoc | undefined {
    return this.orders.get(String(id));
  }

  /** Revenue per customer over orders that are not cancelled. */
  totals(): Record<string, number> {
    const totals: Record<string, number> = {};
    for (const order of this.orders.values()) {
      if (order.status !== 'cancelled')
        totals[order.customer] = (totals[order.customer] ?? 0) + order.total;
    }
    return totals;
  }
}
