import net from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  Controller,
  Injectable,
  type INestApplicationContext,
  Module,
  Scope,
} from '@nestjs/common';
import { MongooseModule } from '@nestjs/mongoose';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import type { mongo } from 'mongoose';
import {
  ChangeStreamConfigError,
  ChangeStreamHealthIndicator,
  ChangeStreamModule,
  type ChangeStreamModuleOptions,
  ChangeStreamRegistry,
  InMemoryDeadLetterStore,
  OnChange,
  type ResumeTokenStore,
  type StreamPosition,
} from '../../lib/index.js';
import { LocalRedisServer } from '../servers/redis-server.js';
import { freePort } from '../servers/free-port.js';
import { CapturingLogger } from '../fixtures/capturing-logger.js';
import { EventLog } from '../fixtures/event-log.js';
import { TestApp } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../fixtures/test-env.js';
import { CHANGE_STREAM_STORES } from '../../lib/change-stream.constants.js';
import type { ChangeStreamStores } from '../../lib/stores.factory.js';
import type { RedisPositionStore } from '../../lib/redis/redis-position.store.js';

/** The ioredis client the module created for the "redis" option. */
const redisClientOf = (module: INestApplicationContext) =>
  (
    module.get<ChangeStreamStores>(CHANGE_STREAM_STORES, { strict: false })
      .tokens as RedisPositionStore
  ).client as Redis;
/**
 * Closed for good: `end`, or (disconnected between two attempts) `reconnecting` with no attempt
 * scheduled. A client that goes on retrying keeps the process alive.
 */
const closedForGood = (client: Redis) =>
  client.status === 'end' ||
  (client.status === 'reconnecting' &&
    (client as unknown as { reconnectTimeout: unknown }).reconnectTimeout === null);

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

@Injectable({ scope: Scope.REQUEST })
class RequestContext {}

@Injectable()
class ContextAwareListener {
  constructor(readonly context: RequestContext) {}
  @OnChange('notes')
  onNote() {}
}

@Injectable()
class DeadLetteringListener {
  @OnChange('notes', { onFailure: 'dead-letter' })
  onNote() {}
}

@Injectable()
class TypoListener {
  @OnChange('ordres')
  onOrder() {}
}

@Controller('notes')
class NotesController {
  @OnChange('notes')
  onNote() {}
}

@Injectable()
class DefaultConnectionListener {
  @OnChange('notes', { connectionName: 'default' })
  onNote() {}
}

/** A durable position store of the app's own (here: a Map standing in for a database). */
class AppTokenStore implements ResumeTokenStore {
  private readonly values = new Map<string, StreamPosition>();
  async load(key: string) {
    return this.values.get(key) ?? null;
  }
  async save(key: string, position: StreamPosition) {
    this.values.set(key, position);
  }
}

