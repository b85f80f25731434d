import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { getModelToken } from '@nestjs/mongoose';
import { Redis } from 'ioredis';
import type { Model } from 'mongoose';
import { ChangeStreamRegistry } from '../lib/index.js';
import { startTestServers } from '../test/servers/test-servers.js';
import { AppModule, type SampleConfig } from './app.module.js';
import { registerMetrics } from './metrics/telemetry.js';
import { OrderTotalsListener } from './orders/order-totals.listener.js';
import { Order } from './orders/order.schema.js';

/**
 * The library's promise in one run: events flow to a listener, the position lands in
 * Redis, and writes made while the app is down are caught up on the next start.
 * Uses MONGODB_URI / REDIS_URL when set, else starts embedded servers.
 */
async function main(): Promise<void> {
  registerMetrics(); // before any app starts: the module picks the SDK up at init
  const servers = await startTestServers();
  console.log(`\n== Servers: ${servers.description}\n`);
  const config: SampleConfig = { mongoUri: servers.mongoUri, redisUrl: servers.redisUrl };
  try {
    const app = await startApp(config);
    const orders = app.get<Model<Order>>(getModelToken(Order.name));
    await orders.deleteMany({});
    await waitFor(app, 1, async () => void (await orders.create({ customer: 'ada', total: 30 })));
    await waitFor(app, 3, async () => {
      await orders.create({ customer: 'grace', total: 12 });
      await orders.updateOne({ customer: 'ada' }, { $set: { status: 'paid', total: 35 } });
    });
    await printPosition(app, config);
    await printHealth(app);
    await printMetrics(app);
    await app.close();

    console.log('\n== App stopped. Writing two orders while it is down…\n');
    const direct = await writeWhileDown(config);
    const again = await startApp(config);
    await waitUntil(() => again.get(OrderTotalsListener).handled >= direct, 10_000);
    console.log(`\n== Restarted: caught up on ${again.get(OrderTotalsListener).handled} event(s) written while down (this demo keeps its read model in memory, so it shows only those).`);
    await printPosition(again, config);
    if (process.env.SAMPLE_SERVE) {
      console.log(`\n== Serving: GET ${await again.getUrl()}/health (Ctrl+C to stop)`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    await again.close();
  } finally {
    await servers.stop();
  }
}

async function startApp(config: SampleConfig): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.register(config), { logger: ['log', 'warn', 'error'] });
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
  return app;
}

/** The first app's connection is closed by now, so writes while it is down go through a fresh client. */
async function writeWhileDown(config: SampleConfig): Promise<number> {
  const mongoose = (await import('mongoose')).default;
  const connection = await mongoose.createConnection(config.mongoUri, { dbName: 'shop' }).asPromise();
  await connection.db!.collection('orders').insertMany([
    { customer: 'linus', total: 7, status: 'open' },
    { customer: 'grace', total: 5, status: 'open' },
  ]);
  await connection.close();
  return 2;
}

async function waitFor(app: INestApplication, handled: number, write: () => Promise<void>): Promise<void> {
  await write();
  await waitUntil(() => app.get(OrderTotalsListener).handled >= handled, 10_000);
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('the sample did not see the expected events in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function printPosition(app: INestApplication, config: SampleConfig): Promise<void> {
  // Close the app's checkpoint batch first, so what Redis holds is current.
  const [status] = app.get(ChangeStreamRegistry).getStatuses();
  await new Promise((resolve) => setTimeout(resolve, 700));
  const redis = new Redis(config.redisUrl);
  console.log(`\n== Resume position in Redis: GET ${status.key}\n${await redis.get(status.key)}`);
  redis.disconnect();
}

async function printHealth(app: INestApplication): Promise<void> {
  const response = await fetch(`${await app.getUrl()}/health`);
  console.log(`\n== GET /health -> ${response.status}\n${JSON.stringify(await response.json(), null, 2)}`);
}

async function printMetrics(app: INestApplication): Promise<void> {
  const response = await fetch(`${await app.getUrl()}/metrics`);
  const lines = (await response.text()).split('\n').filter((line) => /^change_stream_(events|position_writes|lag|in_flight|active)/.test(line));
  console.log(`\n== GET /metrics -> ${response.status} (Prometheus text format; change_stream_* lines)\n${lines.join('\n')}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
