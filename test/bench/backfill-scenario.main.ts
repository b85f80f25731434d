import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MongooseModule } from '@nestjs/mongoose';
import mongoose from 'mongoose';
import { ChangeStreamModule, OnChange } from '../../lib/index.js';

/**
 * One backfill bench scenario in its own process (clean RSS); prints `RESULT <json>`.
 * `find`: a bare `find()` in `_id` order over the collection; `module`: a backfill to a no-op
 * handler (timed from its first document to its last), recording write-to-handler delays of the
 * inserts a writer makes meanwhile (`writtenAt`), if any.
 */
export interface BackfillScenarioArgs {
  kind: 'find' | 'module';
  mongoUri: string;
  redisUrl: string;
  dbName: string;
  collection: string;
  documents: number;
  batchSize: number;
}

export interface BackfillScenarioResult {
  documents: number;
  ms: number;
  memory: MemoryGrowth;
  delays: number[];
}

const args = JSON.parse(process.argv[2]) as BackfillScenarioArgs;

/**
 * Peak growth from `restart()` (the first document: process and app start-up do not count) of
 * RSS and of its parts: the JS heap in use (the documents and events anyone holds, and garbage
 * not collected yet), the heap V8 reserved (`heapTotal`: it grows the young generation and
 * keeps pages after a collection), and memory outside the heap (`external`: Buffers, such as the
 * driver's socket reads and replies).
 */
class Peak {
  private base = process.memoryUsage();
  private peaks = { ...this.base };
  restart(): void {
    (globalThis as { gc?: () => void }).gc?.(); // BENCH_BACKFILL_LIVE: the live heap grows from a collected one
    this.base = process.memoryUsage();
    this.peaks = { ...this.base };
  }
  private readonly timer = setInterval(() => this.sample(), 20);
  sample(): void {
    const now = process.memoryUsage();
    for (const key of ['rss', 'heapUsed', 'heapTotal', 'external'] as const)
      this.peaks[key] = Math.max(this.peaks[key], now[key]);
  }
  /** With `--expose-gc` (BENCH_BACKFILL_LIVE=1): collects, then samples the heap that is still reachable. */
  live(): void {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) return;
    gc();
    this.liveHeap = Math.max(this.liveHeap, process.memoryUsage().heapUsed);
  }
  private liveHeap = 0;
  stop(): MemoryGrowth {
    clearInterval(this.timer);
    this.sample();
    const growth = (key: 'rss' | 'heapUsed' | 'heapTotal' | 'external') =>
      (this.peaks[key] - this.base[key]) / 2 ** 20;
    return {
      rss: growth('rss'),
      heapUsed: growth('heapUsed'),
      heapTotal: growth('heapTotal'),
      external: growth('external'),
      ...(this.liveHeap > 0 && { liveHeap: (this.liveHeap - this.base.heapUsed) / 2 ** 20 }),
    };
  }
}

/** Peak growth in MB over the timed run, of RSS and of the parts `process.memoryUsage()` reports. */
export interface MemoryGrowth {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** Peak of the heap still reachable after a full collection, sampled every 10,000 documents (BENCH_BACKFILL_LIVE=1). */
  liveHeap?: number;
}

/** Every 10,000th document: sample the reachable heap (only with `--expose-gc`). */
const LIVE_EVERY = 10_000;

async function bareFind(): Promise<BackfillScenarioResult> {
  const connection = await mongoose
    .createConnection(args.mongoUri, { dbName: args.dbName })
    .asPromise();
  const peak = new Peak();
  let documents = 0;
  const cursor = connection
    .db!.collection(args.collection)
    .find({}, { readPreference: 'primary' })
    .sort({ _id: 1 })
    .batchSize(args.batchSize);
  // Timed from the first document, as the backfill is (its first chunk's read is not timed either).
  let began = performance.now();
  for await (const doc of cursor) {
    if (doc && documents++ === 0) {
      began = performance.now();
      peak.restart();
    }
    if (documents % LIVE_EVERY === 0) peak.live();
  }
  const ms = performance.now() - began;
  const memory = peak.stop();
  await connection.close();
  return { documents, ms, memory, delays: [] };
}

let peak: Peak | undefined;
const tally = {
  backfilled: 0,
  first: 0,
  last: 0,
  delays: [] as number[],
  done: () => undefined as void,
};
const finished = new Promise<void>((resolve) => (tally.done = resolve));

@Injectable()
class NoOpIndex {
  @OnChange(args.collection, {
    backfill: { batchSize: args.batchSize },
    fullDocument: 'updateLookup',
  })
  index(change: { operationType: string; fullDocument?: { writtenAt?: number } | null }) {
    if (change.operationType === 'backfill') {
      if (tally.backfilled++ === 0) {
        tally.first = performance.now();
        peak?.restart();
      }
      tally.last = performance.now();
      if (tally.backfilled % LIVE_EVERY === 0) peak?.live();
      if (tally.backfilled === args.documents) tally.done();
    } else if (change.operationType === 'insert' && change.fullDocument?.writtenAt) {
      tally.delays.push(Date.now() - change.fullDocument.writtenAt);
    }
  }
}

@Module({
  imports: [
    MongooseModule.forRoot(args.mongoUri, { dbName: args.dbName }),
    ChangeStreamModule.forRoot({ consumer: `bench_${process.pid}`, redis: args.redisUrl }),
  ],
  providers: [NoOpIndex],
})
class BenchModule {}

async function moduleBackfill(): Promise<BackfillScenarioResult> {
  const measured = (peak = new Peak());
  const app = await NestFactory.createApplicationContext(BenchModule, {
    logger: ['warn', 'error'],
  });
  console.log('READY');
  await finished;
  const ms = tally.last - tally.first;
  const memory = measured.stop();
  await app.close();
  return { documents: tally.backfilled, ms, memory, delays: tally.delays };
}

void (args.kind === 'find' ? bareFind() : moduleBackfill()).then(
  (result) => {
    console.log(`RESULT ${JSON.stringify(result)}`);
    process.exit(0);
  },
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
