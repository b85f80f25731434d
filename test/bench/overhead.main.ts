import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import mongoose from 'mongoose';
import { resolveOptions } from '../../lib/options/module-options.js';
import { InMemoryDeadLetterStore, InMemoryPositionStore } from '../../lib/index.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { createCollectionStream } from '../../lib/stream/create-collection-stream.js';
import { planStreams } from '../../lib/stream/stream-plan.js';
import { databasePlans } from '../../lib/stream/database-plan.js';
import { streamModeOf } from '../../lib/options/streams-option.js';
import { FakeServer, inCollection, insert } from '../fixtures/fake-change-stream.js';
import { median } from './percentiles.js';

const { BSON } = mongoose.mongo;

/**
 * `npm run bench:overhead`: the module's own CPU time per event, without servers. The same
 * in-memory events (the driver fake, `test/fixtures/fake-change-stream.ts`) are read by a bare
 * `tryNext()` loop and by a `CollectionStream` (built by `createCollectionStream`) with a no-op handler and checkpoints on (in-memory
 * store); the difference per event is what the module adds to every event on a real server.
 */
const EVENTS = Number(process.env.OVERHEAD_EVENTS ?? 200_000);
const ROUNDS = Number(process.env.OVERHEAD_ROUNDS ?? 7);
const BATCH = 1000;
Logger.overrideLogger(['error']);

const events = Array.from({ length: EVENTS }, (_, i) => insert(i + 1));
/** As a database stream reads them: with their namespace. */
const namespaced = events.map((e) => inCollection('bench', e));
const batches = (of = events) =>
  Array.from({ length: EVENTS / BATCH }, (_, b) => of.slice(b * BATCH, (b + 1) * BATCH));
/** The handler both sides call: counts, and tells when the last event arrived. */
const tally = { handled: 0, started: 0, done: () => undefined as void };
/** CPU time (user + system) in ms: steadier than wall time on a shared machine. */
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const count = () => {
  if (tally.handled++ === 0) tally.started = cpuMs();
  if (tally.handled === EVENTS) tally.done();
};
/**
 * OVERHEAD_DECODE=1: both sides also decode a change event of about 1 KB from BSON per event, as
 * the driver does for each event it hands out, so caches and the garbage collector are as busy
 * as on a server (the in-memory events alone stay hot in the CPU's caches).
 */
const decode = process.env.OVERHEAD_DECODE
  ? (() => {
      const bytes = BSON.serialize({
        ...insert(1),
        fullDocument: {
          _id: 1,
          name: 'x'.repeat(600),
          tags: Array.from({ length: 20 }, (_, i) => `tag-${i}`),
          at: new Date(),
        },
      });
      return () => BSON.deserialize(bytes);
    })()
  : () => undefined;
const counted = () => {
  decode();
  count();
};
/** OVERHEAD_SYNC=1: a handler that returns no promise. */
const handle = process.env.OVERHEAD_SYNC ? counted : async (_change: unknown) => counted();

async function bare(): Promise<number> {
  const server = new FakeServer([{ aggregate: {}, getMores: batches() }]);
  const cursor = server.factory([], { resumeAfter: { _data: 't0' } });
  tally.handled = 0;
  while (tally.handled < EVENTS) {
    const change = await cursor.tryNext();
    if (change) await handle(change);
  }
  return cpuMs() - tally.started;
}

/** A no-op `@OnChangeBatch` handler: the same per-event work, once per event of each batch. */
const handleBatch = process.env.OVERHEAD_SYNC
  ? (changes: unknown) => (changes as unknown[]).forEach(counted)
  : async (changes: unknown) => (changes as unknown[]).forEach(counted);

async function module(
  concurrency: number,
  batch?: { maxSize: number },
  streams: 'collection' | 'database' = 'collection',
): Promise<number> {
  tally.handled = 0;
  const finished = new Promise<void>((resolve) => (tally.done = resolve));
  const handler: ChangeHandler = {
    name: 'Bench.handle',
    collection: 'bench',
    connectionName: 'default',
    options: {},
    invoke: batch ? handleBatch : handle,
    ...(batch && { batch: { maxSize: batch.maxSize, maxWaitMs: 50 } }),
  };
  const tokens = new InMemoryPositionStore();
  await tokens.save('cs:bench', { token: { _data: 't0' } });
  const options = resolveOptions({
    consumer: 'bench',
    concurrency,
    leases: false,
    telemetry: false,
    streams,
  });
  const server = new FakeServer([
    { aggregate: {}, getMores: batches(streams === 'database' ? namespaced : events) },
  ]);
  const stream = createCollectionStream({
    plan: databasePlans(planStreams([handler]), streamModeOf(options.streams))[0],
    database: 'db',
    key: 'cs:bench',
    store: tokens,
    deadLetters: new InMemoryDeadLetterStore(),
    options,
    openCursor: server.factory,
    emit: () => undefined,
  });
  stream.start();
  await finished;
  const ms = cpuMs() - tally.started;
  await stream.stop(1000);
  return ms;
}

async function main(): Promise<void> {
  const rows: Array<[string, () => Promise<number>]> = [
    ['bare tryNext() loop', bare],
    ['module, concurrency 1', () => module(1)],
    ['module, concurrency 8', () => module(8)],
    ['module, batch handler (maxSize 500)', () => module(1, { maxSize: 500 })],
    ['module, database stream, concurrency 8', () => module(8, undefined, 'database')],
  ];
  // OVERHEAD_ONLY=<regex>: run only those rows (for a profile); the bare loop always runs.
  const only = new RegExp(process.env.OVERHEAD_ONLY ?? '.');
  rows.splice(1, rows.length, ...rows.slice(1).filter(([name]) => only.test(name)));
  const times = new Map(rows.map(([name]) => [name, [] as number[]]));
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [name, run] of rows) {
      const ms = await run();
      if (round > 0) times.get(name)!.push(ms); // round 0 warms the JIT up
    }
  }
  const bareUs = (median(times.get(rows[0][0])!) * 1000) / EVENTS;
  console.log(
    `[overhead] ${EVENTS} in-memory events${process.env.OVERHEAD_DECODE ? ', each also decoded from BSON' : ''}, median of ${ROUNDS} rounds, Node ${process.version}`,
  );
  for (const [name] of rows) {
    const us = (median(times.get(name)!) * 1000) / EVENTS;
    console.log(
      `${name.padEnd(36)} ${us.toFixed(2).padStart(6)} µs CPU/event  ${name === rows[0][0] ? '' : `+${(us - bareUs).toFixed(2)} µs over bare`}`,
    );
  }
}

void main().catch((error) => {
  console.error(error);
  process.exit(1);
});
