import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { Injectable, type Provider } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  type ChangeContext,
  type ChangeOf,
  ChangeStreamConfigError,
  ChangeStreamDeadLetters,
  HandlerFailedError,
  OnChange,
} from '../../lib/index.js';
import { deploymentKey, positionKey } from '../../lib/redis/redis-keys.js';
import {
  ChangeStreamTester,
  ChangeStreamTestingModule,
  type ChangeStreamTestingOptions,
  changeEvents,
} from '../../lib/testing/index.js';
import { CapturingLogger } from '../fixtures/capturing-logger.js';

/** The testing module with `streams: 'database'` and tenant patterns, as production plans and routes them. */

interface Order {
  _id: string;
  total: number;
}
interface Customer {
  _id: string;
  name: string;
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Two collections of one database; `gate` holds the first call on document `o1` until released. */
@Injectable()
class ShopListener {
  readonly log: string[] = [];
  gate: Promise<void> | undefined;
  readonly started = deferred();

  @OnChange<Order>('orders')
  async onOrder(change: ChangeOf<Order>, context: ChangeContext): Promise<void> {
    const id = (change as { documentKey?: { _id: string } }).documentKey?._id;
    this.log.push(`start ${context.collection}/${id} ${change.operationType}`);
    if (id === 'o1' && change.operationType === 'insert') {
      this.started.resolve();
      await this.gate;
    }
    this.log.push(`end ${context.collection}/${id} ${change.operationType}`);
  }

  @OnChange<Customer, 'insert' | 'update'>('customers', { operationTypes: ['insert', 'update'] })
  onCustomer(change: ChangeOf<Customer, 'insert' | 'update'>, context: ChangeContext): void {
    this.log.push(`start ${context.collection}/${change.documentKey._id} ${change.operationType}`);
    this.log.push(`end ${context.collection}/${change.documentKey._id} ${change.operationType}`);
  }
}

/** Logs each call's start and end; a call on a gated document waits for its gate. */
@Injectable()
class GatedShopListener {
  readonly log: string[] = [];
  readonly gates = new Map<string, { started: ReturnType<typeof deferred>; open: Promise<void> }>();

  gate(document: string) {
    const open = deferred();
    this.gates.set(document, { started: deferred(), open: open.promise });
    return { started: this.gates.get(document)!.started.promise, open: open.resolve };
  }

  @OnChange('orders')
  onOrder(change: ChangeOf, context: ChangeContext): Promise<void> {
    return this.run(change, context);
  }

  @OnChange('customers')
  onCustomer(change: ChangeOf, context: ChangeContext): Promise<void> {
    return this.run(change, context);
  }

  private async run(change: ChangeOf, context: ChangeContext): Promise<void> {
    const id = (change as { documentKey?: { _id: string } }).documentKey?._id;
    const call = `${context.collection}/${id} ${change.operationType}`;
    this.log.push(`start ${call}`);
    const gate = this.gates.get(`${context.collection}/${id}`);
    if (gate && change.operationType === 'insert') {
      gate.started.resolve();
      await gate.open;
    }
    this.log.push(`end ${call}`);
  }
}

/** In database mode these two would share a stream, but only one asks for pre-images as `'required'`. */
@Injectable()
class RequiredPreImagesListener {
  @OnChange('orders', { fullDocumentBeforeChange: 'required' })
  onOrder(): void {}

  @OnChange('customers')
  onCustomer(): void {}
}

/** A collection that only a tenant pattern watches. */
@Injectable()
class TenantOnlyListener {
  readonly databases: string[] = [];

  @OnChange({ collection: 'orders', database: /^tenant_/ })
  onTenantOrder(_change: ChangeOf, context: ChangeContext): void {
    this.databases.push(context.database);
  }
}

/** A collection in every tenant database, and one handler of the app's own database. */
@Injectable()
class TenantOrdersListener {
  readonly contexts: ChangeContext[] = [];
  failFor: string | undefined;

