import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { getModelToken, MongooseModule, Prop, Schema, SchemaFactory } from '@nestjs/mongoose';
import type { Model } from 'mongoose';
import {
  type ChangeOf,
  ChangeStreamConfigError,
  ChangeStreamRegistry,
  collection,
  OnChange,
} from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import { TestApp } from '../fixtures/test-app.js';
import { eventually, testEnv, uniqueName } from '../fixtures/test-env.js';

@Schema()
class Parcel {
  @Prop()
  weight!: number;
}

@Schema({ collection: 'ledger_entries' })
class LedgerEntry {
  @Prop()
  amount!: number;
}

/** Registered with forFeature's own `collection`, which wins over the class name. */
@Schema()
class Box {
  @Prop()
  label!: string;
}

interface Order {
  _id: string;
  total: number;
}
const Orders = collection<Order>('orders');

@Injectable()
class ModelListener {
  constructor(private readonly log: EventLog) {}

  @OnChange(Parcel, { operationTypes: ['insert'] })
  onParcel(change: ChangeOf<Parcel, 'insert'>) {
    this.log.record(`parcel:${change.fullDocument.weight}`, change);
  }

  @OnChange(LedgerEntry)
  onLedger(change: ChangeOf<LedgerEntry>) {
    this.log.record('ledger', change);
  }

  @OnChange(Box, { operationTypes: ['insert'] })
  onBox(change: ChangeOf<Box, 'insert'>) {
    this.log.record(`box:${change.fullDocument.label}`, change);
  }

  @OnChange(Orders, { operationTypes: ['insert'] })
  onOrder(change: ChangeOf<Order, 'insert'>) {
    this.log.record(`order:${change.fullDocument.total}`, change);
  }
}

class NotASchema {}

@Injectable()
class BadListener {
  @OnChange(NotASchema)
  onThing() {}
}

/** The same class on two connections: each handler's collection is resolved on its own. */
@Injectable()
class TwoConnectionsListener {
  constructor(private readonly log: EventLog) {}

  @OnChange(Parcel, { operationTypes: ['insert'] })
  onParcel(change: ChangeOf<Parcel, 'insert'>) {
    this.log.record(`default:${change.fullDocument.weight}`, change);
  }

  @OnChange(Parcel, { operationTypes: ['insert'], connectionName: 'archive' })
  onArchivedParcel(change: ChangeOf<Parcel, 'insert'>) {
    this.log.record(`archive:${change.fullDocument.weight}`, change);
  }
}

@Injectable()
class NoConnectionListener {
  @OnChange(Parcel, { connectionName: 'nowhere' })
  onParcel() {}
}

const features = MongooseModule.forFeature([
  { name: Parcel.name, schema: SchemaFactory.createForClass(Parcel) },
  { name: LedgerEntry.name, schema: SchemaFactory.createForClass(LedgerEntry) },
  { name: Box.name, schema: SchemaFactory.createForClass(Box), collection: 'archived_boxes' },
]);

