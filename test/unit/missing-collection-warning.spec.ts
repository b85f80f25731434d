import { describe, expect, it } from '@jest/globals';
import type { Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { warnMissingCollections } from '../../lib/change-stream.planning.js';
import type { CollectionStream } from '../../lib/stream/collection-stream.js';

/** A database holding `existing`, as `listCollections({}, { nameOnly: true })` reports it. */
const database = (name: string, existing: string[]) =>
  ({
    databaseName: name,
    listCollections: () => ({ toArray: async () => existing.map((c) => ({ name: c })) }),
  }) as unknown as mongo.Db;

const streamOf = (collection: string) =>
  ({
    key: `app:shop:${collection}`,
    plan: {
      scope: { kind: 'collection' },
      collection,
      handlers: [{ name: 'Listener.onOrder', collection }],
    },
  }) as unknown as CollectionStream;

async function warningsFor(collection: string, existing: string[]): Promise<string[]> {
  const warnings: string[] = [];
  const logger = {
    warn: (m: string) => warnings.push(m),
    debug: () => undefined,
  } as unknown as Logger;
  const stream = streamOf(collection);
  await warnMissingCollections(
    [stream],
    new Map([[stream.key, database('shop', existing)]]),
    logger,
  );
  return warnings;
}

describe('the warning about a watched collection that does not exist', () => {
  it("tells a dotted name ('shop.orders') is one collection name, and how to name the database", async () => {
    expect(await warningsFor('shop.orders', ['orders'])).toEqual([
      'ChangeStreamModule: shop.shop.orders does not exist (yet) but Listener.onOrder watches it: a typo in the collection or database name? ' +
        "'shop.orders' is taken as one collection name, in the connection's database; to watch orders in database shop, write @OnChange({ collection: 'orders', database: 'shop' }). " +
        "The stream opens anyway and sees the collection's events once it is created.",
    ]);
  });

  it('adds no hint to a plain name, and says nothing of a collection that exists', async () => {
    expect(await warningsFor('ordres', ['orders'])).toEqual([
      'ChangeStreamModule: shop.ordres does not exist (yet) but Listener.onOrder watches it: a typo in the collection or database name? ' +
        "The stream opens anyway and sees the collection's events once it is created.",
    ]);
    expect(await warningsFor('shop.orders', ['shop.orders'])).toEqual([]);
  });
});