  @OnChange({ collection: 'orders', database: /^tenant_/ }, { onFailure: 'dead-letter' })
  onTenantOrder(_change: ChangeOf, context: ChangeContext): void {
    this.contexts.push(context);
    if (context.database === this.failFor) throw new Error(`refused in ${context.database}`);
  }

  @OnChange<Order>('orders')
  onOwnOrder(_change: ChangeOf<Order>, context: ChangeContext): void {
    this.contexts.push(context);
  }
}

const opened: TestingModule[] = [];
let logs = new CapturingLogger();

async function compile(
  providers: Provider[],
  options?: ChangeStreamTestingOptions,
): Promise<TestingModule> {
  logs = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [ChangeStreamTestingModule.forRoot(options)],
    providers,
  })
    .setLogger(logs)
    .compile();
  opened.push(moduleRef);
  return moduleRef;
}

afterEach(async () => {
  jest.restoreAllMocks();
  await Promise.all(opened.splice(0).map((m) => m.close()));
});

const nsOf = (outcome: { change: unknown }) => (outcome.change as { ns?: unknown }).ns;
const names = (outcome: { handlers: ReadonlyArray<{ handler: string }> }) =>
  outcome.handlers.map((h) => h.handler);

describe("ChangeStreamTestingModule with streams: 'database'", () => {
  it('routes the events of two collections to their handlers through one stream: one at a time, in emission order', async () => {
    const moduleRef = await compile([ShopListener], { streams: 'database' });
    await moduleRef.init();
    const tester = moduleRef.get(ChangeStreamTester);
    const shop = moduleRef.get(ShopListener);
    const gate = deferred();
    shop.gate = gate.promise;

    const first = tester.emit(
      'orders',
      changeEvents.insert<Order>('orders', { _id: 'o1', total: 1 }),
    );
    const customer = tester.emit(
      'customers',
      changeEvents.insert<Customer>('customers', { _id: 'c1', name: 'ada' }),
    );
    const again = tester.emit(
      'orders',
      changeEvents.update<Order>('orders', { _id: 'o1' }, { updatedFields: { total: 2 } }),
    );
    // Same _id in another collection: another document.
    const sameId = tester.emit(
      'customers',
      changeEvents.update<Customer>('customers', { _id: 'o1', name: 'bob' }),
    );
    await shop.started.promise;
    // Give a wrongly independent customers stream every chance to run before the gate opens.
    await new Promise((resolve) => setImmediate(resolve));
    gate.resolve();
    const outcomes = await Promise.all([first, customer, again, sameId]);

    // One database stream, one cap (production's default concurrency 1): the customers event
    // waited for the orders event before it, though it is of another collection.
    expect(shop.log).toEqual([
      'start orders/o1 insert',
      'end orders/o1 insert',
      'start customers/c1 insert',
      'end customers/c1 insert',
      'start orders/o1 update',
      'end orders/o1 update',
      'start customers/o1 update',
      'end customers/o1 update',
    ]);
    expect(outcomes.map((o) => [o.collection, o.database, names(o), o.acknowledged])).toEqual([
      ['orders', 'test', ['ShopListener.onOrder'], true],
      ['customers', 'test', ['ShopListener.onCustomer'], true],
      ['orders', 'test', ['ShopListener.onOrder'], true],
      ['customers', 'test', ['ShopListener.onCustomer'], true],
    ]);
    expect(outcomes[1].handlers[0].contexts[0]).toMatchObject({
      collection: 'customers',
      database: 'test',
      connectionName: 'default',
    });
  });

  it('with concurrency 2, caps the whole database stream at 2, keeps per-document order, and keys documents by collection and _id', async () => {
    const moduleRef = await compile([GatedShopListener], { streams: 'database', concurrency: 2 });
    const tester = moduleRef.get(ChangeStreamTester);
    const shop = moduleRef.get(GatedShopListener);
    const order = shop.gate('orders/x1');
    const customer = shop.gate('customers/x1');

    const a = tester.emit('orders', changeEvents.insert('orders', { _id: 'x1' }));
    const b = tester.emit('customers', changeEvents.insert('customers', { _id: 'x1' }));
    const c = tester.emit('orders', changeEvents.update('orders', { _id: 'x1' }));
    const d = tester.emit('customers', changeEvents.insert('customers', { _id: 'c2' }));
    // The same _id in two collections: two documents, running at once.
    await Promise.all([order.started, customer.started]);
    customer.open();
    // customers/c2 needed one of the two slots of the database stream: it ran once customers/x1 ended.
    expect(names(await d)).toEqual(['GatedShopListener.onCustomer']);
    order.open();
    const outcomes = await Promise.all([a, b, c]);
    expect(shop.log).toEqual([
      'start orders/x1 insert',
      'start customers/x1 insert',
      'end customers/x1 insert',
      'start customers/c2 insert',
      'end customers/c2 insert',
      'end orders/x1 insert',
      // Its document's previous event first.
      'start orders/x1 update',
      'end orders/x1 update',
    ]);
    expect(outcomes.map((o) => [o.collection, names(o), o.acknowledged])).toEqual([
      ['orders', ['GatedShopListener.onOrder'], true],
      ['customers', ['GatedShopListener.onCustomer'], true],
      ['orders', ['GatedShopListener.onOrder'], true],
    ]);
  });

  it("with concurrency, a failure under 'stop' stops the database stream: events queued behind it are not delivered until a restart", async () => {
    const moduleRef = await compile([GatedShopListener], { streams: 'database', concurrency: 2 });
    const tester = moduleRef.get(ChangeStreamTester);
    const shop = moduleRef.get(GatedShopListener);
    const order = shop.gate('orders/x1');
    const failing = tester.emit('orders', changeEvents.insert('orders', { _id: 'x1' }));
    await order.started;
    const behind = tester.emit('orders', changeEvents.update('orders', { _id: 'x1' }));
    jest.spyOn(shop, 'onCustomer').mockRejectedValue(new Error('customers down'));
    const failed = await tester.emit('customers', changeEvents.insert('customers', { _id: 'c1' }));
    expect(failed.failure).toBeInstanceOf(HandlerFailedError);
    order.open();
    expect(await failing).toMatchObject({ delivered: true, acknowledged: true });
    expect(await behind).toMatchObject({ delivered: false, acknowledged: false, handlers: [] });
    expect(await tester.emit('orders', changeEvents.insert('orders', { _id: 'x2' }))).toMatchObject(
      { delivered: false },
    );
    tester.restart();
    expect(
      names(await tester.emit('orders', changeEvents.insert('orders', { _id: 'x2' }))),
    ).toEqual(['GatedShopListener.onOrder']);
  });

  it('with concurrency, closing the module aborts the running calls; their failures are not recorded, queued events never start', async () => {
    const moduleRef = await compile([GatedShopListener], {
      streams: 'database',
      concurrency: 2,
      onHandlerFailure: 'dead-letter',
    });
    const tester = moduleRef.get(ChangeStreamTester);
    const shop = moduleRef.get(GatedShopListener);
    const started: string[] = [];
    const both = deferred();
    jest.spyOn(shop, 'onOrder').mockImplementation(async (change, context) => {
      started.push(String((change as { documentKey?: { _id: unknown } }).documentKey?._id));
      if (started.length === 2) both.resolve();
      await new Promise((resolve) =>
        context.signal.addEventListener('abort', resolve, { once: true }),
      );
      throw new Error('aborted');
    });
    const running = [
      tester.emit('orders', changeEvents.insert('orders', { _id: 'x1' })),
      tester.emit('orders', changeEvents.insert('orders', { _id: 'x2' })),
    ];
    const queued = tester.emit('orders', changeEvents.update('orders', { _id: 'x1' }));
    await both.promise;
    opened.splice(opened.indexOf(moduleRef), 1);
    await moduleRef.close();
    for (const outcome of await Promise.all(running)) {
      expect(outcome).toMatchObject({ delivered: true, acknowledged: false, deadLetters: [] });
      expect(outcome.handlers[0]).toMatchObject({ status: 'failed', attempts: 1 });
    }
    expect(await queued).toMatchObject({ acknowledged: false, handlers: [] });
    expect(started).toEqual(['x1', 'x2']);
    expect(await tester.deadLetters()).toEqual([]);
  });

  it('keeps per-collection streams independent in the default mode (the contrast)', async () => {
    const moduleRef = await compile([ShopListener]);
    const tester = moduleRef.get(ChangeStreamTester);
    const shop = moduleRef.get(ShopListener);
    const gate = deferred();
    shop.gate = gate.promise;
    const first = tester.emit(
      'orders',
      changeEvents.insert<Order>('orders', { _id: 'o1', total: 1 }),
    );
    await shop.started.promise;
    // The customers stream is another stream: its event is handled while orders/o1 still runs.
    const customer = await tester.emit(
      'customers',
      changeEvents.insert<Customer>('customers', { _id: 'c1', name: 'ada' }),
    );
    expect(names(customer)).toEqual(['ShopListener.onCustomer']);
    gate.resolve();
    await first;
    expect(shop.log.slice(0, 3)).toEqual([
      'start orders/o1 insert',
      'start customers/c1 insert',
      'end customers/c1 insert',
    ]);
  });

  it('routes a rename to the handlers of its source and of its target collection', async () => {
    const moduleRef = await compile([ShopListener], { streams: 'database' });
    const tester = moduleRef.get(ChangeStreamTester);
    const rename = await tester.emit('orders', changeEvents.rename('orders', 'customers'));
    // onCustomer lists only insert and update: it does not want the rename.
    expect(names(rename)).toEqual(['ShopListener.onOrder']);
    // A rename into a watched collection, from one nobody watches: the target's handlers get it.
    const into = await tester.emit('archive', changeEvents.rename('archive', 'orders'));
    expect(names(into)).toEqual(['ShopListener.onOrder']);
  });

  it('raises the startup errors production raises in database mode, with its messages', async () => {
    // Fine with a stream per collection…
    const perCollection = await compile([RequiredPreImagesListener]);
    await expect(perCollection.init()).resolves.toBe(perCollection);
    // …refused when the two collections would share one database stream.
    const database = await compile([RequiredPreImagesListener], { streams: 'database' });
    const error = await database.init().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect((error as Error).message).toBe(
      `streams: 'database' on connection 'default': RequiredPreImagesListener.onOrder ('orders') and ` +
        `RequiredPreImagesListener.onCustomer ('customers') would share one database stream but set different ` +
        `"fullDocumentBeforeChange" ("required" vs unset), which shapes every event of it. Give them the same value, ` +
        `or use streams: { connections: { 'default': 'collection' } } for that connection.`,
    );
    // The per-connection form, as production reads it.
    const overridden = await compile([RequiredPreImagesListener], {
      streams: { default: 'database', connections: { default: 'collection' } },
    });
    await expect(overridden.init()).resolves.toBe(overridden);
    expect(() => ChangeStreamTestingModule.forRoot({ streams: 'databases' as never })).toThrow(
      new ChangeStreamConfigError(
        `ChangeStreamModule: option "streams" is "databases"; expected 'collection' or 'database', ` +
          `or { default?: 'collection' | 'database', connections?: { [connectionName]: 'collection' | 'database' } }.`,
      ),
    );
  });

  it("warns, as production does, of a streams.connections entry that no handler's connection has", async () => {
    const moduleRef = await compile([ShopListener], {
      streams: { connections: { archiv: 'database' } },
    });
    await moduleRef.init();
    expect(logs.messages('warn').join('\n')).toContain(
      `option "streams.connections" names 'archiv', which no handler of this module uses`,
    );
  });

  it("gives dead letters of a database stream production's stream key, and replays them", async () => {
    @Injectable()
    class Failing {
      calls = 0;
      @OnChange('orders', { onFailure: 'dead-letter', retries: 0 })
      onOrder(): void {
        if (++this.calls === 1) throw new Error('first call fails');
      }
      @OnChange('customers')
      onCustomer(): void {}
    }
    const moduleRef = await compile([Failing], { streams: 'database', consumer: 'shop' });
    const tester = moduleRef.get(ChangeStreamTester);
    const outcome = await tester.emit('orders', changeEvents.insert('orders', { _id: 'o9' }));
    expect(outcome.handlers[0].status).toBe('dead-lettered');
    const [letter] = await tester.deadLetters();
    expect(letter).toMatchObject({
      streamKey: positionKey('change-stream', 'shop', 'test', '$database'),
      database: 'test',
      collection: 'orders',
    });
    await moduleRef.get(ChangeStreamDeadLetters).replay(letter.id);
    expect(moduleRef.get(Failing).calls).toBe(2);
    expect(await tester.deadLetters()).toEqual([]);
  });
});

