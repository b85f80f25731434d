import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MongooseModule } from '@nestjs/mongoose';
import mongoose, { type mongo } from 'mongoose';
import { ChangeStreamModule, ChangeStreamRegistry, OnChange } from '../../lib/index.js';

/**
 * The consumer of the fault-injection suite, run as its own process so that a kill is a real
 * kill. It appends `<document id> <resume token as EJSON>` to FAULT_LOG for each handled event
 * (synchronously, so a SIGKILL right after a handler returns cannot lose the line) and prints
 * `STATUS <state>` on every change.
 */
const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

@Injectable()
class ItemListener {
  @OnChange('items', { operationTypes: ['insert'] })
  onItem(change: mongo.ChangeStreamInsertDocument<{ _id: number }>) {
    appendFileSync(env('FAULT_LOG'), `${change.fullDocument._id} ${mongoose.mongo.BSON.EJSON.stringify(change._id)}\n`);
  }
}

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
      leases: { ttlMs: Number(process.env.FAULT_LEASE_TTL_MS ?? 2000), renewIntervalMs: 500, pollIntervalMs: 200, instanceId: process.env.FAULT_INSTANCE ?? `consumer-${process.pid}` },
    }),
  ],
  providers: [ItemListener],
})
class ConsumerModule {}

async function main() {
  const app = await NestFactory.createApplicationContext(ConsumerModule, { logger: ['warn', 'error'] });
  app.enableShutdownHooks();
  const registry = app.get(ChangeStreamRegistry);
  let last = '';
  const report = () => {
    const state = registry.getStatuses()[0]?.state ?? 'none';
    if (state !== last) console.log(`STATUS ${state}`);
    last = state;
  };
  setInterval(report, 50).unref();
  report();
  console.log('READY');
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
