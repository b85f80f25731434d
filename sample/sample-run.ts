import { randomUUID } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { getModelToken } from '@nestjs/mongoose';
import { Redis } from 'ioredis';
import type { Model } from 'mongoose';
import { ChangeStreamRegistry } from '../lib/index.js';
import { AppModule, SAMPLE_DATABASE, SAMPLE_KEY_PREFIX, type SampleConfig } from './app.module.js';
import { OrderTotalsListener } from './orders/order-totals.listener.js';
import { Order } from './orders/order.schema.js';

export interface SampleRunOptions {
  /** Where the sample's story goes (the console in `npm run sample`). */
  print: (text: string) => void;
  /** Keeps the restarted app serving until this settles (`SAMPLE_SERVE=1`). */
  serveUntil?: (url: string) => Promise<void>;
}

/**
 * The library's promise in one run: events flow to a listener, the position lands in Redis, and
 * writes made while the app is down are caught up on the next start. It writes only to its own
 * database and Redis keys, deletes nothing, and waits only for the orders it created itself.
 */
export async function runSample(
  config: SampleConfig,
  { print, serveUntil }: SampleRunOptions,
): Promise<void> {
  const run = randomUUID();
  print(
    `\n== Database: ${SAMPLE_DATABASE} (the sample's own, whatever database the URI names; it only adds orders and updates one of them, run ${run}); ` +
      `Redis keys: ${SAMPLE_KEY_PREFIX}:*. Drop that database and those keys to clean up.\n`,
  );
  const app = await startApp(config);
  const orders = app.get<Model<Order>>(getModelToken(Order.name));
  const listener = () => app.get(OrderTotalsListener);
  const ada = await orders.create({ customer: 'ada', total: 30, sampleRun: run });
  await waitUntil(() => listener().seen(ada._id) !== undefined);
  const grace = await orders.create({ customer: 'grace', total: 12, sampleRun: run });
  await orders.updateOne({ _id: ada._id, sampleRun: run }, { $set: { status: 'paid', total: 35 } });
  await waitUntil(
    () => listener().seen(grace._id) !== undefined && listener().seen(ada._id)?.status === 'paid',
  );
  await printPosition(app, config, print);
  await printHealth(app, print);
  await printMetrics(app, print);
  await app.close();

  print('\n== App stopped. Writing two orders while it is down…\n');
  const written = await writeWhileDown(config, run);
  const again = await startApp(config);
  await waitUntil(() =>
    written.every((id) => again.get(OrderTotalsListener).seen(id) !== undefined),
  );
  print(
    `\n== Restarted: caught up on the ${written.length} orders written while down, and ${again.get(OrderTotalsListener).handled} event(s) in all ` +
      `(this demo keeps its read model in memory, so it shows only what it handled since the restart).`,
  );
  await printPosition(again, config, print);
  if (serveUntil) await serveUntil(await again.getUrl());
  await again.close();
}

async function startApp(config: SampleConfig): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.register(config), {
    logger: ['log', 'warn', 'error'],
  });
  // An app of yours calls app.enableShutdownHooks(); the sample closes its apps itself (main.ts
  // waits for SIGINT/SIGTERM), so that it can stop the servers it started after them.
  await app.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
  return app;
}

/** The first app's connection is closed by now, so writes while it is down go through a fresh client. */
async function writeWhileDown(config: SampleConfig, run: string): Promise<unknown[]> {
  const mongoose = (await import('mongoose')).default;
  const connection = await mongoose
    .createConnection(config.mongoUri, { dbName: SAMPLE_DATABASE })
    .asPromise();
  const { insertedIds } = await connection.db!.collection('orders').insertMany([
    { customer: 'linus', total: 7, status: 'open', sampleRun: run },
    { customer: 'grace', total: 5, status: 'open', sampleRun: run },
  ]);
  await connection.close();
  return Object.values(insertedIds);
}

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error('the sample did not see the expected events in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function printPosition(
  app: INestApplication,
  config: SampleConfig,
  print: (text: string) => void,
): Promise<void> {
  // Close the app's checkpoint batch first, so what Redis holds is current.
  const [status] = app.get(ChangeStreamRegistry).getStatuses();
  await new Promise((resolve) => setTimeout(resolve, 700));
  const redis = new Redis(config.redisUrl);
  print(`\n== Resume position in Redis: GET ${status.key}\n${await redis.get(status.key)}`);
  redis.disconnect();
}

async function printHealth(app: INestApplication, print: (text: string) => void): Promise<void> {
  const response = await fetch(`${await app.getUrl()}/health`);
  print(
    `\n== GET /health -> ${response.status}\n${JSON.stringify(await response.json(), null, 2)}`,
  );
}

async function printMetrics(app: INestApplication, print: (text: string) => void): Promise<void> {
  const response = await fetch(`${await app.getUrl()}/metrics`);
  const lines = (await response.text())
    .split('\n')
    .filter((line) => /^change_stream_(events|position_writes|lag|in_flight|active)/.test(line));
  print(
    `\n== GET /metrics -> ${response.status} (Prometheus text format; change_stream_* lines)\n${lines.join('\n')}`,
  );
}
