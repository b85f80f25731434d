import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { getConnectionToken, MongooseModule } from '@nestjs/mongoose';
import { Redis } from 'ioredis';
import mongoose, { type Connection, type mongo } from 'mongoose';
import {
  ChangeStreamModule,
  positionKey,
  encodePosition,
  OnChange,
  OnChangeBatch,
} from '../../lib/index.js';
import { OrderCheck } from './backlog.js';
import type { ScenarioArgs, ScenarioResult } from './scenario.js';

/** One bench scenario in its own process (clean RSS); prints `RESULT <json>`. */
const args = JSON.parse(process.argv[2]) as ScenarioArgs;
const { EJSON } = mongoose.mongo.BSON;
const start = EJSON.parse(args.start) as mongo.ResumeToken;
/** BENCH_BATCH: the same cursor batch size for the module and the bare loops. */
const batchOption = process.env.BENCH_BATCH ? { batchSize: Number(process.env.BENCH_BATCH) } : {};
/** Events handled before the clock starts (JIT warm-up, see docs/throughput.md, "Benchmark"); RSS is measured from the first. */
const warmEvents = args.warmEvents ?? 0;
/**
 * BENCH_CALLGRIND: under valgrind, the bench zeroes the instruction counters when the clock starts
 * and dumps them when it stops; this process stands still (blocked) until it did, so the dump
 * holds exactly the timed drain.
 */
function awaitCallgrind(step: 'start' | 'stop'): void {
  if (!args.callgrindFlagPrefix) return;
  console.log(`CALLGRIND ${step}`);
  const flag = `${args.callgrindFlagPrefix}-${process.pid}-${step}`;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(flag)) Atomics.wait(cell, 0, 0, 20);
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Spends `micros` µs of CPU (a bulk write's per-document work), blocking like real work does. */
function busy(micros: number): void {
  if (micros <= 0) return;
  const until = performance.now() + micros / 1000;
  while (performance.now() < until);
}
const busyMicros = args.busyMicrosPerEvent ?? 0;

/** Counts events, checks per-document order, records live delays; resolves once `size` arrived. */
class Tally {
  readonly order = new OrderCheck();
  readonly delays: number[] = [];
  count = 0;
  /** When the first timed event (after `warmEvents`) reached a handler: the drain is timed from there. */
  firstAt = 0;
  endedAt = 0;
  /** Events finished when the clock started: the timed ones are those after. */
  countAtStart = 0;
  done!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.done = resolve));

  /** RSS when the first event arrived: growth is measured from there, over the drain. */
  rssAtFirst = 0;
  /** This process's CPU time over the timed drain (µs, user + system): its own cost, apart from the servers'. */
  private cpuAtFirst: NodeJS.CpuUsage | undefined;
  cpuMicros = 0;

  /** Handler calls since the clock started. */
  calls = 0;

  async handle(change: mongo.ChangeStreamDocument): Promise<void> {
    this.arrive(change);
    if (this.firstAt !== 0) this.calls++;
    const id = (change as { documentKey?: { _id: unknown } }).documentKey?._id;
    this.order.begin(change.operationType, id);
    if (args.handlerDelayMs > 0) await sleep(args.handlerDelayMs);
    busy(busyMicros);
    this.order.end(change.operationType, id);
    this.finish();
  }

  /** A batch handler: one call's wait for all, the per-event work for each, in order. */
  async handleBatch(changes: mongo.ChangeStreamDocument[]): Promise<void> {
    const clockWasRunning = this.firstAt !== 0;
    for (const change of changes) this.arrive(change);
    // The clock starts with this call: its events were read before, so they are not counted.
    if (!clockWasRunning && this.firstAt !== 0) this.countAtStart += changes.length;
    else if (this.firstAt !== 0) this.calls++;
    for (const change of changes) {
      const id = (change as { documentKey?: { _id: unknown } }).documentKey?._id;
      this.order.begin(change.operationType, id);
      this.order.end(change.operationType, id);
    }
    if (args.handlerDelayMs > 0) await sleep(args.handlerDelayMs);
    busy(busyMicros * changes.length);
    for (let i = 0; i < changes.length; i++) this.finish();
  }

  private arrive(change: mongo.ChangeStreamDocument): void {
    if (this.count === 0 && this.rssAtFirst === 0) this.rssAtFirst = process.memoryUsage().rss;
    // `>=`: with events in flight, several may finish between two calls, stepping past `warmEvents`.
    if (this.firstAt === 0 && this.count >= warmEvents) {
      awaitCallgrind('start'); // before the clock: the wait is not timed
      this.countAtStart = this.count;
      this.firstAt = performance.now();
      this.cpuAtFirst = process.cpuUsage();
    }
    if (args.mode === 'live' && change.operationType === 'insert') {
      const writtenAt = (change.fullDocument as { writtenAt?: number }).writtenAt;
      if (writtenAt) this.delays.push(Date.now() - writtenAt);
    }
  }

  private finish(): void {
    if (++this.count === args.size) {
      this.endedAt = performance.now();
      const cpu = process.cpuUsage(this.cpuAtFirst);
      this.cpuMicros = cpu.user + cpu.system;
      awaitCallgrind('stop');
      this.done();
    }
  }
}
const tally = new Tally();

