import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { mongo } from 'mongoose';
import { ChangeStreamDeadLetters, OnChange } from '../../lib/index.js';
import { deadLetterKey } from '../../lib/redis/redis-keys.js';
import { EventLog } from '../fixtures/event-log.js';
import { TestScope } from '../fixtures/test-scope.js';
import { delay, eventually, uniqueName } from '../fixtures/test-env.js';
import { LocalRedisServer } from '../servers/redis-server.js';

/** A client that connects in `onApplicationBootstrap` (slowly), like a Kafka producer. */
@Injectable()
class SlowClient implements OnApplicationBootstrap {
  connected = false;
  async onApplicationBootstrap() {
    await delay(300);
    this.connected = true;
  }
}

@Injectable()
class JobListener {
  constructor(
    private readonly client: SlowClient,
    private readonly log: EventLog,
  ) {}

  @OnChange('jobs')
  onJob(change: mongo.ChangeStreamDocument) {
    this.log.record(this.client.connected ? 'after-bootstrap' : 'before-bootstrap', change);
  }
}

/** A sink that is closed in `onModuleDestroy`, like an HTTP client or a queue producer. */
@Injectable()
class Sink implements OnModuleDestroy {
  open = true;
  readonly written: number[] = [];
  onModuleDestroy() {
    this.open = false;
  }
  write(id: number) {
    if (!this.open) throw new Error('sink closed');
    this.written.push(id);
  }
}

@Injectable()
class ExportListener {
  constructor(private readonly sink: Sink) {}

  @OnChange('exports', { operationTypes: ['insert'], onFailure: 'dead-letter' })
  async onExport(change: mongo.ChangeStreamInsertDocument<{ _id: number }>) {
    await delay(2);
    this.sink.write(change.fullDocument._id);
  }
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('Nest lifecycle (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(() => scope.closeAll());

  it('does not call a handler before its provider and what it injects finished onApplicationBootstrap', async () => {
    const dbName = uniqueName('bootstrap');
    const consumer = uniqueName('svc');
    const spec = { dbName, consumer, providers: [SlowClient, JobListener] };
    const probe = await scope.probe(dbName);
    const first = await scope.app(spec);
    await probe.collection('jobs').insertOne({ _id: 1 as never });
    await eventually(
      'first job stored',
      async () => (await probe.storedToken(consumer, 'jobs')) !== null,
    );
    await scope.close(first);
    // Written while the app is down: the next start reads it at once, before SlowClient connected.
    await probe.collection('jobs').insertOne({ _id: 2 as never });
    const second = await scope.app(spec);
    await eventually('job 2 handled', () => second.events.events.some((e) => e.documentId === 2));
    expect(second.events.of('before-bootstrap')).toEqual([]);
    expect(second.events.of('after-bootstrap').map((e) => e.documentId)).toEqual([2]);
  });

  it('drains before the providers handlers use are destroyed: nothing fails, nothing is dead-lettered, nothing lost', async () => {
    const dbName = uniqueName('teardown');
    const consumer = uniqueName('svc');
    const spec = {
      dbName,
      consumer,
      providers: [Sink, ExportListener],
      changeStreams: {
        handlerRetry: { retries: 0 },
        checkpoint: { maxEvents: 10, intervalMs: 50 },
      },
    };
    const probe = await scope.probe(dbName);
    const app = await scope.app(spec);
    const sink = app.get(Sink);
    await probe.collection('exports').insertMany(range(1, 300).map((id) => ({ _id: id as never })));
    await eventually('some exported', () => sink.written.length >= 20);
    await scope.close(app); // mid-backlog: Sink.onModuleDestroy runs during this close
    expect(app.logger.messages('warn').filter((m) => m.includes('sink closed'))).toEqual([]);
    expect(app.logger.messages('error')).toEqual([]);
    expect(await probe.redis.hlen(deadLetterKey('change-stream', consumer))).toBe(0);

    const restarted = await scope.app(spec);
    const resumedSink = restarted.get(Sink);
    await probe.collection('exports').insertOne({ _id: 301 as never });
    await eventually('the write made after the restart', () => resumedSink.written.includes(301));
    const exported = new Set([...sink.written, ...resumedSink.written]);
    expect(range(1, 301).filter((id) => !exported.has(id))).toEqual([]);
    expect(await restarted.get(ChangeStreamDeadLetters).list()).toEqual([]);
  });

  it('bounds app.close() by shutdownTimeoutMs when an app-supplied ioredis client cannot reach Redis', async () => {
    const redis = await LocalRedisServer.start();
    scope.track({ close: () => redis.stop() });
    const client = new Redis(redis.url); // ioredis defaults: an offline queue and 20 retries per command
    client.on('error', () => undefined);
    scope.track({ close: async () => client.disconnect() });
    const dbName = uniqueName('bounded');
    const probe = await scope.probe(dbName);
    const app = await scope.app({
      dbName,
      consumer: uniqueName('svc'),
      providers: [Sink, ExportListener],
      changeStreams: {
        redis: client,
        shutdownTimeoutMs: 1000,
        checkpoint: { maxEvents: 1000, intervalMs: 60_000 },
      },
    });
    await probe.collection('exports').insertOne({ _id: 1 as never });
    await eventually('handled, position not saved yet', () => app.get(Sink).written.length === 1);
    await redis.stop();
    const started = Date.now();
    await scope.close(app);
    const elapsed = Date.now() - started;
    console.log(
      `[lifecycle] app.close() with Redis down took ${elapsed} ms (shutdownTimeoutMs 1000)`,
    );
    expect(elapsed).toBeLessThan(1000 + 1500); // the bound, plus mongoose and Nest's own teardown
    expect(
      app.logger.messages('warn').some((m) => m.includes('final position could not be stored')),
    ).toBe(true);
  });
});
