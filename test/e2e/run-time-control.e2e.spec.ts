import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { MongooseModule } from '@nestjs/mongoose';
import { Test } from '@nestjs/testing';
import type { mongo } from 'mongoose';
import {
  ChangeStreamControl,
  ChangeStreamModule,
  ChangeStreamRegistry,
  OnChange,
  pausedKey,
  positionKey,
  RedisPositionStore,
} from '../../lib/index.js';
import { TestApp } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { delay, eventually, testEnv, uniqueName } from '../fixtures/test-env.js';
import { resolveOptions } from '../../lib/options/module-options.js';
import { createStores } from '../../lib/stores.factory.js';

/** Every call, with the instance that made it and when: who handled what, and when. */
const calls: Array<{ instance: string; id: number; at: number; token: unknown }> = [];

@Injectable()
class OrderListener {
  constructor(private readonly registry: ChangeStreamRegistry) {}

  @OnChange('orders', { operationTypes: ['insert'] })
  async onOrder(change: mongo.ChangeStreamInsertDocument<{ _id: number }>) {
    calls.push({
      instance: this.registry.getStatus('orders')!.instanceId!,
      id: change.documentKey._id,
      at: Date.now(),
      token: change._id,
    });
  }
}

const leases = { ttlMs: 3000, renewIntervalMs: 300, pollIntervalMs: 100 };
const handled = (id: number) => calls.filter((c) => c.id === id);