describe('startup (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(() => scope.closeAll());
  const base = () => ({ dbName: uniqueName('startup'), consumer: uniqueName('svc') });

  it('fails init when a handler names a mongoose connection that does not exist', async () => {
    const { error } = await TestApp.startExpectingFailure(
      { ...base(), providers: [ArchiveListener] },
      // Nest calls no shutdown hook after a failed init: the module's own Redis client must end anyway.
      async (module) =>
        eventually('its Redis client closed for good', () => closedForGood(redisClientOf(module))),
    );
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
      imports: [
        MongooseModule.forRoot(mongoUri, { dbName, connectionName: 'eu' }),
        MongooseModule.forRoot(mongoUri, { dbName, connectionName: 'us' }),
      ],
    });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toContain(`connections "eu" and "us" both watch ${dbName}.notes`);
  });

  it('fails init on conflicting stream-level options, naming both handlers', async () => {
    const { error } = await TestApp.startExpectingFailure({
      ...base(),
      providers: [LookupListener, RequiredImageListener],
    });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toContain(
      `@OnChange('notes'): LookupListener.onNote and RequiredImageListener.onNote share one stream`,
    );
  });

  it('fails at compile time on bad module options', async () => {
    const compiling = Test.createTestingModule({
      imports: [ChangeStreamModule.forRoot({ consumer: '' })],
    })
      .setLogger(new CapturingLogger())
      .compile();
    await expect(compiling).rejects.toThrow(ChangeStreamConfigError);
    await expect(compiling).rejects.toThrow(/option "consumer" is required/);
  });

  it('skips request-scoped providers with a warning and runs the others', async () => {
    const spec = { ...base(), providers: [NoteListener, RequestScopedListener] };
    const app = await scope.app(spec);
    expect(app.logger.messages('warn')).toContain(
      'RequestScopedListener is request-scoped (declared with scope: Scope.REQUEST); its @OnChange handlers are skipped ' +
        '(a stream needs a single, long-lived instance). Move the handlers to a singleton provider, or inject the request-scoped dependency elsewhere.',
    );
    expect(
      app
        .get(ChangeStreamRegistry)
        .getStatuses()
        .map((s) => s.handlers),
    ).toEqual([['NoteListener.onNote']]);
  });

  it('says so when a controller holds handlers, and when no handler was found at all', async () => {
    const { mongoUri } = testEnv();
    const logger = new CapturingLogger();
    const module = await Test.createTestingModule({
      imports: [
        MongooseModule.forRoot(mongoUri, { dbName: uniqueName('startup') }),
        ChangeStreamModule.forRoot({ consumer: uniqueName('svc') }),
      ],
      controllers: [NotesController],
    })
      .setLogger(logger)
      .compile();
    scope.track(module);
    await module.init();
    expect(logger.messages('warn')).toEqual(
      expect.arrayContaining([
        'NotesController is a controller: its @OnChange handlers are not run. Move them to a provider (listed in "providers").',
        expect.stringContaining('no @OnChange handlers found'),
      ]),
    );
  });

  it('names the dependency that made a provider request-scoped', async () => {
    const app = await scope.app({
      ...base(),
      providers: [NoteListener, RequestContext, ContextAwareListener],
    });
    expect(app.logger.messages('warn').find((m) => m.startsWith('ContextAwareListener'))).toContain(
      'ContextAwareListener is request-scoped (it injects RequestContext, which is request-scoped)',
    );
  });

  it('fails init when a handler may dead-letter into memory while positions are durable, saying what to set', async () => {
    const { error } = await TestApp.startExpectingFailure({
      ...base(),
      providers: [DeadLetteringListener],
      withoutRedis: true,
      changeStreams: { tokenStore: new AppTokenStore() },
    });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toContain(
      'DeadLetteringListener.onNote may dead-letter events, but dead letters would be kept in memory',
    );
    expect(error.message).toContain('Set "deadLetterStore"');
  });

  it('fails init when dead letters are durable but positions are kept in memory', async () => {
    const durableLetters = Object.assign(new InMemoryDeadLetterStore(), { durable: true });
    const { error } = await TestApp.startExpectingFailure({
      ...base(),
      providers: [NoteListener],
      withoutRedis: true,
      changeStreams: { onHandlerFailure: 'dead-letter', deadLetterStore: durableLetters },
    });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toContain(
      'NoteListener.onNote may dead-letter events into a durable store while positions are kept in memory',
    );
  });

  it('fails init on wrong Redis credentials, naming the host and never the password', async () => {
    const server = await LocalRedisServer.start(['--requirepass', 'correct-horse']);
    scope.track({ close: () => server.stop() });
    const { error } = await TestApp.startExpectingFailure(
      {
        ...base(),
        providers: [NoteListener],
        changeStreams: { redis: `redis://:hunter2@127.0.0.1:${server.port}` },
      },
      // Retrying cannot fix credentials: the module's client must stop, even if the app is never closed.
      async (module) =>
        eventually('its Redis client closed for good', () => closedForGood(redisClientOf(module))),
    );
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toBe(
      `ChangeStreamModule: Redis at 127.0.0.1:${server.port} rejected the credentials (WRONGPASS invalid username-password pair or user is disabled). ` +
        'Check the username and password in the "redis" option.',
    );
    expect(error.message).not.toContain('hunter2');
  });

  it('fails init when Redis requires a password and none was given, saying so', async () => {
    const server = await LocalRedisServer.start(['--requirepass', 'correct-horse']);
    scope.track({ close: () => server.stop() });
    const { error } = await TestApp.startExpectingFailure(
      {
        ...base(),
        providers: [NoteListener],
        changeStreams: { redis: `redis://127.0.0.1:${server.port}` },
      },
      async (module) =>
        eventually('its Redis client closed for good', () => closedForGood(redisClientOf(module))),
    );
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toMatch(
      new RegExp(
        `^ChangeStreamModule: Redis at 127\\.0\\.0\\.1:${server.port} requires a password and the "redis" option gave none \\(NOAUTH `,
      ),
    );
    expect(error.message).toContain('redis://:password@host:6379');
  });

  it('a Redis that accepts connections but never answers holds bootstrap only for its bounded checks', async () => {
    // A TLS URL for a plain Redis looks like this to the client: connected, and silent until its connect timeout.
    const silent = net.createServer(() => undefined);
    const sockets = new Set<net.Socket>();
    silent.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    scope.track({
      close: () =>
        new Promise<void>(
          (resolve) => (sockets.forEach((s) => s.destroy()), silent.close(() => resolve())),
        ),
    });
    const { port } = silent.address() as net.AddressInfo;
    const began = performance.now();
    const app = await scope.app({
      ...base(),
      providers: [NoteListener],
      changeStreams: {
        redis: `redis://127.0.0.1:${port}`,
        startupTimeoutMs: 1000,
        shutdownTimeoutMs: 1000,
      },
    });
    const tookMs = performance.now() - began;
    // The store check and the first announcement are bounded (by startupTimeoutMs, at most 3 s each), then the streams' wait;
    // the client's own connect timeouts (10 s each, and a retry) would hold it for 20 s or more.
    expect(tookMs).toBeLessThan(15_000);
    expect(
      app.logger
        .messages('warn')
        .some((m) =>
          m.startsWith(
            `Position store unreachable: Redis at 127.0.0.1:${port} (no answer within 1000 ms)`,
          ),
        ),
    ).toBe(true);
    await scope.close(app);
  }, 40_000);

  it('a Redis that does not answer at startup is logged once, with where, and the streams wait for it', async () => {
    const port = await freePort();
    const app = await scope.app({
      ...base(),
      providers: [NoteListener],
      changeStreams: { redis: `redis://127.0.0.1:${port}`, startupTimeoutMs: 1500 },
    });
    const warnings = app.logger.messages('warn');
    expect(warnings.filter((m) => m.includes('Position store unreachable'))).toEqual([
      `Position store unreachable: Redis at 127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}). Streams wait for it and start from their stored positions once it answers.`,
    ]);
    expect(warnings.some((m) => m.includes('maxRetriesPerRequest'))).toBe(false);
    const registry = app.get(ChangeStreamRegistry);
    // Its first attempt may still be on its way on a busy machine: wait for the answer, not a fixed time.
    await eventually(
      'waiting for the store',
      () => registry.getStatus('notes')?.state === 'reconnecting',
    );
    expect(registry.getStatus('notes')!.lastError).toMatch(/waiting for the position store/);
    // The cause, with its code, in status and health: not only in the startup warning.
    await eventually('the connection error named', () =>
      registry.getStatus('notes')!.lastError!.includes(`ECONNREFUSED 127.0.0.1:${port}`),
    );
    const health = await app.get(ChangeStreamHealthIndicator).isHealthy();
    // "waiting for the position store" (to load the position, or to ask for the lease), then the cause.
    expect(Object.values(health.changeStreams.streams)[0].lastError).toMatch(
      new RegExp(
        `^waiting for the position store[^:]*: Redis at 127\\.0\\.0\\.1:${port} unreachable \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)$`,
      ),
    );
    // Closing ends the module's client: an ioredis client left reconnecting would keep the process alive.
    await scope.close(app);
    expect(closedForGood(redisClientOf(app.app))).toBe(true);
  });

  it('fails init on a Redis URL without a scheme, which ioredis would take for a unix socket', async () => {
    for (const redis of ['redis//127.0.0.1:6379', 'redis:/127.0.0.1:6379', '127.0.0.1:6379']) {
      const compiling = Test.createTestingModule({
        imports: [ChangeStreamModule.forRoot({ consumer: 'svc', redis })],
      })
        .setLogger(new CapturingLogger())
        .compile();
      await expect(compiling).rejects.toThrow(ChangeStreamConfigError);
      await expect(compiling).rejects.toThrow(/option "redis" is a string without a "scheme:\/\/"/);
    }
  });

  it("names a Redis host that does not resolve in the streams' lastError (ENOTFOUND), not only in the startup warning", async () => {
    const app = await scope.app({
      ...base(),
      providers: [NoteListener],
      changeStreams: { redis: 'redis://does-not-exist.invalid:6379', startupTimeoutMs: 1500 },
    });
    expect(
      app.logger
        .messages('warn')
        .some(
          (m) =>
            m.startsWith('Position store unreachable: Redis at does-not-exist.invalid:6379') &&
            m.includes('ENOTFOUND'),
        ),
    ).toBe(true);
    const registry = app.get(ChangeStreamRegistry);
    await eventually(
      'the connection error named',
      () =>
        registry.getStatus('notes')?.lastError?.includes('ENOTFOUND does-not-exist.invalid') ===
        true,
    );
    const health = await app.get(ChangeStreamHealthIndicator).isHealthy();
    expect(Object.values(health.changeStreams.streams)[0].lastError).toMatch(
      /^waiting for the position store[^:]*: Redis at does-not-exist\.invalid:6379 unreachable \(getaddrinfo ENOTFOUND does-not-exist\.invalid\)$/,
    );
    await scope.close(app);
  });

  it('warns at bootstrap about a watched collection that does not exist (a typo?), and still runs', async () => {
    const spec = { ...base(), providers: [NoteListener, TypoListener] };
    const probe = await scope.probe(spec.dbName);
    await probe.collection('notes').insertOne({ _id: 'n0' as never });
    const app = await scope.app(spec);
    const missing = app.logger.messages('warn').filter((m) => m.includes('does not exist'));
    expect(missing).toEqual([
      `ChangeStreamModule: ${spec.dbName}.ordres does not exist (yet) but TypoListener.onOrder watches it: a typo in the collection or database name? ` +
        `The stream opens anyway and sees the collection's events once it is created.`,
    ]);
    await probe.collection('notes').insertOne({ _id: 'n1' as never });
    await eventually('note handled', () => app.events.of('note').length === 1);
  });

  it('getStatus(collection) reads the module default connection, as documented', async () => {
    const { mongoUri } = testEnv();
    const app = await scope.app({
      ...base(),
      providers: [DefaultConnectionListener, NoteListener],
      imports: [
        MongooseModule.forRoot(mongoUri, {
          dbName: uniqueName('secondary'),
          connectionName: 'secondary',
        }),
      ],
      changeStreams: { connectionName: 'secondary' },
    });
    const registry = app.get(ChangeStreamRegistry);
    expect(registry.getStatuses().map((s) => s.connectionName)).toEqual(['default', 'secondary']);
    expect(registry.getStatus('notes')?.handlers).toEqual(['NoteListener.onNote']);
    expect(registry.getStatus('notes', 'default')?.handlers).toEqual([
      'DefaultConnectionListener.onNote',
    ]);
  });

  it('discovers handlers on factory providers too', async () => {
    const spec = {
      ...base(),
      providers: [
        {
          provide: 'NOTES',
          useFactory: (log: EventLog) => new NoteListener(log),
          inject: [EventLog],
        },
      ],
    };
    const app = await scope.app(spec);
    expect(
      app
        .get(ChangeStreamRegistry)
        .getStatuses()
        .map((s) => s.handlers),
    ).toEqual([['NoteListener.onNote']]);
    const probe = await scope.probe(spec.dbName);
    await probe.collection('notes').insertOne({ _id: 'n1' as never });
    await eventually('note handled', () => app.events.of('note').length === 1);
  });

  it('without "redis" uses the in-memory store and warns that positions will not survive a restart', async () => {
    const spec = { ...base(), providers: [NoteListener], withoutRedis: true };
    const app = await scope.app(spec);
    expect(
      app.logger
        .messages('warn')
        .some((m) => m.includes('resume tokens are kept in memory and will NOT survive a restart')),
    ).toBe(true);
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
          useFactory: (redis: Redis): ChangeStreamModuleOptions => ({
            consumer,
            redis,
            checkpoint: { maxEvents: 1 },
            maxAwaitTimeMS: 100,
          }),
        }),
      ],
      providers: [EventLog, NoteListener],
    })
      .setLogger(new CapturingLogger())
      .compile();
    await module.init();
    const probe = await scope.probe(dbName);
    await probe.collection('notes').insertOne({ _id: 'n1' as never });
    await eventually(
      'token stored through the caller client',
      async () => (await probe.storedToken(consumer, 'notes')) !== null,
    );
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
      imports: [
        MongooseModule.forRoot(mongoUri, { dbName }),
        ChangeStreamModule.forRootAsync({ useClass: OptionsFactory }),
      ],
      providers: [EventLog, NoteListener],
    })
      .setLogger(new CapturingLogger())
      .compile();
    await module.init();
    scope.track(module);
    expect(module.get(ChangeStreamRegistry).getStatuses()[0].key).toBe(
      `custom:{${consumer}:${dbName}:notes}`,
    );
  });
});
