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
  rssGrowthMb: number;
  delays: number[];
}

const args = JSON.parse(process.argv[2]) as BackfillScenarioArgs;

/** Peak RSS growth from `restart()` (the first document: process and app start-up do not count). */
class Peak {
  baseline = process.memoryUsage().rss;
  peak = this.baseline;
  restart(): void {
    this.baseline = this.peak = process.memoryUsage().rss;
  }
  private readonly timer = setInterval(() => this.sample(), 20);
  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage().rss);
  }
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return (this.peak - this.baseline) / 2 ** 20;
  }
}

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
  for await (const doc of cursor)
    if (doc && documents++ === 0) {
      began = performance.now();
      peak.restart();
    }
  const ms = performance.now() - began;
  const rssGrowthMb = peak.stop();
  await connection.close();
  return { documents, ms, rssGrowthMb, delays: [] };
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
  const rssGrowthMb = measured.stop();
  await app.close();
  return { documents: tally.backfilled, ms, rssGrowthMb, delays: tally.delays };
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
