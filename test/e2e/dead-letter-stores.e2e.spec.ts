import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import {
  type DeadLetter,
  type DeadLetterStore,
  type DeadLetterStoreRetention,
  InMemoryDeadLetterStore,
  RedisDeadLetterStore,
} from '../../lib/index.js';
import { Logger } from '@nestjs/common';
import { resolveOptions } from '../../lib/options/module-options.js';
import { createStores } from '../../lib/stores.factory.js';
import { encodeDeadLetter } from '../../lib/dead-letter/dead-letter.codec.js';
import { deadLetterIndexKey, deadLetterKey } from '../../lib/redis/redis-keys.js';
import { CapturingLogger } from '../fixtures/capturing-logger.js';
import { testEnv, uniqueName } from '../fixtures/test-env.js';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(testEnv().redisUrl);
});
afterAll(() => redis.disconnect());

const letter = (n: number, failedAt = new Date(Date.UTC(2026, 0, 1, 0, 0, n))): DeadLetter => ({
  id: `id-${String(n).padStart(3, '0')}`,
  streamKey: 'cs:{svc:db:orders}',
  connectionName: 'default',
  database: 'db',
  collection: 'orders',
  handler: 'Listener.onOrder',
  change: { _id: { _data: `t${n}` }, operationType: 'insert', documentKey: { _id: n } },
  error: { name: 'Error', message: `failed ${n}` },
  attempts: 1,
  failedAt,
});

const stores: Array<[string, (retention?: DeadLetterStoreRetention) => DeadLetterStore]> = [
  ['Redis', (retention) => new RedisDeadLetterStore(redis, uniqueName('dl'), retention)],
  ['in memory', (retention) => new InMemoryDeadLetterStore(retention)],
];

describe.each(stores)('%s dead-letter store', (_, create) => {
  it('keeps at most maxLetters, dropping the oldest by failedAt and reporting exactly those', async () => {
    const dropped: Array<{ ids: string[]; reason: string }> = [];
    const store = create({
      maxLetters: 3,
      onDropped: (letters, reason) => dropped.push({ ids: letters.map((l) => l.id), reason }),
    });
    // Added out of time order: the oldest is the one with the earliest failedAt, not the first added.
    for (const n of [2, 1, 3, 5, 4]) await store.add(letter(n));
    expect((await store.list()).map((l) => l.id)).toEqual(['id-003', 'id-004', 'id-005']);
    expect(dropped).toEqual([
      { ids: ['id-001'], reason: 'count' },
      { ids: ['id-002'], reason: 'count' },
    ]);
  });

  it('drops letters older than maxAgeMs', async () => {
    const dropped: string[] = [];
    const store = create({
      maxAgeMs: 60_000,
      onDropped: (letters) => dropped.push(...letters.map((l) => l.id)),
    });
    await store.add(letter(1, new Date(Date.now() - 120_000)));
    await store.add(letter(2, new Date()));
    expect((await store.list()).map((l) => l.id)).toEqual(['id-002']);
    expect(dropped).toEqual(['id-001']);
  });

  it('pages through every letter with a cursor, and a letter removed between pages does not make another one skipped', async () => {
    const store = create({ maxLetters: 0 });
    for (let n = 1; n <= 250; n++) await store.add(letter(n));
    const seen = new Set<string>();
    let cursor: string | null | undefined;
    let pages = 0;
    do {
      const page = await store.page!({ cursor, count: 20 });
      page.letters.forEach((l) => seen.add(l.id));
      if (pages === 0) await store.remove(page.letters[0].id); // already seen
      cursor = page.cursor;
      pages++;
    } while (cursor !== null && pages < 1000);
    expect(seen.size).toBe(250);
    expect(pages).toBeGreaterThan(1);
  });

  it('removes a letter from the index too, so it is not dropped (or reported) later', async () => {
    const dropped: string[] = [];
    const store = create({
      maxLetters: 2,
      onDropped: (letters) => dropped.push(...letters.map((l) => l.id)),
    });
    await store.add(letter(1));
    await store.add(letter(2));
    expect(await store.remove('id-001')).toBe(true);
    await store.add(letter(3));
    expect(dropped).toEqual([]);
    expect((await store.list()).map((l) => l.id)).toEqual(['id-002', 'id-003']);
  });
});

