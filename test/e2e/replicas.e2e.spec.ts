import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { positionKey, decodePosition } from '../../lib/index.js';
import { ConsumerProcess } from '../fault/consumer-process.js';
import { awaitDelivery, handledLines, type HandledLine } from '../fault/delivery-report.js';
import { KeyWrites } from '../fixtures/key-writes.js';
import { ServerProbe } from '../fixtures/test-app.js';
import { delay, eventually, testEnv, uniqueName } from '../fixtures/test-env.js';

/** The lease timing the consumer processes use (test/fault/consumer.main.ts). */
const TTL_MS = 2000;
const RENEW_MS = 500;
const POLL_MS = 200;

/**
 * Several consumer processes of one consumer name against real servers (leases on, as by
 * default with Redis). Each handler call is logged with its instance and time, so the specs can
 * check who handled what, when, and that no two instances ever handled one collection at once.
 */
describe('replicas: one active consumer per stream (separate processes, real servers)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  let ended = false;
  beforeEach(() => {
    ended = false;
  });
  afterEach(async () => {
    ended = true;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  async function scenario(
    name: string,
    collections: string[],
    extraEnv: Record<string, string> = {},
  ) {
    const { mongoUri, redisUrl } = testEnv();
    const dbName = uniqueName(name);
    const consumer = uniqueName('svc');
    const log = join(mkdtempSync(join(tmpdir(), 'replicas-')), 'handled.log');
    const probe = await ServerProbe.open(dbName);
    cleanups.push(() => probe.close());
    const base = {
      MONGODB_URI: mongoUri,
      REDIS_URL: redisUrl,
      FAULT_DB: dbName,
      FAULT_CONSUMER: consumer,
      FAULT_LOG: log,
      FAULT_COLLECTIONS: collections.join(','),
      ...extraEnv,
    };
    const start = async (instance: string) => {
      if (ended) throw new Error('the test already ended');
      const process = await ConsumerProcess.start({ ...base, FAULT_INSTANCE: instance });
      cleanups.push(() => process.stop());
      return process;
    };
    let next = 1;
    let writing = false;
    const written: Array<{ collection: string; id: number }> = [];
    let writer: Promise<void> = Promise.resolve();
    const startWriting = (everyMs = 10) => {
      writing = true;
      writer = (async () => {
        while (writing) {
          const collection = collections[next % collections.length];
          await probe.collection(collection).insertOne({ _id: next as never });
          written.push({ collection, id: next++ });
          await delay(everyMs);
        }
      })();
    };
    const stopWriting = async () => {
      writing = false;
      await writer;
    };
    cleanups.push(stopWriting); // runs before the probe closes
    return { consumer, dbName, probe, log, start, startWriting, stopWriting, written };
  }

  function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
    const groups = new Map<string, T[]>();
    for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
    return groups;
  }

  /** Per collection, no call of one instance overlaps in time with a call of another. */
  function overlaps(lines: HandledLine[]): number {
    let count = 0;
    const byCollection = groupBy(lines, (l) => l.collection);
    for (const calls of byCollection.values()) {
      const sorted = [...calls].sort((a, b) => a.start - b.start);
      for (let i = 0; i < sorted.length; i++) {
        for (let j = i + 1; j < sorted.length && sorted[j].start <= sorted[i].end; j++) {
          if (sorted[j].instance !== sorted[i].instance) count++;
        }
      }
    }
    return count;
  }

  function report(
    name: string,
    written: Array<{ collection: string; id: number }>,
    lines: HandledLine[],
    extra: string,
  ) {
    const seen = new Map<string, number>();
    for (const line of lines)
      seen.set(
        `${line.collection}/${line.id}`,
        (seen.get(`${line.collection}/${line.id}`) ?? 0) + 1,
      );
    const lost = written
      .filter((w) => !seen.has(`${w.collection}/${w.id}`))
      .map((w) => `${w.collection}/${w.id}`);
    const duplicated = [...seen.values()].reduce((sum, n) => sum + n - 1, 0);
    const byInstance = Object.fromEntries(
      [...groupBy(lines, (l) => l.instance)].map(([k, v]) => [k, v.length]),
    );
    console.log(
      `[replicas:${name}] written ${written.length}, handled ${lines.length} ${JSON.stringify(byInstance)}, lost ${lost.length}, duplicated ${duplicated}, overlaps ${overlaps(lines)}${extra}`,
    );
    return { lost, duplicated };
  }

  it('spreads streams over two instances, hands them over on SIGTERM within one renew interval, loses nothing, duplicates nothing', async () => {
    const collections = ['c1', 'c2', 'c3', 'c4'];
    const { log, start, startWriting, stopWriting, written } = await scenario(
      'spread',
      collections,
    );
    const a = await start('A');
    const b = await start('B');
    startWriting();
    const startedAt = Date.now();
    // Fair share: 4 streams, 2 instances → 2 each. A started first and took all; it hands two over.
    const holders = () =>
      new Set(
        collections.map(
          (c) =>
            handledLines(log)
              .filter((l) => l.collection === c && l.start > Date.now() - 400)
              .at(-1)?.instance,
        ),
      );
    await eventually(
      'both instances active',
      () => holders().has('A') && holders().has('B'),
      20_000,
    );
    const spreadMs = Date.now() - startedAt;
    const active = (p: ConsumerProcess) =>
      collections.filter(
        (c) => p.roles.filter((r) => r.collection === c).at(-1)?.role === 'active',
      );
    await eventually(
      'two streams each',
      () => active(a).length === 2 && active(b).length === 2,
      20_000,
    );
    await delay(300);

    const stoppingAt = Date.now();
    await a.stop(); // SIGTERM: drain, save, release
    const releasedAt = a.exitedAt!;
    await eventually('B active on all four', () => active(b).length === 4, 10_000);
    // A's two streams; B may take them before A's process has exited (A releases, then exits): that counts as 0.
    const takeovers = collections.filter(
      (c) => !b.roles.some((r) => r.collection === c && r.role === 'active' && r.at < stoppingAt),
    );
    expect(takeovers).toHaveLength(2);
    const takeoverMs = Math.max(
      0,
      ...takeovers.map(
        (c) =>
          b.roles.find((r) => r.collection === c && r.role === 'active' && r.at >= stoppingAt)!.at -
          releasedAt,
      ),
    );
    await delay(500);
    await stopWriting();
    await awaitDelivery(
      log,
      written.map((w) => w.id),
    );
    const { lost, duplicated } = report(
      'sigterm',
      written,
      handledLines(log),
      `, spread after ${spreadMs} ms, takeover ${takeoverMs} ms after A exited`,
    );
    expect(lost).toEqual([]);
    expect(overlaps(handledLines(log))).toBe(0);
    // Every hand-over drained and saved first: nothing is handled twice.
    expect(duplicated).toBe(0);
    expect(takeoverMs).toBeLessThanOrEqual(RENEW_MS + 1000); // one poll (≤ renew interval), plus scheduling on a busy machine
    await b.stop();
  }, 120_000);

  it('SIGKILL of the active instance: the standby takes over within the TTL, nothing lost, duplicates within the checkpoint bound', async () => {
    const { consumer, probe, log, start, startWriting, stopWriting, written } = await scenario(
      'sigkill',
      ['items'],
    );
    const a = await start('A');
    await eventually('A active', () => a.roles.some((r) => r.role === 'active'), 10_000);
    const b = await start('B');
    startWriting(5);
    await eventually(
      'A handling',
      () => handledLines(log).filter((l) => l.instance === 'A').length >= 50,
      10_000,
    );
    // mongo-java-server gives no start position: without a first checkpoint the next holder would start from now.
    await eventually(
      'a position stored',
      async () => (await probe.storedToken(consumer, 'items')) !== null,
      10_000,
    );
    await a.kill();
    const killedAt = Date.now();
    await eventually('B active', () => b.roles.some((r) => r.role === 'active'), TTL_MS + 10_000);
    const takeoverMs = b.roles.find((r) => r.role === 'active')!.at - killedAt;
    await eventually('B handling', () => handledLines(log).some((l) => l.instance === 'B'), 10_000);
    await stopWriting();
    await awaitDelivery(
      log,
      written.map((w) => w.id),
    );
    const { lost, duplicated } = report(
      'sigkill',
      written,
      handledLines(log),
      `, takeover ${takeoverMs} ms after the kill (TTL ${TTL_MS})`,
    );
    expect(lost).toEqual([]);
    expect(overlaps(handledLines(log))).toBe(0);
    expect(duplicated).toBeLessThanOrEqual(2 * 100);
    expect(takeoverMs).toBeLessThanOrEqual(TTL_MS + POLL_MS + 1000);
    await b.stop();
  }, 120_000);

  it('a paused holder (SIGSTOP past the TTL) is fenced: after it resumes it starts nothing new and the stored position never moves back', async () => {
    const { consumer, dbName, probe, log, start, startWriting, stopWriting, written } =
      await scenario('fenced', ['items']);
    const key = positionKey('change-stream', consumer, dbName, 'items');
    const writes = await KeyWrites.watch(testEnv().redisUrl, key);
    cleanups.push(() => writes.close());
    const a = await start('A');
    await eventually('A active', () => a.roles.some((r) => r.role === 'active'), 10_000);
    const b = await start('B');
    startWriting(5);
    await eventually(
      'A handling',
      () => handledLines(log).filter((l) => l.instance === 'A').length >= 30,
      10_000,
    );
    await eventually(
      'a position stored',
      async () => (await probe.storedToken(consumer, 'items')) !== null,
      10_000,
    );
    a.signal('SIGSTOP');
    const pausedAt = Date.now();
    await eventually(
      'B took over',
      () => handledLines(log).some((l) => l.instance === 'B'),
      TTL_MS + 10_000,
    );
    await delay(500);
    a.signal('SIGCONT');
    await eventually('A noticed', () => /lost its lease/.test(a.output), 10_000);
    await delay(500);
    await stopWriting();
    await awaitDelivery(
      log,
      written.map((w) => w.id),
    );
    const lines = handledLines(log);
    const { lost } = report('fenced', written, lines, `, A paused ${Date.now() - pausedAt} ms`);
    expect(lost).toEqual([]);
    // A started nothing after its pause (the call running at the pause may finish: it cannot be stopped).
    expect(lines.filter((l) => l.instance === 'A' && l.start > pausedAt)).toEqual([]);
    // The stored position's history: fences never go down, so A never wrote after B.
    const fences = writes.writes.map(
      (w) => decodePosition(key, w.value) && Number(JSON.parse(w.value).fence?.$numberInt ?? 0),
    );
    expect(fences).toEqual([...fences].sort((x, y) => x - y));
    expect(new Set(fences).size).toBeGreaterThanOrEqual(2);
    await a.stop();
    await b.stop();
  }, 120_000);
});
