import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import mongoose from 'mongoose';
import { ChangeStreamHealthIndicator, OnChange } from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';
import { MongoJavaServer } from '../servers/mongo-java-server.js';
import { MongodApp } from './mongod/mongod-app.js';

@Injectable()
class ParcelListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('parcels', { operationTypes: ['insert'] })
  onParcel(change: mongo.ChangeStreamInsertDocument) {
    this.log.record('parcels', change);
  }
}

/**
 * History headroom read through the real driver from a real wire-protocol server: a
 * mongo-java-server of its own, started empty, whose `local.oplog.rs` holds nothing until the
 * first write (what a server without an oplog answers: no entry, no error), then its entries.
 */
describe('history headroom on mongo-java-server', () => {
  const scope = new TestScope();
  let server: MongoJavaServer;
  let client: mongo.MongoClient;
  const dbName = uniqueName('headroom');

  beforeAll(async () => {
    server = await MongoJavaServer.start();
    client = await new mongoose.mongo.MongoClient(server.uri).connect();
  }, 120_000);
  afterEach(() => scope.closeAll());
  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  it('an oplog it cannot read is said once, in status and the log, and the stream keeps working; once it can, the window shows', async () => {
    const app = scope.track(
      await MongodApp.start({
        mongoUri: server.uri,
        dbName,
        consumer: uniqueName('svc'),
        providers: [ParcelListener],
        changeStreams: { historyHeadroom: { intervalMs: 200 } },
      }),
    );
    const status = () => app.registry.getStatus('parcels')!;
    await eventually(
      'the first sample',
      () => status().historyHeadroomUnknown !== 'the oplog has not been sampled yet',
    );
    expect(status()).toMatchObject({
      state: 'open',
      historyHeadroomMs: null,
      oplogWindowMs: null,
      historyHeadroomUnknown: expect.stringMatching(/local\.oplog\.rs is missing or empty/),
      lastError: null,
    });

    // The stream works all the same.
    await client
      .db(dbName)
      .collection('parcels')
      .insertOne({ _id: 'p1' as never });
    await eventually('p1 handled', () => app.events.of('parcels').length === 1);

    await eventually('the oplog window', () => status().oplogWindowMs !== null, 5000);
    const said = app.logger
      .messages('warn')
      .filter((m) => m.startsWith('History headroom of connection "default"'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/local\.oplog\.rs is missing or empty.*Streams keep working/);
    expect(status().oplogWindowMs).toBeGreaterThanOrEqual(0);
    // Its resume tokens are not mongod's (no cluster time at their head): the headroom stays
    // unknown, and says why; on mongod it is known (test/e2e/mongod/history-headroom).
    expect(status()).toMatchObject({
      state: 'open',
      historyHeadroomMs: null,
      historyHeadroomUnknown: expect.stringMatching(
        /cluster time of the stream's position is unknown/,
      ),
    });
    // Health details show the same, and an unknown headroom is no verdict on health.
    const health = await app.get(ChangeStreamHealthIndicator).isHealthy();
    expect(health.changeStreams.status).toBe('up');
    expect(health.changeStreams.streams[`default/${dbName}.parcels`]).toMatchObject({
      historyHeadroomMs: null,
      oplogWindowMs: expect.any(Number),
      historyHeadroomUnknown: expect.stringMatching(
        /cluster time of the stream's position is unknown/,
      ),
    });
  });
});
