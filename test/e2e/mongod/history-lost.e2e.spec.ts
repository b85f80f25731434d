import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { positionKey, OnChange } from '../../../lib/index.js';
import { EventLog } from '../../fixtures/event-log.js';
import { ServerProbe } from '../../fixtures/test-app.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../../fixtures/test-env.js';
import { MongodApp, TinyOplogReplSet } from './mongod-app.js';

@Injectable()
class LedgerListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('ledger', { operationTypes: ['insert'] })
  onEntry(change: mongo.ChangeStreamInsertDocument) {
    this.log.record('ledger', change);
  }
}

const ids = (app: MongodApp) => app.events.of('ledger').map((e) => e.documentId);

/**
 * The real thing: a stored resume token whose oplog entry was truncated, so that mongod answers
 * the open with ChangeStreamHistoryLost (286). It needs a replica set of its own with a 1 MB oplog
 * (rolled over in seconds), started like the harness's mongod; with MONGODB_URI (an external
 * server) or mongo-java-server it is skipped. (A start time far in the past is no substitute on a
 * fresh replica set: while its oldest oplog entry is still the "initiating set" no-op, mongod
 * starts such a stream at the beginning of the oplog instead of reporting history lost.)
 */
describe('ChangeStreamHistoryLost after the oplog rolled over (real mongod)', () => {
  const available = TinyOplogReplSet.available();
  const onTinyOplog = available ? it : it.skip;
  const scope = new TestScope();
  let server: TinyOplogReplSet | undefined;
  let probe: ServerProbe;
  const dbName = uniqueName('lost');
  const failing = uniqueName('svc');
  const restarting = uniqueName('svc');
  const failingKey = positionKey('change-stream', failing, dbName, 'ledger');
  const restartingKey = positionKey('change-stream', restarting, dbName, 'ledger');
  /** The stored value both consumers start from: a position at or after entry 1, no longer in the oplog. */
  let lostValue: string;
  let lostToken: unknown;

  const start = (
    consumer: string,
    changeStreams: Parameters<typeof MongodApp.start>[0]['changeStreams'] = {},
  ) =>
    MongodApp.start({
      mongoUri: server!.uri,
      dbName,
      consumer,
      providers: [LedgerListener],
      changeStreams,
    }).then((app) => scope.track(app));

  beforeAll(async () => {
    if (!available) return;
    server = await TinyOplogReplSet.start();
    probe = await ServerProbe.openAt(server.uri, testEnv().redisUrl, dbName);
    // A consumer handles entry 1 and stores its position (entry 1's token, or a post-batch token
    // after it), then stops: a deploy, an outage…
    const before = await start(failing);
    await probe.collection('ledger').insertOne({ _id: 1 as never });
    await eventually('entry 1 handled', () => ids(before).length === 1);
    await scope.close(before);
    lostValue = (await probe.redis.get(failingKey))!;
    lostToken = await probe.storedToken(failing, 'ledger');
    expect(lostToken).not.toBeNull();
    await probe.redis.set(restartingKey, lostValue);
    // While it is down, the oplog rolls over: entry 1 (and everything before) is truncated.
    const written = await server.rollOver();
    console.log(`[history-lost] oplog rolled over after ${written} documents of 36 KB`);
    await probe.collection('ledger').insertOne({ _id: 2 as never }); // after the rollover, before any restart
  }, 120_000);
  afterEach(() => scope.closeAll());
  afterAll(async () => {
    await probe?.close();
    await server?.stop();
  });

  onTinyOplog(
    'policy fail: the stream is failed, the event says fail, the stored value is kept (mongod started by the harness only)',
    async () => {
      const app = await start(failing, { onHistoryLost: 'fail' });
      const status = app.registry.getStatus('ledger')!;
      expect(status.state).toBe('failed');
      expect(status.lastError).toMatch(
        /the oplog no longer holds it, or the server rejected the token/,
      );
      expect(status.lastError).toMatch(/delete the key/);
      expect(status.eventsHandled).toBe(0);
      const lost = app.registryEvents.filter((e) => e.type === 'history-lost');
      expect(lost).toHaveLength(1);
      expect(lost[0]).toMatchObject({
        action: 'fail',
        key: failingKey,
        database: dbName,
        collection: 'ledger',
        position: { token: lostToken },
      });
      expect(app.registryEvents.some((e) => e.type === 'state' && e.state === 'failed')).toBe(true);
      expect(await probe.redis.get(failingKey)).toBe(lostValue);
      expect(ids(app)).toEqual([]);
    },
  );

  onTinyOplog(
    'policy restart-from-now: logged as data loss, a history-lost event, new writes delivered (mongod started by the harness only)',
    async () => {
      const app = await start(restarting, { onHistoryLost: 'restart-from-now' });
      expect(
        app.logger.messages('error').some((m) => m.startsWith(`DATA LOSS on ${restartingKey}`)),
      ).toBe(true);
      const lost = app.registryEvents.filter((e) => e.type === 'history-lost');
      expect(lost).toHaveLength(1);
      expect(lost[0]).toMatchObject({
        action: 'restart-from-now',
        key: restartingKey,
        position: { token: lostToken },
      });
      expect(app.registry.getStatus('ledger')?.state).toBe('open');

      await probe.collection('ledger').insertOne({ _id: 3 as never });
      await eventually('the write made after the restart', () => ids(app).includes(3));
      // Reading went on from now: entry 2, written while the position was lost, is the data loss the log reported.
      expect(ids(app)).toEqual([3]);
      await eventually(
        'a valid position replaced the lost one',
        async () => (await probe.redis.get(restartingKey)) !== lostValue,
      );
    },
  );
});