describe('ChangeStreamTestingModule with tenant patterns', () => {
  it('delivers an event of a matching database with context.database set; one of another database reaches no handler', async () => {
    const moduleRef = await compile([TenantOrdersListener]);
    await moduleRef.init();
    const tester = moduleRef.get(ChangeStreamTester);
    const listener = moduleRef.get(TenantOrdersListener);

    const tenant = await tester.emit(
      'orders',
      changeEvents.forDatabase('tenant_a').insert<Order>('orders', { _id: 'o1', total: 1 }),
    );
    expect(names(tenant)).toEqual(['TenantOrdersListener.onTenantOrder']);
    expect(tenant).toMatchObject({
      database: 'tenant_a',
      collection: 'orders',
      delivered: true,
      acknowledged: true,
    });
    expect(tenant.handlers[0].contexts[0]).toMatchObject({
      database: 'tenant_a',
      collection: 'orders',
      connectionName: 'default',
    });

    // A partial event, its database named in the emit options.
    const partial = await tester.emit<Order>(
      'orders',
      { operationType: 'delete', documentKey: { _id: 'o1' } },
      { database: 'tenant_b' },
    );
    expect((partial.change as { ns?: unknown }).ns).toEqual({ db: 'tenant_b', coll: 'orders' });
    expect(partial.handlers[0].contexts[0].database).toBe('tenant_b');

    // A database the pattern does not match: the outcome says no handler ran.
    const other = await tester.emit(
      'orders',
      changeEvents.forDatabase('shop').insert<Order>('orders', { _id: 'o2', total: 2 }),
    );
    expect(other).toMatchObject({ database: 'shop', collection: 'orders', handlers: [] });

    // The app's own database (the testing module's "database"): the plain handler only.
    const own = await tester.emit(
      'orders',
      changeEvents.insert<Order>('orders', { _id: 'o3', total: 3 }),
    );
    expect(names(own)).toEqual(['TenantOrdersListener.onOwnOrder']);
    expect(listener.contexts.map((c) => `${c.handler}@${c.database}`)).toEqual([
      'TenantOrdersListener.onTenantOrder@tenant_a',
      'TenantOrdersListener.onTenantOrder@tenant_b',
      'TenantOrdersListener.onOwnOrder@test',
    ]);
  });

  it("reports both streams' handlers when the app's own database matches the pattern too", async () => {
    const moduleRef = await compile([TenantOrdersListener], { database: 'tenant_main' });
    const tester = moduleRef.get(ChangeStreamTester);
    const outcome = await tester.emit(
      'orders',
      changeEvents.forDatabase('tenant_main').insert<Order>('orders', { _id: 'o1', total: 1 }),
    );
    // The collection stream of tenant_main.orders and the deployment stream both read it.
    expect(names(outcome).sort()).toEqual([
      'TenantOrdersListener.onOwnOrder',
      'TenantOrdersListener.onTenantOrder',
    ]);
    expect(outcome).toMatchObject({ database: 'tenant_main', acknowledged: true, delivered: true });
    expect(outcome.handlers.map((h) => h.contexts[0].database)).toEqual([
      'tenant_main',
      'tenant_main',
    ]);
  });

  it('emits on the object form @OnChange names, in the database the options or the event name', async () => {
    const moduleRef = await compile([TenantOrdersListener]);
    const tester = moduleRef.get(ChangeStreamTester);
    const tenantOrders = { collection: 'orders', database: /^tenant_/ };
    const outcome = await tester.emit<Order>(
      tenantOrders,
      { operationType: 'insert', fullDocument: { _id: 'o1', total: 1 } },
      { database: 'tenant_c' },
    );
    expect(outcome).toMatchObject({ database: 'tenant_c', collection: 'orders' });
    expect(outcome.handlers[0].contexts[0]).toMatchObject({
      handler: 'TenantOrdersListener.onTenantOrder',
      database: 'tenant_c',
    });
    const [first, second] = await tester.emitMany(tenantOrders, [
      changeEvents.forDatabase('tenant_d').delete('orders', { _id: 'o1' }),
      changeEvents.forDatabase('shop').delete('orders', { _id: 'o1' }),
    ]);
    expect([first.database, names(first)]).toEqual([
      'tenant_d',
      ['TenantOrdersListener.onTenantOrder'],
    ]);
    expect([second.database, names(second)]).toEqual(['shop', []]);
    await expect(
      tester.emit(tenantOrders, { operationType: 'delete', documentKey: { _id: 'o1' } } as never),
    ).rejects.toThrow(
      "Emitting on { collection: 'orders', database: /^tenant_/ } needs the event's database: pass { database: 'tenant_a' }",
    );
  });

  it("dead-letters a tenant handler's failure under the deployment stream's key, and replays it in its database", async () => {
    const moduleRef = await compile([TenantOrdersListener], { consumer: 'shop' });
    const tester = moduleRef.get(ChangeStreamTester);
    const listener = moduleRef.get(TenantOrdersListener);
    listener.failFor = 'tenant_b';
    const outcome = await tester.emit(
      'orders',
      changeEvents.forDatabase('tenant_b').insert<Order>('orders', { _id: 'o1', total: 1 }),
    );
    expect(outcome.handlers[0]).toMatchObject({ status: 'dead-lettered', attempts: 4 });
    const [letter] = await tester.deadLetters();
    expect(letter).toMatchObject({
      streamKey: deploymentKey('change-stream', 'shop', 'default'),
      database: 'tenant_b',
      collection: 'orders',
    });
    listener.failFor = undefined;
    await moduleRef.get(ChangeStreamDeadLetters).replay(letter.id);
    expect(listener.contexts.at(-1)).toMatchObject({ database: 'tenant_b', attempt: 1 });
  });

  it('refuses an event that no stream would read, naming what is watched', async () => {
    const moduleRef = await compile([ShopListener]);
    const tester = moduleRef.get(ChangeStreamTester);
    await expect(
      tester.emit('orders', changeEvents.forDatabase('tenant_a').insert('orders', { _id: 'o1' })),
    ).rejects.toThrow(
      'has ns.db "tenant_a", but that stream watches database "test". Build it with changeEvents.forDatabase(\'test\')',
    );
    await expect(
      tester.emit('orders', changeEvents.insert('orders', { _id: 'o1' }), { database: 'shop' }),
    ).rejects.toThrow(
      'No @OnChange handler watches "orders" on connection "default" in database "shop". Watched: "orders" (connection "default"), "customers" (connection "default").',
    );
  });
});