async function bareLoop(withSet: boolean): Promise<void> {
  const connection = await mongoose
    .createConnection(args.mongoUri, { dbName: args.dbName })
    .asPromise();
  await driverLoop(connection, withSet);
  await connection.close();
}

/** The same loop in a Nest application over MongooseModule's connection: a hand-rolled watcher in a Nest app. */
async function bareLoopInNest(): Promise<void> {
  @Module({ imports: [MongooseModule.forRoot(args.mongoUri, { dbName: args.dbName })] })
  class BareModule {}
  const app = await NestFactory.createApplicationContext(BareModule, { logger: ['error'] });
  await driverLoop(app.get<Connection>(getConnectionToken()), false);
  await app.close();
}

async function driverLoop(connection: Connection, withSet: boolean): Promise<void> {
  const redis = withSet ? new Redis(args.redisUrl) : undefined;
  const stream = connection
    .db!.collection(args.collection)
    .watch([], { resumeAfter: start, maxAwaitTimeMS: 200, ...batchOption });
  console.log('READY');
  while (tally.count < args.size) {
    const change = await stream.tryNext();
    if (!change) continue;
    await tally.handle(change);
    if (redis) await redis.set(`bench:${args.collection}`, EJSON.stringify(change._id)); // the hand-rolled way
  }
  await stream.close();
  redis?.disconnect();
}

@Injectable()
class BenchListener {
  @OnChange('bench')
  handle(change: mongo.ChangeStreamDocument) {
    return tally.handle(change);
  }
}

@Injectable()
class BenchBatchSink {
  @OnChangeBatch('bench', {
    maxSize: args.batch?.maxSize ?? 1,
    maxWaitMs: args.batch?.maxWaitMs ?? 0,
  })
  handle(changes: mongo.ChangeStreamDocument[]) {
    return tally.handleBatch(changes);
  }
}

async function withModule(): Promise<void> {
  const consumer = `bench-${process.pid}`;
  const redis = new Redis(args.redisUrl);
  await redis.set(
    positionKey('change-stream', consumer, args.dbName, args.collection),
    encodePosition({ token: start }),
  );
  redis.disconnect();
  @Module({
    imports: [
      MongooseModule.forRoot(args.mongoUri, { dbName: args.dbName }),
      ChangeStreamModule.forRoot({
        consumer,
        redis: args.redisUrl,
        concurrency: args.concurrency ?? 1,
        maxAwaitTimeMS: 200,
        ...(process.env.BENCH_MAX_EVENTS
          ? { checkpoint: { maxEvents: Number(process.env.BENCH_MAX_EVENTS) } }
          : {}),
        ...(process.env.BENCH_TELEMETRY === '0' ? { telemetry: false } : {}),
        ...(process.env.BENCH_LEASES === '0' ? { leases: false as const } : {}),
        ...batchOption,
      }),
    ],
    providers: [args.batch ? BenchBatchSink : BenchListener],
  })
  class BenchModule {}
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: ['error'] });
  console.log('READY');
  await tally.finished;
  await app.close();
}

async function main(): Promise<void> {
  if (args.collection !== 'bench') throw new Error('the bench listener watches "bench"');
  const rssBaseline = process.memoryUsage().rss;
  let rssPeak = rssBaseline;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 20);
  if (args.kind === 'module') await withModule();
  else if (args.kind === 'bare-nest') await bareLoopInNest();
  else await bareLoop(args.kind === 'seed-set');
  clearInterval(sampler);
  const result: ScenarioResult = {
    events: tally.count - tally.countAtStart,
    ms: tally.endedAt - tally.firstAt,
    delays: tally.delays,
    rssBaselineMb: (tally.rssAtFirst || rssBaseline) / 2 ** 20,
    rssPeakMb: rssPeak / 2 ** 20,
    orderViolations: tally.order.violations,
    cpuMicros: tally.cpuMicros,
    calls: tally.calls,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