describe('run-time control (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(async () => {
    calls.length = 0;
    await scope.closeAll();
  });

  async function twoInstances() {
    const spec = {
      dbName: uniqueName('control'),
      consumer: uniqueName('svc'),
      providers: [OrderListener],
      // Saved only by a pause or hand-over (and the start position), so a stored event token proves that save.
      changeStreams: { leases, checkpoint: { maxEvents: 1000, intervalMs: 60_000 } },
    };
    const apps = [await scope.app(spec), await scope.app(spec)];
    const probe = await scope.probe(spec.dbName);
    const status = (app: TestApp) => app.get(ChangeStreamRegistry).getStatus('orders')!;
    await eventually(
      'one active, one standby',
      () =>
        apps
          .map((a) => status(a).role)
          .sort()
          .join() === 'active,standby',
    );
    const [holder, other] = status(apps[0]).role === 'active' ? apps : [apps[1], apps[0]];
    const key = positionKey('change-stream', spec.consumer, spec.dbName, 'orders');
    return { spec, apps, holder, other, probe, status, key, orders: probe.collection('orders') };
  }

  it('a pause key set with redis-cli stops every instance (the holder releases, the standby does not take it); after DEL each event written meanwhile is handled once', async () => {
    const { apps, probe, status, key, orders, spec } = await twoInstances();
    await orders.insertOne({ _id: 1 as never });
    await eventually('order 1 handled', () => handled(1).length === 1);
    const fenceBefore = Number(await probe.redis.get(`${key}:fence`));

    // redis-cli SET '<position key>:paused' 'incident 42'
    await probe.redis.set(pausedKey(key), 'incident 42');
    await eventually('both instances paused', () =>
      apps.every((a) => status(a).state === 'paused'),
    );
    for (const app of apps)
      expect(status(app).paused).toMatchObject({ scope: 'fleet', reason: 'incident 42' });
    expect(await probe.redis.exists(`${key}:lease`)).toBe(0);
    // The holder saved the position of order 1 before it released the lease.
    expect(await probe.storedToken(spec.consumer, 'orders')).toEqual(handled(1)[0].token);

    await orders.insertMany([{ _id: 2 as never }, { _id: 3 as never }]);
    const resumedAt = Date.now();
    // redis-cli DEL '<position key>:paused'
    await probe.redis.del(pausedKey(key));
    await orders.insertOne({ _id: 4 as never });
    await eventually('order 4 (written after the resume) handled', () => handled(4).length === 1);

    for (const id of [2, 3, 4]) expect(handled(id)).toHaveLength(1);
    // Nothing was handled while paused: events 2 and 3 only after the key was deleted.
    expect(Math.min(...[2, 3].map((id) => handled(id)[0].at))).toBeGreaterThanOrEqual(resumedAt);
    // The first lease after the pause has the next fence: nobody acquired the stream meanwhile.
    const lease = await probe.redis.get(`${key}:lease`);
    expect(lease?.split(' ')[0]).toBe(String(fenceBefore + 1));
    await eventually(
      'one open, the other standing by again',
      () =>
        apps
          .map((a) => status(a).state)
          .sort()
          .join() === 'open,standby',
    );
  });

  it('without leases (in-memory store) a fleet-wide pause pauses this instance only, and says so', async () => {
    const app = await scope.app({
      dbName: uniqueName('control'),
      consumer: uniqueName('svc'),
      providers: [OrderListener],
      withoutRedis: true,
    });
    const orders = (await scope.probe(app.spec.dbName)).collection('orders');
    // A position to resume from (this test server gives none at open: a pause would wait for it).
    await orders.insertOne({ _id: 0 as never });
    await eventually('order 0 handled', () => handled(0).length === 1);
    const control = app.get(ChangeStreamControl);
    await control.pause('orders', { fleet: true, reason: 'incident' });
    expect(app.get(ChangeStreamRegistry).getStatus('orders')).toMatchObject({
      state: 'paused',
      paused: { scope: 'local', reason: 'incident' },
    });
    expect(
      app.logger.messages('warn').filter((m) => m.includes('a fleet-wide pause needs leases')),
    ).toHaveLength(1);
    await orders.insertOne({ _id: 1 as never });
    const resumedAt = Date.now();
    await control.resume('orders', { fleet: true });
    await eventually('order 1 handled after the resume', () => handled(1).length === 1);
    expect(handled(1)[0].at).toBeGreaterThanOrEqual(resumedAt);
  });

  it('a local pause drains, saves and hands the stream to the other instance, which takes no lease back until resumed', async () => {
    const { holder, other, status, probe, spec, orders } = await twoInstances();
    await orders.insertOne({ _id: 1 as never });
    await eventually('order 1 handled', () => handled(1).length === 1);
    const control = holder.get(ChangeStreamControl);
    await control.pause('orders', { reason: 'maintenance', by: 'ops' });
    expect(control.isPaused('orders')).toBe(true);
    expect(status(holder)).toMatchObject({
      state: 'paused',
      role: 'standby',
      paused: { scope: 'local', by: 'ops', reason: 'maintenance' },
    });
    // Its position was saved before the lease was released.
    expect(await probe.storedToken(spec.consumer, 'orders')).toEqual(handled(1)[0].token);
    await eventually('the other instance took over', () => status(other).role === 'active');
    await orders.insertOne({ _id: 2 as never });
    await eventually('order 2 handled by the other instance', () => handled(2).length === 1);
    expect(handled(2)[0].instance).toBe(status(other).instanceId);
    expect(handled(1)).toHaveLength(1);
    await control.resume('orders');
    await eventually('back as a standby', () => status(holder).state === 'standby');
    expect(control.isPaused('orders')).toBe(false);
  });

  it('pause(…, { fleet: true }) on a standby writes the pause key with who and why; the holder stops; resume(…, { fleet: true }) deletes it', async () => {
    const { holder, other, status, probe, key, orders } = await twoInstances();
    await orders.insertOne({ _id: 0 as never });
    await eventually('order 0 handled', () => handled(0).length === 1);
    const control = other.get(ChangeStreamControl);
    await control.pause('orders', { fleet: true, reason: 'deploy' });
    const value = JSON.parse((await probe.redis.get(pausedKey(key)))!);
    expect(value).toMatchObject({ by: status(other).instanceId, reason: 'deploy' });
    await eventually('the holder paused', () => status(holder).state === 'paused');
    expect(await probe.redis.exists(`${key}:lease`)).toBe(0);
    expect(holder.get(ChangeStreamControl).isPaused('orders')).toBe(true);
    await orders.insertOne({ _id: 1 as never });
    const resumedAt = Date.now();
    await control.resume('orders', { fleet: true });
    expect(await probe.redis.exists(pausedKey(key))).toBe(0);
    await orders.insertOne({ _id: 2 as never });
    await eventually('order 2 handled', () => handled(2).length === 1);
    expect(handled(1)).toHaveLength(1);
    expect(handled(1)[0].at).toBeGreaterThanOrEqual(resumedAt);
  });
});

