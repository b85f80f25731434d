import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable, Module, Scope } from '@nestjs/common';
import { MongooseModule } from '@nestjs/mongoose';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import type { mongo } from 'mongoose';
import {
  ChangeStreamConfigError,
  ChangeStreamModule,
  type ChangeStreamModuleOptions,
  ChangeStreamRegistry,
  OnChange,
} from '../../lib/index.js';
import { CapturingLogger } from '../fixtures/capturing-logger.js';
import { EventLog } from '../fixtures/event-log.js';
import { TestApp } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../fixtures/test-env.js';

@Injectable()
class NoteListener {
  constructor(private readonly log: EventLog) {}
  @OnChange('notes')
  onNote(change: mongo.ChangeStreamDocument) {
    this.log.record('note', change);
  }
}

@Injectable()
class ArchiveListener {
  @OnChange('notes', { connectionName: 'archive' })
  onNote() {}
}

@Injectable()
class LookupListener {
  @OnChange('notes', { fullDocument: 'updateLookup' })
  onNote() {}
}

@Injectable()
class RequiredImageListener {
  @OnChange('notes', { fullDocument: 'required' })
  onNote() {}
}

@Injectable()
class TwoClusterListener {
  @OnChange('notes', { connectionName: 'eu' })
  onEu() {}
  @OnChange('notes', { connectionName: 'us' })
  onUs() {}
}

@Injectable({ scope: Scope.REQUEST })
class RequestScopedListener {
  @OnChange('notes')
  onNote() {}
}

describe('startup (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(() => scope.closeAll());
  const base = () => ({ dbName: uniqueName('startup'), consumer: uniqueName('svc') });

  it('fails init when a handler names a mongoose connection that does not exist', async () => {
    const { error } = await TestApp.startExpectingFailure({ ...base(), providers: [ArchiveListener] });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toBe(
      `ChangeStreamModule: no mongoose connection named "archive" for @OnChange('notes') on ArchiveListener.onNote. ` +
        `Import MongooseModule.forRoot(uri, { connectionName: 'archive' }) in the same application.`,
    );
  });

  it('fails init when two connections would share one position key', async () => {
    const { mongoUri } = testEnv();
    const { dbName } = base();
    const { error } = await TestApp.startExpectingFailure({
      ...base(),
      providers: [TwoClusterListener],
      imports: [MongooseModule.forRoot(mongoUri, { dbName, connectionName: 'eu' }), MongooseModule.forRoot(mongoUri, { dbName, connectionName: 'us' })],
    });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toContain(`connections "eu" and "us" both watch ${dbName}.notes`);
  });

  it('fails init on conflicting stream-level options, naming both handlers', async () => {
    const { error } = await TestApp.startExpectingFailure({ ...base(), providers: [LookupListener, RequiredImageListener] });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toContain(`@OnChange('notes'): LookupListener.onNote and RequiredImageListener.onNote share one stream`);
  });

  it('fails at compile time on bad module options', async () => {
    const compiling = Test.createTestingModule({ imports: [ChangeStreamModule.forRoot({ consumer: '' })] })
      .setLogger(new CapturingLogger())
      .compile();
    await expect(compiling).rejects.toThrow(ChangeStreamConfigError);
    await expect(compiling).rejects.toThrow(/option "consumer" is required/);
  });

  it('skips request-scoped providers with a warning and runs the others', async () => {
    const spec = { ...base(), providers: [NoteListener, RequestScopedListener] };
    const app = await scope.app(spec);
    expect(app.logger.messages('warn')).toContain(
      'RequestScopedListener is request-scoped; its @OnChange handlers are skipped (a stream needs a single, long-lived instance).',
    );
    expect(app.get(ChangeStreamRegistry).getStatuses().map((s) => s.handlers)).toEqual([['NoteListener.onNote']]);
  });

  it('discovers handlers on factory providers too', async () => {
    const spec = { ...base(), providers: [{ provide: 'NOTES', useFactory: (log: EventLog) => new NoteListener(log), inject: [EventLog] }] };
    const app = await scope.app(spec);
    expect(app.get(ChangeStreamRegistry).getStatuses().map((s) => s.handlers)).toEqual([['NoteListener.onNote']]);
    const probe = await scope.probe(spec.dbName);
    await probe.collection('notes').insertOne({ _id: 'n1' as never });
    await eventually('note handled', () => app.events.of('note').length === 1);
  });

  it('without "redis" uses the in-memory store and warns that positions will not survive a restart', async () => {
    const spec = { ...base(), providers: [NoteListener], withoutRedis: true };
    const app = await scope.app(spec);
    expect(app.logger.messages('warn').some((m) => m.includes('resume tokens are kept in memory and will NOT survive a restart'))).toBe(true);
    const probe = await scope.probe(spec.dbName);
    await probe.collection('notes').insertOne({ _id: 'n1' as never });
    await eventually('note handled', () => app.events.of('note').length === 1);
    expect(await probe.storedToken(spec.consumer, 'notes')).toBeNull();
  });

  it('forRootAsync with useFactory uses a caller-owned ioredis client and never quits it', async () => {
    const { mongoUri, redisUrl } = testEnv();
    const client = new Redis(redisUrl);
    const { dbName, consumer } = base();
    @Module({ providers: [{ provide: 'REDIS', useValue: client }], exports: ['REDIS'] })
    class RedisModule {}
    const module = await Test.createTestingModule({
      imports: [
        MongooseModule.forRoot(mongoUri, { dbName }),
        ChangeStreamModule.forRootAsync({
          imports: [RedisModule],
          inject: ['REDIS'],
          useFactory: (redis: Redis): ChangeStreamModuleOptions => ({ consumer, redis, checkpoint: { maxEvents: 1 }, maxAwaitTimeMS: 100 }),
        }),
      ],
      providers: [EventLog, NoteListener],
    })
      .setLogger(new CapturingLogger())
      .compile();
    await module.init();
    const probe = await scope.probe(dbName);
    await probe.collection('notes').insertOne({ _id: 'n1' as never });
    await eventually('token stored through the caller client', async () => (await probe.storedToken(consumer, 'notes')) !== null);
    await module.close();
    expect(client.status).toBe('ready');
    expect(await client.ping()).toBe('PONG');
    client.disconnect();
  });

  it('forRootAsync with useClass reads options from a factory class', async () => {
    const { mongoUri, redisUrl } = testEnv();
    const { dbName, consumer } = base();
    class OptionsFactory {
      createChangeStreamOptions(): ChangeStreamModuleOptions {
        return { consumer, redis: redisUrl, keyPrefix: 'custom', maxAwaitTimeMS: 100 };
      }
    }
    const module = await Test.createTestingModule({
      imports: [MongooseModule.forRoot(mongoUri, { dbName }), ChangeStreamModule.forRootAsync({ useClass: OptionsFactory })],
      providers: [EventLog, NoteListener],
    })
      .setLogger(new CapturingLogger())
      .compile();
    await module.init();
    scope.track(module);
    expect(module.get(ChangeStreamRegistry).getStatuses()[0].key).toBe(`custom:${consumer}:${dbName}:notes`);
  });
});
