import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { OnChange } from '../../../lib/index.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { delay, eventually, testEnv, uniqueName } from '../../fixtures/test-env.js';

interface Doc {
  _id: string;
  [field: string]: unknown;
}

/** Keeps the raw events, by handler. */
@Injectable()
class DocListener {
  readonly replaced: Array<mongo.ChangeStreamReplaceDocument<Doc>> = [];
  readonly updated: Array<mongo.ChangeStreamUpdateDocument<Doc>> = [];

  @OnChange<Doc, 'replace'>('docs', { operationTypes: ['replace'] })
  onReplace(change: mongo.ChangeStreamReplaceDocument<Doc>) {
    this.replaced.push(change);
  }

  @OnChange<Doc, 'update'>('docs', { operationTypes: ['update'] })
  onUpdate(change: mongo.ChangeStreamUpdateDocument<Doc>) {
    this.updated.push(change);
  }
}

/** Slow handler with concurrency: records the order per document and how many ran at once. */
@Injectable()
class CounterListener {
  readonly order = new Map<string, number[]>();
  running = 0;
  maxRunning = 0;

  @OnChange<Doc, 'update'>('counters', { operationTypes: ['update'] })
  async onUpdate(change: mongo.ChangeStreamUpdateDocument<Doc>) {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    await delay(20);
    const id = change.documentKey._id;
    this.order.set(id, [
      ...(this.order.get(id) ?? []),
      change.updateDescription.updatedFields?.n as number,
    ]);
    this.running--;
  }
}

/**
 * Event shapes only mongod produces (mongo-java-server reports a replacement as an update, puts
 * the update spec in `documentKey` and sends no `updateDescription`), and what the module does with
 * them: routing by operation type, and handling different documents concurrently.
 */
describe('replace and update events (real mongod)', () => {
  const onMongod = testEnv().realMongod ? it : it.skip;
  const scope = new TestScope();
  afterEach(() => scope.closeAll());

  onMongod(
    'a replace reaches the replace handler with the new document; an update carries its documentKey and updateDescription (real mongod only)',
    async () => {
      const dbName = uniqueName('replace');
      const probe = await scope.probe(dbName);
      const app = await scope.app({
        dbName,
        consumer: uniqueName('svc'),
        providers: [DocListener],
      });
      const listener = app.get(DocListener);
      const docs = probe.db.collection<Doc>('docs');

      await docs.insertOne({ _id: 'r1', a: 1, keep: true });
      await docs.replaceOne({ _id: 'r1' }, { b: 2 });
      await docs.updateOne({ _id: 'r1' }, { $set: { c: 3 }, $unset: { b: '' } });
      await eventually('the update handled', () => listener.updated.length === 1);

      expect(listener.replaced).toHaveLength(1);
      const [replace] = listener.replaced;
      expect(replace.operationType).toBe('replace');
      expect(replace.documentKey).toEqual({ _id: 'r1' });
      // A replace always carries the new document, without any fullDocument option.
      expect(replace.fullDocument).toEqual({ _id: 'r1', b: 2 });
      expect(replace.ns).toEqual({ db: dbName, coll: 'docs' });

      const [update] = listener.updated;
      expect(update.documentKey).toEqual({ _id: 'r1' });
      expect(update.updateDescription.updatedFields).toEqual({ c: 3 });
      expect(update.updateDescription.removedFields).toEqual(['b']);
      expect(update.fullDocument).toBeUndefined(); // no fullDocument option on this stream
      expect(update.wallTime).toBeInstanceOf(Date);
    },
  );

  onMongod(
    'with concurrency, updates of different documents run at once while each document keeps its order (real mongod only)',
    async () => {
      const dbName = uniqueName('concurrent');
      const probe = await scope.probe(dbName);
      const app = await scope.app({
        dbName,
        consumer: uniqueName('svc'),
        providers: [CounterListener],
        changeStreams: { concurrency: 4 },
      });
      const listener = app.get(CounterListener);
      const counters = probe.db.collection<Doc>('counters');
      const ids = ['a', 'b', 'c'];
      await counters.insertMany(ids.map((_id) => ({ _id, n: 0 })));
      const rounds = 6;
      for (let n = 1; n <= rounds; n++) {
        for (const _id of ids) await counters.updateOne({ _id }, { $set: { n } });
      }
      await eventually(
        'every update handled',
        () => ids.every((id) => listener.order.get(id)?.length === rounds),
        20_000,
      );
      for (const id of ids) expect(listener.order.get(id)).toEqual([1, 2, 3, 4, 5, 6]);
      // The events carry `documentKey: { _id }`, so the three documents were handled side by side.
      expect(listener.maxRunning).toBeGreaterThan(1);
      expect(listener.maxRunning).toBeLessThanOrEqual(3);
    },
  );
});