@Injectable()
class ShopListener {
  static readonly called: string[] = [];
  static readonly orderTokens: unknown[] = [];

  @OnChange('orders')
  onOrder(change: mongo.ChangeStreamDocument) {
    ShopListener.called.push(`onOrder ${change.operationType}`);
    ShopListener.orderTokens.push(change._id);
  }

  @OnChange('orders', { enabled: false })
  onOrderAudit(change: mongo.ChangeStreamDocument) {
    ShopListener.called.push(`onOrderAudit ${change.operationType}`);
  }

  @OnChange('payments', { enabled: false })
  onPayment(change: mongo.ChangeStreamDocument) {
    ShopListener.called.push(`onPayment ${change.operationType}`);
  }
}

@Injectable()
class BadListener {
  @OnChange('orders', { retries: -1 })
  onOrder() {}
}

describe('enabled: false (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(async () => {
    ShopListener.called.length = 0;
    ShopListener.orderTokens.length = 0;
    await scope.closeAll();
  });

  it('a disabled module opens no stream and writes no Redis key, shows its streams as disabled and says so once', async () => {
    const keyPrefix = uniqueName('cs');
    const app = await scope.app({
      dbName: uniqueName('disabled'),
      consumer: uniqueName('svc'),
      providers: [ShopListener],
      changeStreams: { enabled: false, keyPrefix },
    });
    const probe = await scope.probe(app.spec.dbName);
    // An enabled module has its lease, candidates and start position in Redis before init() resolves.
    expect(await probe.redis.keys(`${keyPrefix}*`)).toEqual([]);
    expect(
      app.logger.messages('log').filter((m) => m.includes('Stream ') && m.includes('opened')),
    ).toEqual([]);
    expect(
      app.logger.messages('log').filter((m) => m.includes('ChangeStreamModule is disabled')),
    ).toHaveLength(1);
    const statuses = app.get(ChangeStreamRegistry).getStatuses();
    expect(statuses.map((s) => [s.collection, s.state, s.role])).toEqual([
      ['orders', 'disabled', null],
      ['payments', 'disabled', null],
    ]);
    expect(statuses[0]).toMatchObject({
      handlers: ['ShopListener.onOrder', 'ShopListener.onOrderAudit'],
      disabledHandlers: ['ShopListener.onOrderAudit'],
    });
    await expect(app.get(ChangeStreamControl).pause('orders')).rejects.toThrow(
      'is disabled on this instance',
    );
  });

  it('a fleet-wide pause asked of an instance where the stream is disabled writes the pause key and says only the enabled instances stop; without leases it is refused', async () => {
    const keyPrefix = uniqueName('cs');
    const app = await scope.app({
      dbName: uniqueName('disabled'),
      consumer: uniqueName('svc'),
      providers: [ShopListener],
      changeStreams: { enabled: false, keyPrefix },
    });
    const probe = await scope.probe(app.spec.dbName);
    const key = app.get(ChangeStreamRegistry).getStatus('orders')!.key;
    const control = app.get(ChangeStreamControl);
    await control.pause('orders', { fleet: true, reason: 'incident' });
    expect(JSON.parse((await probe.redis.get(pausedKey(key)))!)).toMatchObject({
      reason: 'incident',
    });
    expect(app.logger.messages('log')).toContain(
      `Stream ${key} is disabled on this instance (enabled: false): the fleet-wide pause key was written; the instances where the stream is enabled stop reading it within one lease renewal. Nothing runs here to pause.`,
    );
    await control.resume('orders', { fleet: true });
    expect(await probe.redis.exists(pausedKey(key))).toBe(0);
    expect(
      app.logger.messages('warn').filter((m) => m.includes('paused on this instance only')),
    ).toEqual([]);

    const memory = await scope.app({
      dbName: uniqueName('disabled'),
      consumer: uniqueName('svc'),
      providers: [ShopListener],
      withoutRedis: true,
      changeStreams: { enabled: false },
    });
    await expect(memory.get(ChangeStreamControl).pause('orders', { fleet: true })).rejects.toThrow(
      'and a fleet-wide pause needs leases (the Redis store, or a tokenStore whose leases implement writePause and renewReadingPause): nothing was paused or resumed.',
    );
    expect(
      memory.logger.messages('warn').filter((m) => m.includes('paused on this instance only')),
    ).toEqual([]);
  });

  it("a disabled module's own Redis client connects only when used (the dead-letter service), and closes cleanly either way", async () => {
    const redis = testEnv().redisUrl;
    const unused = createStores(
      resolveOptions({ consumer: uniqueName('svc'), redis, enabled: false }),
    );
    const client = (unused.tokens as RedisPositionStore).client;
    await delay(0); // an eager client would have started connecting by now
    expect(client.status).toBe('wait');
    await unused.close(1000);
    expect(client.status).toBe('end');

    const used = createStores(
      resolveOptions({ consumer: uniqueName('svc'), redis, enabled: false }),
    );
    expect(await used.deadLetters.list()).toEqual([]);
    expect((used.tokens as RedisPositionStore).client.status).toBe('ready');
    await used.close(1000);
  });

  it('enabled comes through forRootAsync as well', async () => {
    const module = await Test.createTestingModule({
      imports: [
        MongooseModule.forRoot(testEnv().mongoUri, { dbName: uniqueName('disabled') }),
        ChangeStreamModule.forRootAsync({
          useFactory: async () => ({ consumer: uniqueName('svc'), enabled: false }),
        }),
      ],
      providers: [ShopListener],
    }).compile();
    scope.track(module);
    await module.init();
    expect(
      module
        .get(ChangeStreamRegistry)
        .getStatuses()
        .map((s) => s.state),
    ).toEqual(['disabled', 'disabled']);
  });

  it('a disabled module still fails startup on bad handler options', async () => {
    const { error } = await TestApp.startExpectingFailure({
      dbName: uniqueName('disabled'),
      consumer: uniqueName('svc'),
      providers: [BadListener],
      changeStreams: { enabled: false },
    });
    expect(error.message).toMatch(/BadListener\.onOrder.*retries/s);
  });

  it('a disabled handler is left out of its stream; a stream whose handlers are all disabled is not opened', async () => {
    const keyPrefix = uniqueName('cs');
    const app = await scope.app({
      dbName: uniqueName('disabled'),
      consumer: uniqueName('svc'),
      providers: [ShopListener],
      changeStreams: { keyPrefix },
    });
    const probe = await scope.probe(app.spec.dbName);
    const registry = app.get(ChangeStreamRegistry);
    expect(registry.getStatus('orders')).toMatchObject({
      state: 'open',
      handlers: ['ShopListener.onOrder'],
      disabledHandlers: ['ShopListener.onOrderAudit'],
    });
    // Its handler is shown, with its disabled state: not an empty stream.
    expect(registry.getStatus('payments')).toMatchObject({
      state: 'disabled',
      handlers: ['ShopListener.onPayment'],
      disabledHandlers: ['ShopListener.onPayment'],
    });
    const keys = await probe.redis.keys(`${keyPrefix}*`);
    expect(keys.some((k) => k.includes(':orders}:lease'))).toBe(true);
    expect(keys.filter((k) => k.includes('payments'))).toEqual([]);
    expect(app.logger.messages('log').filter((m) => m.includes('Handler(s) disabled'))).toEqual([
      'Handler(s) disabled (enabled: false), not called: ShopListener.onOrderAudit, ShopListener.onPayment; ' +
        `stream(s) not opened, every handler disabled: ${registry.getStatus('payments')!.key}.`,
    ]);
    await probe.collection('orders').insertOne({ _id: 1 as never });
    // Acknowledged (stored) means every handler of its stream ran: the disabled one is not among them.
    await eventually(
      'order 1 handled and its position stored',
      async () =>
        ShopListener.orderTokens.length === 1 &&
        JSON.stringify(await probe.storedToken(app.spec.consumer, 'orders', keyPrefix)) ===
          JSON.stringify(ShopListener.orderTokens[0]),
    );
    expect(ShopListener.called).toEqual(['onOrder insert']);
  });
});