describe("the module's dead-letter store", () => {
  it('is bounded by default (10,000 letters, no age limit); 0 turns a limit off', () => {
    expect(resolveOptions({ consumer: 'svc' }).deadLetterRetention).toEqual({
      maxLetters: 10_000,
      maxAgeMs: Infinity,
    });
    expect(
      resolveOptions({
        consumer: 'svc',
        deadLetterRetention: { maxLetters: 0, maxAgeMs: 86_400_000 },
      }).deadLetterRetention,
    ).toEqual({ maxLetters: Infinity, maxAgeMs: 86_400_000 });
  });

  it('warns about each drop, naming the letters and the limit, and tells the metric', async () => {
    const logs = new CapturingLogger();
    Logger.overrideLogger(logs);
    const stores = createStores(
      resolveOptions({
        consumer: uniqueName('svc'),
        redis: testEnv().redisUrl,
        deadLetterRetention: { maxLetters: 1 },
      }),
    );
    const counted: string[] = [];
    stores.onDeadLettersDropped!((letters) =>
      counted.push(...letters.map((l) => `${l.database}.${l.collection} ${l.handler}`)),
    );
    await stores.deadLetters.add(letter(1));
    await stores.deadLetters.add(letter(2));
    expect(logs.messages('warn')).toContain(
      'Dropped 1 dead letter(s), the oldest, to keep the store within deadLetterRetention (more than 1 letters): id-001. ' +
        'Their events are gone for good; replay or discard dead letters sooner, or raise the limit.',
    );
    expect(counted).toEqual(['db.orders Listener.onOrder']);
    await stores.close(1000);
  });
});

describe('Redis dead-letter store commands', () => {
  it('lists with HSCAN, never HVALS of the whole hash', async () => {
    const client = new Redis(testEnv().redisUrl);
    const commands: string[] = [];
    const send = client.sendCommand.bind(client);
    client.sendCommand = (command, stream) => {
      commands.push(command.name);
      return send(command, stream);
    };
    const store = new RedisDeadLetterStore(client, uniqueName('dl'));
    for (let n = 1; n <= 5; n++) await store.add(letter(n));
    expect((await store.list()).map((l) => l.id)).toEqual([
      'id-001',
      'id-002',
      'id-003',
      'id-004',
      'id-005',
    ]);
    expect(commands).toContain('hscan');
    expect(commands).not.toContain('hvals');
    client.disconnect();
  });
});

describe("the module's Redis dead-letter keys", () => {
  it('are where earlier versions kept them: the hash and its index beside it', () => {
    expect(deadLetterKey('cs', 'billing')).toBe('cs:billing:dead-letters');
    expect(deadLetterIndexKey(deadLetterKey('cs', 'billing'))).toBe(
      'cs:billing:dead-letters:by-time',
    );
  });

  it('lists, gets and removes the letters an earlier version stored (without an index)', async () => {
    const consumer = uniqueName('svc');
    for (const n of [1, 2])
      await redis.hset(
        deadLetterKey('change-stream', consumer),
        letter(n).id,
        encodeDeadLetter(letter(n)),
      );
    const stores = createStores(resolveOptions({ consumer, redis: testEnv().redisUrl }));
    expect((await stores.deadLetters.list()).map((l) => l.id)).toEqual(['id-001', 'id-002']);
    expect((await stores.deadLetters.get('id-002'))?.id).toBe('id-002');
    expect(await stores.deadLetters.remove('id-001')).toBe(true);
    expect((await stores.deadLetters.list()).map((l) => l.id)).toEqual(['id-002']);
    await stores.close(1000);
  });
});
