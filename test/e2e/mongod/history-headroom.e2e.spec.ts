import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import mongoose, { type mongo } from 'mongoose';
import { OnChange, positionKey } from '../../../lib/index.js';
import { EventLog } from '../../fixtures/event-log.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { delay, eventually, uniqueName } from '../../fixtures/test-env.js';
import { MongodApp, TinyOplogReplSet } from './mongod-app.js';

/** Holds the event of document `stop` until the spec opens the gate: a consumer that stopped moving. */
const gate = (() => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
})();

@Injectable()
class ParcelListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('parcels', { operationTypes: ['insert'] })
  async onParcel(change: mongo.ChangeStreamInsertDocument) {
    if ((change.documentKey._id as unknown) === 'stop') await gate.promise;
    this.log.record('parcels', change);
  }
}

/** Seconds of a BSON timestamp. */
const seconds = (ts: mongo.Timestamp) => ts.t;

/**
 * The early warning on a real oplog: a replica set of its own with a 1 MB oplog, kept rolling by a
 * writer of 36 KB documents at a steady pace (so its window is some seconds long, and its oldest
 * entry moves in steps of about 100 KB). The consumer's handler stops on one event: its position
 * stands still while the oplog's oldest entry comes closer, the headroom warning fires, and once the
 * position fell off, reading on applies `onHistoryLost`. Skipped without a harness-started mongod.
 */
describe('history headroom runs out on a rolling oplog (real mongod)', () => {
  const available = TinyOplogReplSet.available();
  const onTinyOplog = available ? it : it.skip;
  const scope = new TestScope();
  let server: TinyOplogReplSet | undefined;
  let client: mongo.MongoClient | undefined;
  let writing = true;
  let writer: Promise<void> = Promise.resolve();

  const oplogEnds = async () => {
    const oplog = client!.db('local').collection('oplog.rs');
    const [first, last] = await Promise.all(
      ([1, -1] as const).map((natural) =>
        oplog.findOne<{ ts: mongo.Timestamp }>({}, { sort: { $natural: natural } }),
      ),
    );
    return { oldest: first!.ts, newest: last!.ts };
  };

  beforeAll(async () => {
    if (!available) return;
    server = await TinyOplogReplSet.start();
    client = await new mongoose.mongo.MongoClient(server.uri).connect();
    const filler = client.db('oplog_filler').collection('filler');
    const large = 'abcdefghi'.repeat(4 * 1024);
    writer = (async () => {
      while (writing) {
        await filler.insertOne({ large }, { writeConcern: { w: 'majority' } });
        await delay(500);
      }
    })();
    // Until the oplog rolled over once: its oldest entry is newer than the newest one was.
    const before = (await oplogEnds()).newest;
    await eventually(
      'the oplog rolls over',
      async () => seconds((await oplogEnds()).oldest) > seconds(before),
      90_000,
    );
  }, 150_000);
  afterAll(async () => {
    gate.resolve();
    await scope.closeAll();
    writing = false;
    await writer.catch(() => undefined);
    await client?.close();
    await server?.stop();
  });

  onTinyOplog(
    'warns and degrades while the position is still in the oplog, then onHistoryLost applies once it is not (mongod started by the harness only)',
    async () => {
      const { oldest, newest } = await oplogEnds();
      const windowSeconds = seconds(newest) - seconds(oldest);
      // Half the window: a consumer that keeps up stays above it; a stopped one crosses it
      // about half a window before its position falls off.
      const warnMs = Math.max(2, Math.floor(windowSeconds / 2)) * 1000;
      console.log(`[history-headroom] oplog window ${windowSeconds} s, warnMs ${warnMs}`);
      const dbName = uniqueName('headroom');
      const consumer = uniqueName('svc');
      const key = positionKey('change-stream', consumer, dbName, 'parcels');
      const app = scope.track(
        await MongodApp.start({
          mongoUri: server!.uri,
          dbName,
          consumer,
          providers: [ParcelListener],
          changeStreams: {
            historyHeadroom: { warnMs, intervalMs: 200 },
            onHistoryLost: 'fail',
            // The held handler must not degrade the stream itself: only the headroom does here.
            handlerTimeoutMs: 0,
          },
        }),
      );
      const status = () => app.registry.getStatus('parcels')!;
      const parcels = client!.db(dbName).collection<{ _id: string }>('parcels');

      await parcels.insertOne({ _id: 'p1' });
      await eventually('p1 handled', () => app.events.of('parcels').length === 1);
      await eventually('a sample with the headroom', () => status().historyHeadroomMs !== null);
      // Keeping up on a rolling oplog: the headroom is about the whole window, no warning.
      expect(status().state).toBe('open');
      expect(status().historyHeadroomMs).toBeGreaterThanOrEqual(warnMs);
      expect(status().oplogWindowMs).toBeGreaterThan(0);

      // The consumer stops moving.
      await parcels.insertOne({ _id: 'stop' });
      await eventually('the headroom warning', () => status().state === 'degraded', 60_000);
      const warning = app.logger
        .messages('warn')
        .filter((m) => m.startsWith(`Stream ${key}: history headroom `));
      expect(warning).toHaveLength(1);
      expect(warning[0]).toMatch(
        /history headroom [\d hms]+ \(oplog window .+\) is below historyHeadroom\.warnMs .*once its position falls off the oplog, onHistoryLost applies/,
      );
      expect(status().historyHeadroomMs).toBeGreaterThanOrEqual(0); // warned before it ran out
      expect(status().lastError).toMatch(/^history headroom [\d hms]+, oplog window /);
      expect(app.registryEvents.some((e) => e.type === 'history-lost')).toBe(false);

      // It runs out: the oldest entry is past the position.
      await eventually(
        'the position fell off',
        () => (status().historyHeadroomMs ?? 0) < 0,
        60_000,
      );
      expect(status().historyHeadroomUnknown).toBeNull();

      // The consumer reads on: its position is gone, so the policy (fail) applies.
      gate.resolve();
      await eventually(
        'onHistoryLost',
        () => app.registryEvents.some((e) => e.type === 'history-lost'),
        60_000,
      );
      expect(app.registryEvents.find((e) => e.type === 'history-lost')).toMatchObject({
        action: 'fail',
        key,
        collection: 'parcels',
      });
      await eventually('failed', () => status().state === 'failed');
    },
    180_000,
  );
});
