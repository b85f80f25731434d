import 'reflect-metadata';
import { afterAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { Prop, Schema, SchemaFactory } from '@nestjs/mongoose';
import { Test } from '@nestjs/testing';
import mongoose, { type Connection } from 'mongoose';
import { ON_CHANGE_METADATA } from '../../lib/change-stream.constants.js';
import { modelCollectionResolver } from '../../lib/change-stream.planning.js';
import { modelCollection } from '../../lib/decorators/model-collection.js';
import { ChangeStreamConfigError, type ChangeOf, collection, OnChange } from '../../lib/index.js';
import { ChangeStreamTester, ChangeStreamTestingModule } from '../../lib/testing/index.js';

// Class names chosen to go through Mongoose's pluralization rules (plain, -y, -s, -us, -ch,
// irregular, uncountable, already plural).
@Schema()
class Order {
  @Prop()
  total!: number;
}
@Schema()
class Category {}
@Schema()
class Status {}
@Schema()
class Person {}
@Schema()
class Octopus {}
@Schema()
class Match {}
@Schema()
class Mouse {}
@Schema()
class Information {}
@Schema()
class Orders {}
@Schema({ collection: 'purchase_orders' })
class PurchaseOrder {}
@Schema({ timestamps: true })
class Invoice {}

class NotASchema {}

const SCHEMA_CLASSES = [
  Order,
  Category,
  Status,
  Person,
  Octopus,
  Match,
  Mouse,
  Information,
  Orders,
  PurchaseOrder,
  Invoice,
];

/** A `@Schema()` class with a name no class declaration can have. */
function schemaClassNamed(name: string, options?: mongoose.SchemaOptions): new () => object {
  const target = class {};
  Object.defineProperty(target, 'name', { value: name });
  Schema(options)(target);
  return target;
}

const connections: Connection[] = [];
/** A connection that never connects: Mongoose names a model's collection without a server. */
function offline(base: mongoose.Mongoose = mongoose): Connection {
  const connection = base.createConnection();
  connections.push(connection);
  return connection;
}
afterAll(async () => {
  await Promise.all(connections.map((c) => c.close()));
});

/** The collection Mongoose itself gives the model of `target` registered under the class name. */
function mongooseNames(target: new () => object, connection: Connection): string {
  return connection.model(target.name, SchemaFactory.createForClass(target)).collection
    .collectionName;
}

describe('the collection of a @Schema() class or a model (as Mongoose names it)', () => {
  it('matches the name Mongoose gives the model of every class, with or without a connection', () => {
    const connection = offline();
    const ours = SCHEMA_CLASSES.map((target) => modelCollection(target));
    expect(ours).toEqual(
      SCHEMA_CLASSES.map((target) => ({ name: mongooseNames(target, offline()) })),
    );
    expect(ours.map((r) => ('name' in r ? r.name : r.reason))).toEqual([
      'orders',
      'categories',
      'status', // uncountable for Mongoose
      'people',
      'octopi',
      'matches',
      'mice',
      'information',
      'orders',
      'purchase_orders',
      'invoices',
    ]);
    expect(SCHEMA_CLASSES.map((target) => modelCollection(target, connection))).toEqual(ours);
  });

  it("uses the connection's Mongoose pluralize(): none, or a function of one's own", () => {
    const plain = new mongoose.Mongoose();
    plain.pluralize(null);
    const custom = new mongoose.Mongoose();
    custom.pluralize((name) => `${name.toLowerCase()}_list`);
    // Not in Mongoose's types, read by its constructor (lib/mongoose.js).
    const constructedWithout = new mongoose.Mongoose({
      pluralization: false,
    } as mongoose.MongooseOptions);
    for (const [base, expected] of [
      [plain, ['Order', 'Category', 'purchase_orders']],
      [custom, ['order_list', 'category_list', 'purchase_orders']],
      [constructedWithout, ['Order', 'Category', 'purchase_orders']],
    ] as const) {
      const targets = [Order, Category, PurchaseOrder];
      const ours = targets.map((t) => modelCollection(t, offline(base)));
      expect(ours).toEqual(expected.map((name) => ({ name })));
      expect(targets.map((t) => mongooseNames(t, offline(base)))).toEqual(expected);
    }
  });

  it('takes the model registered under the class name, with its own collection (forFeature `collection`)', () => {
    const connection = offline();
    connection.model('Order', SchemaFactory.createForClass(Order), 'legacy_orders');
    expect(modelCollection(Order, connection)).toEqual({ name: 'legacy_orders' });
    // Not on another connection.
    expect(modelCollection(Order, offline())).toEqual({ name: 'orders' });
  });

  it('takes a Mongoose model as given', () => {
    const connection = offline();
    const model = connection.model('Audit', new mongoose.Schema({}, { collection: 'audit_log' }));
    expect(modelCollection(model as never)).toEqual({ name: 'audit_log' });
    const plain = connection.model('Shipment', new mongoose.Schema({}));
    expect(modelCollection(plain as never, offline())).toEqual({ name: 'shipments' });
  });

  it('keeps the names Mongoose never pluralizes', () => {
    const Profile = schemaClassNamed('system.profile');
    expect(modelCollection(Profile)).toEqual({ name: 'system.profile' });
    expect(mongooseNames(Profile, offline())).toBe('system.profile');
  });

  it('finds a class that is no schema, unless a model is registered under its name', () => {
    expect(modelCollection(NotASchema)).toEqual({
      reason: 'it is not a @Schema() class, not a Mongoose model',
    });
    const connection = offline();
    expect(modelCollection(NotASchema, connection)).toEqual({
      reason:
        'it is not a @Schema() class, not a Mongoose model, and no model is registered as "NotASchema"',
    });
    connection.model('NotASchema', new mongoose.Schema({}));
    expect(modelCollection(NotASchema, connection)).toEqual({ name: 'notaschemas' });
  });

  it('cannot name an anonymous @Schema() class without a collection option', () => {
    expect(modelCollection(schemaClassNamed(''))).toEqual({
      reason: 'the class has no name and its @Schema() no collection option',
    });
    expect(modelCollection(schemaClassNamed('', { collection: 'things' }))).toEqual({
      name: 'things',
    });
  });

  it('fails startup with a message naming the class, the handler, the connection and the ways out', () => {
    const resolve = modelCollectionResolver();
    expect(resolve(Order, 'default', 'Listener.onOrder')).toBe('orders');
    expect(() => resolve(NotASchema, 'reports', 'Listener.onThing')).toThrow(
      new ChangeStreamConfigError(
        '@OnChange(NotASchema) on Listener.onThing: cannot tell which collection NotASchema is stored in: ' +
          'it is not a @Schema() class, not a Mongoose model. ' +
          'Decorate the class with @Schema() from @nestjs/mongoose (its collection is then named as Mongoose names it), ' +
          'register its model on connection "reports" under the class name (MongooseModule.forFeature([{ name: NotASchema.name, schema }])), ' +
          "or name the collection: @OnChange(collection<NotASchema>('<name>')).",
      ),
    );
  });
});

describe('@OnChange with a typed source', () => {
  it('records the name of a collection<T>() token, and the class of a schema, to resolve at startup', () => {
    const Customers = collection<{ name: string }>('customers');
    class Listener {
      @OnChange(Customers, { operationTypes: ['insert'] })
      @OnChange(Order)
      handle() {}
    }
    expect(Reflect.getMetadata(ON_CHANGE_METADATA, Listener.prototype.handle)).toEqual([
      { collection: Order, options: {} },
      { collection: 'customers', options: { operationTypes: ['insert'] } },
    ]);
    expect(Object.isFrozen(Customers)).toBe(true);
  });

  it.each([
    [42, 'number'],
    [null, 'null'],
    [undefined, 'undefined'],
    [{ name: 'orders' }, 'object'],
    [['orders'], 'an array'],
  ])('rejects %p as the first argument, naming what it is', (source, given) => {
    expect(() => {
      class Listener {
        @OnChange(source as never)
        handle() {}
      }
      return Listener;
    }).toThrow(
      new ChangeStreamConfigError(
        `@OnChange on Listener.handle: the first argument is ${given}; expected a collection name ('orders'), ` +
          `a typed name (collection<Order>('orders')), a @nestjs/mongoose @Schema() class or a Mongoose model.`,
      ),
    );
  });

  it('routes the events of the resolved collection to a handler declared with the class (testing module)', async () => {
    const seen: string[] = [];
    const Customers = collection<{ _id: number; name: string }>('customers');
    @Injectable()
    class Listener {
      @OnChange(Order, { operationTypes: ['insert'] })
      onOrder(change: ChangeOf<Order, 'insert'>) {
        seen.push(`order ${change.fullDocument.total}`);
      }

      @OnChange(Customers, { operationTypes: ['insert'] })
      onCustomer(change: ChangeOf<{ _id: number; name: string }, 'insert'>) {
        seen.push(`customer ${change.fullDocument.name}`);
      }
    }
    const moduleRef = await Test.createTestingModule({
      imports: [ChangeStreamTestingModule.forRoot()],
      providers: [Listener],
    }).compile();
    try {
      const tester = moduleRef.get(ChangeStreamTester);
      // By the resolved name, by the class, by the token.
      const byName = await tester.emit('orders', {
        operationType: 'insert',
        fullDocument: { _id: 1, total: 7 },
      });
      const byClass = await tester.emit(Order, {
        operationType: 'insert',
        documentKey: { _id: new mongoose.Types.ObjectId() },
        fullDocument: { total: 8 },
      });
      const byToken = await tester.emitMany(Customers, [
        { operationType: 'insert', fullDocument: { _id: 1, name: 'ada' } },
      ]);
      expect(
        [byName, byClass, ...byToken].map((o) => [o.collection, o.handlers.map((h) => h.handler)]),
      ).toEqual([
        ['orders', ['Listener.onOrder']],
        ['orders', ['Listener.onOrder']],
        ['customers', ['Listener.onCustomer']],
      ]);
      expect(seen).toEqual(['order 7', 'order 8', 'customer ada']);
      await expect(
        tester.emit(NotASchema, { operationType: 'insert', fullDocument: {} }),
      ).rejects.toThrow(
        "Cannot emit on NotASchema: it is not a @Schema() class, not a Mongoose model. Emit on the collection's name.",
      );
    } finally {
      await moduleRef.close();
    }
  });
});
