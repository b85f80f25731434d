import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MongooseModule } from '@nestjs/mongoose';
import {
  type BackfillEvent,
  type ChangeOf,
  ChangeStreamModule,
  ChangeStreamRegistry,
  OnChange,
} from '../../lib/index.js';

/**
 * The consumer of the backfill fault spec, run as its own process so that a kill is a real kill.
 * For each handled event it appends `<operation> <document id> <v or -> <instance> <ms>` to
 * FAULT_LOG (synchronously: a SIGKILL right after a handler returns cannot lose the line), and
 * prints `ROLE <ms> <role>` when its role changes.
 */
const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const instance = env('FAULT_INSTANCE');

interface Doc {
  _id: number;
  v: number;
}

@Injectable()
class IndexListener {
  @OnChange<Doc>('docs', {
    backfill: { batchSize: Number(process.env.FAULT_BATCH_SIZE ?? 500) },
    fullDocument: 'updateLookup',
  })
  index(change: ChangeOf<Doc> | BackfillEvent<Doc>) {
    const c = change as {
      operationType: string;
      documentKey?: { _id: number };
      fullDocument?: Doc | null;
    };
    const v = c.fullDocument?.v ?? '-';
    // mongo-java-server puts the update spec in an update's documentKey: its looked-up document has the _id.
    const id = c.documentKey?._id ?? c.fullDocument?._id ?? '-';
    appendFileSync(env('FAULT_LOG'), `${c.operationType} ${id} ${v} ${instance} ${Date.now()}\n`);
  }
}

@Module({
  imports: [
    MongooseModule.forRoot(env('MONGODB_URI'), { dbName: env('FAULT_DB') }),
    ChangeStreamModule.forRoot({
      consumer: env('FAULT_CONSUMER'),
      redis: env('REDIS_URL'),
      checkpoint: { maxEvents: 200, intervalMs: 100 },
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      maxAwaitTimeMS: 200,
      leases: { ttlMs: 2000, renewIntervalMs: 500, pollIntervalMs: 200, instanceId: instance },
    }),
  ],
  providers: [IndexListener],
})
class ConsumerModule {}

async function main() {
  const app = await NestFactory.createApplicationContext(ConsumerModule, {
    logger: ['warn', 'error'],
  });
  app.enableShutdownHooks();
  const registry = app.get(ChangeStreamRegistry);
  let role = '';
  const report = () => {
    const status = registry.getStatuses()[0];
    const now = `${status?.role}`;
    if (now !== role) console.log(`ROLE ${Date.now()} docs ${now} ${status?.fence ?? '-'}`);
    role = now;
  };
  setInterval(report, 50).unref();
  report();
  console.log('READY');
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
