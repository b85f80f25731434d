import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { ConsumerProcess } from '../fault/consumer-process.js';
import {
  awaitDelivery,
  deliveryReport,
  handledIds,
  handledLines,
} from '../fault/delivery-report.js';
import { ServerProbe } from '../fixtures/test-app.js';
import { delay, eventually, testEnv, uniqueName } from '../fixtures/test-env.js';
import { MongoJavaServer } from '../servers/mongo-java-server.js';
import { LocalRedisServer } from '../servers/redis-server.js';

/**
 * Real crashes against real servers: the consumer is a separate Node process
 * (test/fault/consumer.main.ts). Each scenario prints handled / lost / duplicated.
 */
describe('fault injection (separate consumer process, real servers)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  /** Set once a test ended: a body that outlived its timeout must not start more consumers. */
  let ended = false;
  beforeEach(() => {
    ended = false;
  });
  afterEach(async () => {
    ended = true;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  const scenario = async (
    name: string,
    overrides: { mongoUri?: string; redisUrl?: string; leaseTtlMs?: number } = {},
  ) => {
    const { mongoUri, redisUrl } = { ...testEnv(), ...overrides };
    const dbName = uniqueName(name);
    const consumer = uniqueName('svc');
    const log = join(mkdtempSync(join(tmpdir(), 'fault-')), 'handled.log');
    const env: Record<string, string> = {
      MONGODB_URI: mongoUri,
      REDIS_URL: redisUrl,
      FAULT_DB: dbName,
      FAULT_CONSUMER: consumer,
      FAULT_LOG: log,
    };
    if (overrides.leaseTtlMs) env.FAULT_LEASE_TTL_MS = String(overrides.leaseTtlMs);
    const probe = await ServerProbe.openAt(mongoUri, redisUrl, dbName);
    cleanups.push(() => probe.close());
    const start = async () => {
      if (ended) throw new Error('the test already ended');
      const process = await ConsumerProcess.start(env);
      cleanups.push(() => process.stop());
      return process;
    };
    const print = (written: number[], extra = '') => {
      const report = deliveryReport(log, written);
      console.log(
        `[fault:${name}] written ${report.written}, handled ${report.handled}, lost ${report.lost.length}, duplicated ${report.duplicated}${extra}`,
      );
      return report;
    };
    return { consumer, probe, log, start, print, items: probe.collection('items') };
  };
  const range = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => from + i);

  it('SIGKILL at 10 random moments while a 5,000-write backlog drains: nothing lost, duplicates within 2 × maxEvents per kill', async () => {
    const { consumer, probe, log, start, print, items } = await scenario('sigkill');
    let current = await start();
    // A first position must be stored before the first kill (a server without post-batch tokens has none before).
    await items.insertOne({ _id: 0 as never });
    await eventually(
      'first position stored',
      async () => (await probe.storedToken(consumer, 'items')) !== null,
    );

    // As fast as the server takes them: the consumer is always behind, the worst case for the bound.
    const writing = (async () => {
      for (let batch = 0; batch < 50; batch++) {
        await items.insertMany(
          range(batch * 100 + 1, batch * 100 + 100).map((id) => ({ _id: id as never })),
        );
      }
    })();
    const kills = 10;
    for (let k = 0; k < kills; k++) {
      // Kill after a random amount of progress, so every kill lands mid-stream (or at once, if all is handled).
      const target = Math.min(
        handledLines(log).length + 50 + Math.floor(Math.random() * 400),
        5001,
      );
      await eventually(
        `consumer progress before kill ${k + 1}`,
        () => handledIds(log).size >= 5001 || handledLines(log).length >= target,
        30_000,
      );
      await current.kill();
      current = await start();
    }
    await writing;
    const written = range(0, 5000);
    await awaitDelivery(log, written);
    await current.stop();
    const report = print(written, `, kills ${kills}, bound ${kills * 2 * 100}`);
    expect(report.lost).toEqual([]);
    // Each kill can deliver again at most the events past the stored position: 2 × maxEvents (100).
    expect(report.duplicated).toBeLessThanOrEqual(kills * 2 * 100);
  }, 240_000);

  it('Redis stopped for 5 s mid-stream: handling goes on (within the lease TTL), health goes degraded and back, the last handled position is stored', async () => {
    const redis = await LocalRedisServer.start();
    cleanups.push(() => redis.stop());
    // A lease outlasting the outage: handling may go on only while the lease is surely still held.
    const { consumer, probe, log, start, print, items } = await scenario('redis', {
      redisUrl: redis.url,
      leaseTtlMs: 15_000,
    });
    const first = await start();
    let next = 1;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await items.insertOne({ _id: next++ as never });
        await delay(20);
      }
    })();
    await eventually('handling before the outage', () => handledIds(log).size >= 20, 10_000);
    await redis.stop();
    const lastWrittenBefore = next - 1;
    const handledBeforeOutage = handledIds(log).size;
    await eventually(
      'degraded while Redis is down',
      () => first.statuses.includes('degraded'),
      10_000,
    );
    await delay(5000); // the outage itself
    const handledWhileDown = handledIds(log).size - handledBeforeOutage;
    // Writes made after Redis stopped, handled before it came back: the pace depends on the machine, not the count.
    const newHandledWhileDown = [...handledIds(log)].filter((id) => id > lastWrittenBefore).length;
    await redis.resume();
    await eventually('back to open', () => first.statuses.at(-1) === 'open', 15_000);
    writing = false;
    await writer;
    const written = range(1, next - 1);
    await awaitDelivery(log, written);
    await first.stop(); // graceful: the final position is the last handled event
    const report = print(
      written,
      `, handled while down ${handledWhileDown} (${newHandledWhileDown} written during the outage), statuses ${first.statuses.join(' > ')}`,
    );
    expect(report.lost).toEqual([]);
    expect(newHandledWhileDown).toBeGreaterThan(0); // it kept handling with Redis down
    expect(first.statuses.indexOf('degraded')).toBeGreaterThan(first.statuses.indexOf('open'));
    // Redis came back empty (no persistence): the position of the last handled event was stored again.
    const stored = mongoose.mongo.BSON.EJSON.stringify(await probe.storedToken(consumer, 'items'));
    expect(stored).toBe(handledLines(log).at(-1)!.token);
    // A restart replays nothing: the first event it handles is a write made after it started.
    const again = await start();
    await items.insertOne({ _id: next as never });
    await eventually('the write made after the restart', () => handledIds(log).has(next), 20_000);
    await again.stop();
    expect(deliveryReport(log, [...written, next]).handled).toBe(report.handled + 1);
  });

  it('cursors killed by another client (killCursors): reopened, nothing lost', async () => {
    const { probe, log, start, print, items } = await scenario('killcursors');
    const current = await start();
    let killed = 0;
    for (let round = 0; round < 5; round++) {
      await items.insertMany(
        range(round * 100 + 1, round * 100 + 100).map((id) => ({ _id: id as never })),
      );
      killed += await probe.killChangeStreamCursors('items');
      await delay(200);
    }
    const written = range(1, 500);
    await awaitDelivery(log, written);
    await current.stop();
    const report = print(written, `, cursors killed ${killed}`);
    expect(killed).toBeGreaterThan(0);
    expect(report.lost).toEqual([]);
  });

  it('the MongoDB server killed and restarted under a running consumer', async () => {
    // Its own server, so the kill does not disturb the other specs.
    const mongo = await MongoJavaServer.start();
    cleanups.push(() => mongo.stop());
    const { log, start, print, items } = await scenario('mongorestart', { mongoUri: mongo.uri });
    const current = await start();
    await items.insertMany(range(1, 100).map((id) => ({ _id: id as never })));
    await eventually('first batch handled', () => handledIds(log).size === 100, 20_000);
    await mongo.stop();
    await delay(1000);
    await mongo.resume();
    // The driver resumes by itself on this network error (or our supervisor reopens). mongo-java-server
    // restarts empty and does not report the unknown position: it replays its new history from
    // the start. A real mongod resumes after the stored token, or reports ChangeStreamHistoryLost,
    // which the history-lost policy handles (see the policies spec).
    await items.insertMany(range(101, 200).map((id) => ({ _id: id as never })));
    await eventually(
      'second batch handled',
      () => range(101, 200).every((id) => handledIds(log).has(id)),
      30_000,
    );
    await current.stop();
    const report = print(
      range(1, 200),
      `, server mongo-java-server, statuses ${current.statuses.join(' > ')}`,
    );
    expect(report.lost).toEqual([]);
  });
});