describe('ChangeStreamTester: the database an event is emitted in', () => {
  const order = { _id: 'o1', total: 1 };

  it("sets ns.db of an event built for the app's database to the database the emit names (option or object form)", async () => {
    const moduleRef = await compile([TenantOnlyListener]);
    const tester = moduleRef.get(ChangeStreamTester);
    const byObject = await tester.emit(
      { collection: 'orders', database: 'tenant_w' },
      changeEvents.insert('orders', order),
    );
    expect(byObject).toMatchObject({ database: 'tenant_w', collection: 'orders' });
    expect(nsOf(byObject)).toEqual({ db: 'tenant_w', coll: 'orders' });
    const byOption = await tester.emit('orders', changeEvents.insert('orders', order), {
      database: 'tenant_q',
    });
    expect(nsOf(byOption)).toEqual({ db: 'tenant_q', coll: 'orders' });
    const [many] = await tester.emitMany('orders', [changeEvents.delete('orders', order)], {
      database: 'tenant_m',
    });
    expect(nsOf(many)).toEqual({ db: 'tenant_m', coll: 'orders' });
    const renamed = await tester.emit('orders', changeEvents.rename('orders', 'archive'), {
      database: 'tenant_r',
    });
    expect(renamed.change).toMatchObject({
      ns: { db: 'tenant_r', coll: 'orders' },
      to: { db: 'tenant_r', coll: 'archive' },
    });
    expect(moduleRef.get(TenantOnlyListener).databases).toEqual([
      'tenant_w',
      'tenant_q',
      'tenant_m',
      'tenant_r',
    ]);
  });

  it('refuses an event built for another database than the one the emit names', async () => {
    const moduleRef = await compile([TenantOnlyListener]);
    const tester = moduleRef.get(ChangeStreamTester);
    const message =
      'The "insert" event was built for database "tenant_v" (its ns.db), but the emit names database "tenant_w". ' +
      "Build it with changeEvents.forDatabase('tenant_w') (or with changeEvents, for the app's database \"test\"), " +
      'or emit it in "tenant_v".';
    const forV = changeEvents.forDatabase('tenant_v').insert('orders', order);
    const byObject = tester.emit({ collection: 'orders', database: 'tenant_w' }, forV);
    await expect(byObject).rejects.toThrow(new Error(message));
    await expect(byObject).rejects.not.toBeInstanceOf(TypeError);
    await expect(tester.emit('orders', forV, { database: 'tenant_w' })).rejects.toThrow(message);
    await expect(tester.emitMany('orders', [forV], { database: 'tenant_w' })).rejects.toThrow(
      message,
    );
    // The same database, named twice, is no conflict.
    const same = await tester.emit('orders', forV, { database: 'tenant_v' });
    expect(same.database).toBe('tenant_v');
    expect(moduleRef.get(TenantOnlyListener).databases).toEqual(['tenant_v']);
  });

  it("refuses an event left in the app's database when only database patterns watch its collection, naming the pattern", async () => {
    const moduleRef = await compile([TenantOnlyListener]);
    const tester = moduleRef.get(ChangeStreamTester);
    const message =
      'The "insert" event emitted on test.orders reaches no handler: "orders" is watched only in databases /^tenant_/ ' +
      '(connection "default"), which "test" (the app\'s database, used as the emit named none) does not match. ' +
      "Name the tenant's database: pass { database: 'tenant_a' } (say) as the emit options, or build the event with " +
      "changeEvents.forDatabase('tenant_a'). To check that no handler runs in \"test\", pass { database: 'test' }.";
    await expect(tester.emit('orders', changeEvents.insert('orders', order))).rejects.toThrow(
      new Error(message),
    );
    await expect(
      tester.emit<Order>('orders', { operationType: 'insert', fullDocument: order }),
    ).rejects.toThrow(message);
    await expect(tester.emitMany('orders', [changeEvents.insert('orders', order)])).rejects.toThrow(
      message,
    );
    // Named, the app's database gives its outcome: no handler ran.
    const named = await tester.emit('orders', changeEvents.insert('orders', order), {
      database: 'test',
    });
    expect(named).toMatchObject({ database: 'test', handlers: [], delivered: true });
    expect(moduleRef.get(TenantOnlyListener).databases).toEqual([]);
  });

  it('closes after a failed init without raising the startup error again', async () => {
    const moduleRef = await compile([RequiredPreImagesListener], { streams: 'database' });
    await expect(moduleRef.init()).rejects.toBeInstanceOf(ChangeStreamConfigError);
    await expect(moduleRef.close()).resolves.toBeUndefined();
  });
});
