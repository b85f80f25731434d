import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { MongooseModule } from '@nestjs/mongoose';
import { ChangeStreamModule, OnChange } from '../../lib/index.js';
import {
  collectionName,
  type ManyCollectionsArgs,
  type ManyCollectionsResult,
} from './many-collections.js';

const args = JSON.parse(process.argv[2]) as ManyCollectionsArgs;
let events = 0;
let firstAt = 0;
let lastAt = 0;
let firstCpu: NodeJS.CpuUsage | undefined;
let drainCpu: NodeJS.CpuUsage | undefined;
let drained!: () => void;
const done = new Promise<void>((resolve) => (drained = resolve));

/** One `@OnChange` method per collection, declared the way a user would, only in a loop. */
@Injectable()
class Sink {}
for (let i = 0; i < args.collections; i++) {
  const key = `on_${collectionName(i)}`;
  Object.defineProperty(Sink.prototype, key, {
    configurable: true,
    writable: true,
    value: () => {
      lastAt = performance.now();
      if (events++ === 0) [firstAt, firstCpu] = [lastAt, process.cpuUsage()];
      if (events === args.expected) {
        drainCpu = process.cpuUsage(firstCpu);
        drained();
      }
    },
  });
  const decorate = OnChange(collectionName(i)) as MethodDecorator;
  decorate(Sink.prototype, key, Object.getOwnPropertyDescriptor(Sink.prototype, key)!);
}

async function main(): Promise<void> {
  @Module({
    imports: [
      MongooseModule.forRoot(args.mongoUri, { dbName: args.dbName }),
      ChangeStreamModule.forRoot({
        consumer: args.consumer,
        redis: args.redisUrl,
        // The default is `collection`: named only when it is not, so this runs before `streams` exists too.
        ...(args.streams === 'database' ? ({ streams: 'database' } as object) : {}),
        // BENCH_HEADROOM=0: without the oplog sampler (one per connection, in both modes).
        ...(process.env.BENCH_HEADROOM === '0' ? { historyHeadroom: false as const } : {}),
      }),
    ],
    providers: [Sink],
  })
  class ManyModule {}
  const began = performance.now();
  const app = await NestFactory.createApplicationContext(ManyModule, { logger: ['error'] });
  const startupMs = performance.now() - began;
  if (args.phase === 'idle' && args.settleSeconds)
    await new Promise((resolve) => setTimeout(resolve, args.settleSeconds! * 1000));
  const gc = { ms: 0, major: 0 };
  const count = (entries: PerformanceEntry[]) => {
    for (const entry of entries) {
      gc.ms += entry.duration;
      const { kind } = (entry as unknown as { detail: { kind: number } }).detail;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.major++;
    }
  };
  const gcs = new PerformanceObserver((list) => count(list.getEntries()));
  gcs.observe({ entryTypes: ['gc'] });
  const cpu = process.cpuUsage();
  console.log('READY');
  if (args.phase === 'idle')
    await new Promise((resolve) => setTimeout(resolve, (args.idleSeconds ?? 0) * 1000));
  if (args.phase === 'drain') await done;
  const used = process.cpuUsage(cpu);
  count(gcs.takeRecords()); // those of the window's last moments, not delivered yet
  gcs.disconnect();
  // The idle window ends here, before the close (its killCursors and disconnects are not idling).
  console.log('IDLE_DONE');
  const result: ManyCollectionsResult = {
    startupMs,
    cpuMicros: used.user + used.system,
    gcMs: gc.ms,
    majorGcs: gc.major,
    events,
    ...(args.phase === 'drain' && {
      drainMs: lastAt - firstAt,
      drainCpuMicros: drainCpu ? drainCpu.user + drainCpu.system : undefined,
    }),
  };
  await app.close();
  console.log(`RESULT ${JSON.stringify(result)}`);
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
