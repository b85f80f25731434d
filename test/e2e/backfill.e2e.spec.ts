import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { ConsumerProcess } from '../fault/consumer-process.js';
import { ServerProbe } from '../fixtures/test-app.js';
import { delay, eventually, testEnv, uniqueName } from '../fixtures/test-env.js';

const { EJSON } = mongoose.mongo.BSON;
const HANDLER = 'IndexListener.index';
const DOCS = 20_000;
const BATCH = 500;

interface Line {
  op: string;
  id: number;
  v: string;
  instance: string;
  at: number;
}

const read = (log: string): Line[] => {
  let text: string;
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [op, id, v, instance, at] = l.split(' ');
      return { op, id: Number(id), v, instance, at: Number(at) };
    });
};

/**
 * A backfill under fire, on the real test servers: 20,000 existing documents, a writer that
 * updates, inserts and deletes all along, the consumer killed (SIGKILL) mid-backfill and
 * restarted, then the stream handed over to a second instance (the first stops gracefully).
 */
describe('backfill (separate consumer processes, real servers)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  it('SIGKILL mid-backfill, restart, hand-over: every last state matches the database, the restart resumes after the stored chunk, one instance at a time', async () => {
    const { mongoUri, redisUrl } = testEnv();
    const dbName = uniqueName('backfill');
    const consumer = uniqueName('svc');
    const log = join(mkdtempSync(join(tmpdir(), 'backfill-')), 'handled.log');
    const probe = await ServerProbe.openAt(mongoUri, redisUrl, dbName);
    cleanups.push(() => probe.close());
    const docs = probe.collection('docs');
    // Even ids exist; the writer inserts odd ones, below and above the scan.
    const existing = Array.from({ length: DOCS }, (_, i) => ({ _id: i * 2, v: 0 }));
    for (let i = 0; i < DOCS; i += 5000)
      await docs.insertMany(existing.slice(i, i + 5000) as never[]);
    const start = async (instance: string) => {
      const process = await ConsumerProcess.start(
        {
          MONGODB_URI: mongoUri,
          REDIS_URL: redisUrl,
          FAULT_DB: dbName,
          FAULT_CONSUMER: consumer,
          FAULT_LOG: log,
          FAULT_INSTANCE: instance,
          FAULT_BATCH_SIZE: String(BATCH),
        },
        'backfill-consumer.main.js',
      );
      cleanups.push(() => process.stop());
      return process;
    };

    const t0 = Date.now();
    const phases: string[] = [];
    const phase = (name: string) =>
      phases.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const backfilled = (instance: string) =>
      read(log).filter((l) => l.op === 'backfill' && l.instance === instance);
    const first = await start('A'); // ready once its stream is open: writes from now on are the stream's
    // The writer: updates (60 %), inserts (25 %), deletes (15 %), about 200 writes/s, until told to stop.
    let writing = true;
    let version = 0;
    let nextOdd = 1;
    const live = existing.map((d) => d._id);
    const deleted = new Set<number>();
    const writer = (async () => {
      while (writing) {
        const roll = Math.random();
        const v = ++version;
        if (roll < 0.6) {
          const id = live[Math.floor(Math.random() * live.length)];
          await docs.updateOne({ _id: id as never }, { $set: { v } });
        } else if (roll < 0.85) {
          const id = nextOdd;
          nextOdd += 2 * Math.ceil(Math.random() * 20);
          await docs.insertOne({ _id: id as never, v });
          live.push(id);
        } else {
          const at = Math.floor(Math.random() * live.length);
          const [id] = live.splice(at, 1);
          await docs.deleteOne({ _id: id as never });
          deleted.add(id);
        }
        await delay(5);
      }
    })();
    cleanups.push(async () => {
      writing = false;
      await writer;
    });

    await eventually('A backfilled 4,000 documents', () => backfilled('A').length >= 4000, 30_000);
    await first.kill();
    phase('A killed');
    const atKill = (await probe.storedPosition(consumer, 'docs'))?.backfill?.run;
    expect(atKill?.after).toBeDefined();
    const after = EJSON.parse(atKill!.after!) as number;

    // Two instances restart: one takes the stream once A's lease expires, the other stands by.
    const [a2, b] = await Promise.all([start('A2'), start('B')]);
    await eventually(
      'the restarted backfill is under way',
      () => backfilled('A2').length + backfilled('B').length >= 500,
      30_000,
    );
    const [holder, standby] = backfilled('A2').length > 0 ? [a2, b] : [b, a2];
    phase('restarted');
    await holder.stop(); // SIGTERM: drain, save, release: the standby takes over
    phase('handed over');
    await eventually(
      'the backfill completed',
      async () =>
        ((await probe.storedPosition(consumer, 'docs'))?.backfill?.completed ?? []).includes(
          HANDLER,
        ),
      40_000,
    );
    phase('backfill completed');
    writing = false;
    await writer;
    const lastOf = () => {
      const last = new Map<number, Line>();
      for (const line of read(log)) last.set(line.id, line);
      return last;
    };
    const mismatches = async () => {
      const last = lastOf();
      const wrong: string[] = [];
      for (const doc of await docs.find({}).toArray()) {
        const line = last.get(doc._id as unknown as number);
        if (!line || line.op === 'delete' || line.v !== String(doc.v))
          wrong.push(`${String(doc._id)}: v${doc.v}, last handled ${line?.op} ${line?.v}`);
      }
      for (const id of deleted)
        if (last.get(id)?.op !== 'delete')
          wrong.push(`${id}: deleted, last handled ${last.get(id)?.op}`);
      return wrong;
    };
    let wrong: string[] = [];
    await eventually(
      'B handled every write',
      async () => (wrong = await mismatches()).length === 0,
      20_000,
    ).catch(() => undefined);
    const lines = read(log);
    console.log(
      `[backfill] ${DOCS} documents, ${version} writes, ${lines.length} events handled ` +
        `(${lines.filter((l) => l.op === 'backfill').length} backfill: A ${backfilled('A').length}, A2 ${backfilled('A2').length}, B ${backfilled('B').length}); ` +
        `stored after ${after} at the kill; ${phases.join(', ')}`,
    );
    if (wrong.length > 0) {
      const byInstance = new Map<string, number>();
      for (const l of lines)
        byInstance.set(`${l.instance} ${l.op}`, (byInstance.get(`${l.instance} ${l.op}`) ?? 0) + 1);
      console.log(
        `[backfill] log ${log}; ${JSON.stringify([...byInstance])}; wrong ${JSON.stringify(wrong.slice(0, 8))}`,
      );
      for (const w of wrong.slice(0, 8)) {
        const id = Number(w.split(':')[0]);
        console.log(`[backfill] ${id}: ${JSON.stringify(lines.filter((l) => l.id === id))}`);
      }
    }
    expect(wrong.slice(0, 20)).toEqual([]);
    // The restart resumed after the last acknowledged chunk: nothing at or before it was scanned again.
    const resumed = [...backfilled('A2'), ...backfilled('B')].map((l) => l.id);
    expect(Math.min(...resumed)).toBeGreaterThan(after);
    // ... and what it scanned again beyond what A finished is at most the chunks A had read ahead.
    expect(after).toBeGreaterThan(0);
    // One instance at a time: the instances' backfill periods do not overlap.
    const periods = ['A', 'A2', 'B']
      .map((i) => backfilled(i))
      .filter((l) => l.length > 0)
      .map((l) => [l[0].at, l[l.length - 1].at])
      .sort((x, y) => x[0] - y[0]);
    expect(periods).toHaveLength(3); // A, then both restarted instances backfilled (the hand-over came mid-run)
    for (let i = 1; i < periods.length; i++)
      expect(periods[i][0]).toBeGreaterThanOrEqual(periods[i - 1][1]);
    await standby.stop();
  }, 120_000);
});
