import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MongooseModule } from '@nestjs/mongoose';
import mongoose, { type mongo } from 'mongoose';
import {
  type ChangeContext,
  ChangeStreamModule,
  ChangeStreamRegistry,
  OnChange,
  OnChangeBatch,
} from '../../lib/index.js';

/**
 * The consumer of the fault-injection and replica suites, run as its own process so that a kill
 * is a real kill. For each handled event it appends
 * `<document id> <resume token as EJSON> <collection> <instance> <start ms> <end ms>` to
 * FAULT_LOG (synchronously, so a SIGKILL right after a handler returns cannot lose the line),
 * and it prints `STATUS <state>` (first stream) and `ROLE <ms> <collection> <role> <fence>`.
 */
const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const collections = (process.env.FAULT_COLLECTIONS ?? 'items').split(',');
const instance = process.env.FAULT_INSTANCE ?? `consumer-${process.pid}`;
const handlerMs = Number(process.env.FAULT_HANDLER_MS ?? 0);

class ItemListener {
  async onItem(change: mongo.ChangeStreamInsertDocument<{ _id: number }>, context: ChangeContext) {
    const start = Date.now();
    if (handlerMs > 0) await new Promise((resolve) => setTimeout(resolve, handlerMs));
    const token = mongoose.mongo.BSON.EJSON.stringify(change._id);
    appendFileSync(
      env('FAULT_LOG'),
      `${change.fullDocument._id} ${token} ${context.collection} ${instance} ${start} ${Date.now()}\n`,
    );
  }
}
// One handler method for every collection of this run (known only now, from the environment).
for (const collection of collections) {
  const descriptor = Object.getOwnPropertyDescriptor(ItemListener.prototype, 'onItem')!;
  OnChange(collection, { operationTypes: ['insert'] })(
    ItemListener.prototype,
    'onItem',
    descriptor,
  );
}
Injectable()(ItemListener);

/**
 * With FAULT_BATCH_LOG: an `@OnChangeBatch` handler beside the per-event one on the first
 * collection, logging each batch's lines (same format) with one synchronous write.
 */
class ItemBatchSink {
  onItems(
    changes: Array<mongo.ChangeStreamInsertDocument<{ _id: number }>>,
    context: ChangeContext,
  ) {
    const start = Date.now();
    const lines = changes.map(
      (change) =>
        `${change.fullDocument._id} ${mongoose.mongo.BSON.EJSON.stringify(change._id)} ${context.collection} ${instance} ${start} ${Date.now()}\n`,
    );
    appendFileSync(env('FAULT_BATCH_LOG'), lines.join(''));
  }
}
OnChangeBatch(collections[0], {
  operationTypes: ['insert'],
  maxSize: Number(process.env.FAULT_BATCH_SIZE ?? 50),
  maxWaitMs: 20,
})(
  ItemBatchSink.prototype,
  'onItems',
  Object.getOwnPropertyDescriptor(ItemBatchSink.prototype, 'onItems')!,
);
Injectable()(ItemBatchSink);

@Module({
  imports: [
    MongooseModule.forRoot(env('MONGODB_URI'), { dbName: env('FAULT_DB') }),
    ChangeStreamModule.forRoot({
      consumer: env('FAULT_CONSUMER'),
      redis: env('REDIS_URL'),
      checkpoint: { maxEvents: Number(process.env.FAULT_MAX_EVENTS ?? 100), intervalMs: 200 },
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      maxAwaitTimeMS: 200,
      // A killed process holds its lease until it expires: short, so the next one takes over quickly.
      leases: {
        ttlMs: Number(process.env.FAULT_LEASE_TTL_MS ?? 2000),
        renewIntervalMs: 500,
        pollIntervalMs: 200,
        instanceId: instance,
      },
    }),
  ],
  providers: [ItemListener, ...(process.env.FAULT_BATCH_LOG ? [ItemBatchSink] : [])],
})
class ConsumerModule {}

async function main() {
  const app = await NestFactory.createApplicationContext(ConsumerModule, {
    logger: ['warn', 'error'],
  });
  app.enableShutdownHooks();
  const registry = app.get(ChangeStreamRegistry);
  let last = '';
  const roles = new Map<string, string>();
  // Polled rather than followed through events: the first role is taken during bootstrap, before anyone could subscribe.
  const report = () => {
    const statuses = registry.getStatuses();
    const state = statuses[0]?.state ?? 'none';
    if (state !== last) console.log(`STATUS ${state}`);
    last = state;
    for (const status of statuses) {
      const role = `${status.role} ${status.role === 'active' ? status.fence : '-'}`;
      if (roles.get(status.collection) !== role)
        console.log(`ROLE ${Date.now()} ${status.collection} ${role}`);
      roles.set(status.collection, role);
    }
  };
  setInterval(report, 50).unref();
  report();
  console.log('READY');
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
