import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import mongoose from 'mongoose';
import { SAMPLE_DATABASE, SAMPLE_KEY_PREFIX } from '../../sample/app.module.js';
import { registerMetrics } from '../../sample/metrics/telemetry.js';
import { runSample } from '../../sample/sample-run.js';
import { testEnv, uniqueName } from '../fixtures/test-env.js';

/** A URI that names the user's database, as a user's MONGODB_URI does. */
function uriNaming(database: string): string {
  const url = new URL(testEnv().mongoUri);
  url.pathname = `/${database}`;
  return url.toString();
}

describe('npm run sample against a server and a Redis that hold data of their own', () => {
  let client: mongoose.mongo.MongoClient;
  let redis: Redis;
  beforeAll(async () => {
    client = await new mongoose.mongo.MongoClient(testEnv().mongoUri).connect();
    redis = new Redis(testEnv().redisUrl);
    registerMetrics();
  });
  afterAll(async () => {
    await client.close();
    redis.disconnect();
  });

  it('writes only to its own database and Redis keys, names them, and deletes nothing', async () => {
    const userDb = uniqueName('shop');
    // The user's data: in the database the URI names, and a document in the sample's database it did not write.
    const userOrders = [
      { _id: 'u1', customer: 'bob', total: 100, status: 'open' },
      { _id: 'u2', customer: 'eve', total: 250, status: 'paid' },
    ];
    await client
      .db(userDb)
      .collection('orders')
      .insertMany(userOrders as never[]);
    const foreign = {
      _id: uniqueName('not-the-samples'),
      customer: 'mallory',
      total: 1,
      status: 'open',
    };
    await client
      .db(SAMPLE_DATABASE)
      .collection('orders')
      .insertOne(foreign as never);
    const sampleOrdersBefore = await client
      .db(SAMPLE_DATABASE)
      .collection('orders')
      .countDocuments();
    // The database the sample used to write to (and empty) whatever the URI named.
    const shop = client.db('shop').collection('orders');
    await shop.insertOne({ _id: uniqueName('shop-order'), customer: 'carol', total: 3 } as never);
    const shopBefore = await shop.find().sort({ _id: 1 }).toArray();
    const userKeys = {
      [`change-stream:{order-totals:${userDb}:orders}`]: 'a position of the user',
      [uniqueName('user:session')]: 'x',
    };
    for (const [key, value] of Object.entries(userKeys)) await redis.set(key, value);

    const printed: string[] = [];
    await runSample(
      { mongoUri: uriNaming(userDb), redisUrl: testEnv().redisUrl },
      { print: (text) => printed.push(text) },
    );

    expect(await client.db(userDb).collection('orders').find().sort({ _id: 1 }).toArray()).toEqual(
      userOrders,
    );
    expect(await client.db(userDb).listCollections().toArray()).toHaveLength(1);
    expect(await shop.find().sort({ _id: 1 }).toArray()).toEqual(shopBefore);
    expect(
      await client
        .db(SAMPLE_DATABASE)
        .collection('orders')
        .findOne({ _id: foreign._id as never }),
    ).toEqual(foreign);
    // It added its four orders and removed none.
    expect(await client.db(SAMPLE_DATABASE).collection('orders').countDocuments()).toBe(
      sampleOrdersBefore + 4,
    );
    for (const [key, value] of Object.entries(userKeys)) expect(await redis.get(key)).toBe(value);
    const sampleKeys = await redis.keys('*order-totals*');
    expect(
      sampleKeys.filter((key) => !key.startsWith(`${SAMPLE_KEY_PREFIX}:`) && !(key in userKeys)),
    ).toEqual([]);
    expect(sampleKeys.some((key) => key.startsWith(`${SAMPLE_KEY_PREFIX}:`))).toBe(true);
    expect(printed.join('\n')).toContain(`Database: ${SAMPLE_DATABASE}`);
    expect(printed.join('\n')).toContain(`Redis keys: ${SAMPLE_KEY_PREFIX}:*`);
  }, 60_000);
});
