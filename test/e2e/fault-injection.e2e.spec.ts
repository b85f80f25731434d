import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ConsumerProcess } from '../fault/consumer-process.js';
import { deliveryReport, handledIds } from '../fault/delivery-report.js';
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
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  const scenario = async (name: string, overrides: { mongoUri?: string; redisUrl?: string } = {}) => {
    const { mongoUri, redisUrl } = { ...testEnv(), ...overrides };
    const dbName = uniqueName(name);
    const consumer = uniqueName('svc');
    const log = join(mkdtempSync(join(tmpdir(), 'fault-')), 'handled.log');
    const env = { MONGODB_URI: mongoUri, REDIS_URL: redisUrl, FAULT_DB: dbName, FAULT_CONSUMER: consumer, FAULT_LOG: log };
    const probe = await ServerProbe.openAt(mongoUri, redisUrl, dbName);
    cleanups.push(() => probe.close());
    const start = async () => {
      const process = await ConsumerProcess.start(env);
      cleanups.push(() => process.stop());
      return process;
    };
    const print = (written: number[], extra = '') => {
      const report = deliveryReport(log, written);
      console.log(`[fault:${name}] written ${report.written}, handled ${report.handled}, lost ${report.lost.length}, duplicated ${report.duplicated}${extra}`);
      return report;
    };
    return { consumer, probe, log, start, print, items: probe.collection('items') };
  };
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  it('SIGKILL at 10 random moments during 5,000 writes: nothing lost, duplicates bounded by the checkpoint batch', async () => {
    const { consumer, probe, log, start, print, items } = await scenario('sigkill');
    let current = await start();
    // A first position must be stored before the first kill (a server without post-batch tokens has none before).
    await items.insertOne({ _id: 0 as never });
    await eventually('first position stored', async () => (await probe.storedToken(consumer, 'items')) !== null);

    const writing = (async () => {
      for (let batch = 0; batch < 200; batch++) {
        await items.insertMany(range(batch * 25 + 1, batch * 25 + 25).map((id) => ({ _id: id as never })));
        await delay(40);
      }
    })();
    const kills = 10;
    for (let k = 0; k < kills; k++) {
      await delay(200 + Math.random() * 800);
      await current.kill();
      current = await start();
    }
    await writing;
    const written = range(0, 5000);
    await eventually('every write handled', () => handledIds(log).size === written.length, 60_000);
    await current.stop();
    const report = print(written, `, kills ${kills}`);
    expect(report.lost).toEqual([]);
    // Each kill can replay at most one unsaved checkpoint batch (maxEvents 100).
    expect(report.duplicated).toBeLessThanOrEqual(kills * 100);
  });

  it('Redis stopped for 5 s mid-stream: handling goes on, health goes degraded and back, the right position is stored', async () => {
    const redis = await LocalRedisServer.start();
    cleanups.push(() => redis.stop());
    const { consumer, probe, log, start, print, items } = await scenario('redis', { redisUrl: redis.url });
    const first = await start();
    let next = 1;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await items.insertOne({ _id: next++ as never });
        await delay(20);
      }
    })();
    await delay(1000);
    await redis.stop();
    await delay(5000);
    const handledWhileDown = handledIds(log).size;
    await redis.resume();
    await delay(1500);
    writing = false;
    await writer;
    const written = range(1, next - 1);
    await eventually('every write handled', () => handledIds(log).size === written.length, 30_000);
    await eventually('back to open', () => first.statuses.at(-1) === 'open', 15_000);
    await first.stop();
    const report = print(written, `, statuses ${first.statuses.join(' > ')}`);
    expect(report.lost).toEqual([]);
    expect(handledWhileDown).toBeGreaterThan(50); // it kept handling with Redis down
    expect(first.statuses).toEqual(expect.arrayContaining(['open', 'degraded']));
    expect(first.statuses.indexOf('degraded')).toBeGreaterThan(first.statuses.indexOf('open'));
    // Redis came back empty (no persistence): the position of the last write was stored again.
    expect(await probe.storedToken(consumer, 'items')).not.toBeNull();
    const again = await start();
    await delay(1000);
    await again.stop();
    expect(deliveryReport(log, written).handled).toBe(report.handled); // nothing replayed
  });

  it('cursors killed by another client (killCursors): reopened, nothing lost', async () => {
    const { probe, log, start, print, items } = await scenario('killcursors');
    const current = await start();
    let killed = 0;
    for (let round = 0; round < 5; round++) {
      await items.insertMany(range(round * 100 + 1, round * 100 + 100).map((id) => ({ _id: id as never })));
      killed += await probe.killChangeStreamCursors('items');
      await delay(200);
    }
    const written = range(1, 500);
    await eventually('every write handled', () => handledIds(log).size === written.length, 30_000);
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
    await eventually('second batch handled', () => range(101, 200).every((id) => handledIds(log).has(id)), 30_000);
    await current.stop();
    const report = print(range(1, 200), `, server mongo-java-server, statuses ${current.statuses.join(' > ')}`);
    expect(report.lost).toEqual([]);
  });
});