describe('@OnChange with a @Schema() class or a typed name (real MongoDB and Redis)', () => {
  let app: TestApp;
  const dbName = uniqueName('models');
  const consumer = uniqueName('svc');

  beforeAll(async () => {
    app = await TestApp.start({
      dbName,
      consumer,
      providers: [ModelListener],
      imports: [features],
    });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('watches the collection Mongoose stores each model in', () => {
    const statuses = app.get(ChangeStreamRegistry).getStatuses();
    expect(statuses.map((s) => [s.collection, s.state, s.handlers])).toEqual([
      ['parcels', 'open', ['ModelListener.onParcel']],
      ['ledger_entries', 'open', ['ModelListener.onLedger']],
      ['archived_boxes', 'open', ['ModelListener.onBox']],
      ['orders', 'open', ['ModelListener.onOrder']],
    ]);
  });

  it("delivers the model's inserts to the handler declared with its class", async () => {
    const parcels = app.get<Model<Parcel>>(getModelToken(Parcel.name));
    const ledger = app.get<Model<LedgerEntry>>(getModelToken(LedgerEntry.name));
    const boxes = app.get<Model<Box>>(getModelToken(Box.name));
    await parcels.create({ weight: 3 });
    await ledger.create({ amount: 5 });
    await boxes.create({ label: 'red' });
    await app.connection.collection('orders').insertOne({ _id: 'o1' as never, total: 9 });
    await eventually('four events', () => app.events.events.length >= 4);
    expect(app.events.events.map((e) => [e.handler, e.operationType]).sort()).toEqual([
      ['box:red', 'insert'],
      ['ledger', 'insert'],
      ['order:9', 'insert'],
      ['parcel:3', 'insert'],
    ]);
    expect(parcels.collection.collectionName).toBe('parcels');
    expect(boxes.collection.collectionName).toBe('archived_boxes');
  });

  it('fails startup for a class that is neither a schema nor a registered model', async () => {
    const { error } = await TestApp.startExpectingFailure({
      dbName: uniqueName('models-bad'),
      consumer: uniqueName('svc'),
      providers: [BadListener],
    });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toBe(
      '@OnChange(NotASchema) on BadListener.onThing: cannot tell which collection NotASchema is stored in: ' +
        'it is not a @Schema() class, not a Mongoose model, and no model is registered as "NotASchema". ' +
        'Decorate the class with @Schema() from @nestjs/mongoose (its collection is then named as Mongoose names it), ' +
        'register its model on connection "default" under the class name (MongooseModule.forFeature([{ name: NotASchema.name, schema }])), ' +
        "or name the collection: @OnChange(collection<NotASchema>('<name>')).",
    );
  });

  it("resolves a class on the handler's connection: the model registered there, with its own collection", async () => {
    const archiveDb = uniqueName('models-archive');
    const twoConnections = await TestApp.start({
      dbName: uniqueName('models-default'),
      consumer: uniqueName('svc'),
      providers: [TwoConnectionsListener],
      imports: [
        MongooseModule.forRoot(testEnv().mongoUri, {
          dbName: archiveDb,
          connectionName: 'archive',
        }),
        MongooseModule.forFeature(
          [
            {
              name: Parcel.name,
              schema: SchemaFactory.createForClass(Parcel),
              collection: 'parcel_archive',
            },
          ],
          'archive',
        ),
      ],
    });
    try {
      const statuses = twoConnections.get(ChangeStreamRegistry).getStatuses();
      expect(statuses.map((s) => [s.connectionName, s.database, s.collection, s.handlers])).toEqual(
        [
          ['default', twoConnections.spec.dbName, 'parcels', ['TwoConnectionsListener.onParcel']],
          ['archive', archiveDb, 'parcel_archive', ['TwoConnectionsListener.onArchivedParcel']],
        ],
      );
      const archived = twoConnections.get<Model<Parcel>>(getModelToken(Parcel.name, 'archive'));
      await archived.create({ weight: 4 });
      await twoConnections.connection.collection('parcels').insertOne({ weight: 6 });
      await eventually('two events', () => twoConnections.events.events.length >= 2);
      expect(twoConnections.events.events.map((e) => e.handler).sort()).toEqual([
        'archive:4',
        'default:6',
      ]);
    } finally {
      await twoConnections.close();
    }
  });

  it('fails startup for a class on a connection that does not exist, naming the handler', async () => {
    const { error } = await TestApp.startExpectingFailure({
      dbName: uniqueName('models-bad'),
      consumer: uniqueName('svc'),
      providers: [NoConnectionListener],
    });
    expect(error).toBeInstanceOf(ChangeStreamConfigError);
    expect(error.message).toBe(
      'ChangeStreamModule: no mongoose connection named "nowhere" for @OnChange(Parcel) on NoConnectionListener.onParcel. ' +
        "Import MongooseModule.forRoot(uri, { connectionName: 'nowhere' }) in the same application.",
    );
  });
});
