import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { ChangeStreamRegistry, OnChange } from '../../../lib/index.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../../fixtures/test-env.js';

interface Blob {
  _id: string;
  data: string;
  version: number;
}

const NINE_MB = 'x'.repeat(9 * 1024 * 1024);

@Injectable()
class SplitListener {
  readonly changes: Array<mongo.ChangeStreamUpdateDocument<Blob>> = [];

  @OnChange<Blob, 'update'>('blobs', {
    operationTypes: ['update'],
    fullDocument: 'required',
    fullDocumentBeforeChange: 'required',
    splitLargeEvents: true,
  })
  onUpdate(change: mongo.ChangeStreamUpdateDocument<Blob>) {
    this.changes.push(change);
  }
}

@Injectable()
class PlainListener {
  readonly versions: number[] = [];

  @OnChange<Blob, 'update'>('blobs', {
    operationTypes: ['update'],
    fullDocument: 'required',
    fullDocumentBeforeChange: 'required',
  })
  onUpdate(change: mongo.ChangeStreamUpdateDocument<Blob>) {
    this.versions.push(change.fullDocument?.version ?? -1);
  }
}

/**
 * An update of a 9 MB document with its post- and pre-image is an 18 MB event: over the 16 MB BSON
 * limit, so the getMore fails with BSONObjectTooLarge. `splitLargeEvents` adds
 * `$changeStreamSplitLargeEvent` (MongoDB 7.0+, 6.0.9+; the workflow runs 6.0.22, 7.0 and 8.0) and
 * joins the fragments. mongo-java-server has neither pre-images nor the stage: skipped there.
 */
describe('events over 16 MB (real mongod)', () => {
  const onMongod = testEnv().realMongod ? it : it.skip;
  const scope = new TestScope();
  afterEach(() => scope.closeAll());

  onMongod(
    'with splitLargeEvents the handler gets one whole event, and the stored position is past it (real mongod only)',
    async () => {
      const dbName = uniqueName('large');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      await probe.db.createCollection('blobs', { changeStreamPreAndPostImages: { enabled: true } });
      const blobs = probe.db.collection<Blob>('blobs');
      await blobs.insertOne({ _id: 'big', data: NINE_MB, version: 1 });
      const app = await scope.app({ dbName, consumer, providers: [SplitListener] });
      const listener = app.get(SplitListener);

      await blobs.updateOne({ _id: 'big' }, { $set: { version: 2 } });
      await blobs.updateOne({ _id: 'big' }, { $set: { data: 'small', version: 3 } });
      await eventually('both updates handled', () => listener.changes.length === 2, 30_000);

      const [large, small] = listener.changes;
      expect(large.fullDocumentBeforeChange?.data.length).toBe(NINE_MB.length);
      expect(large.fullDocument?.version).toBe(2);
      expect((large as unknown as { splitEvent?: unknown }).splitEvent).toBeUndefined();
      expect(small.fullDocument).toEqual({ _id: 'big', data: 'small', version: 3 });
      await eventually(
        'the position of the last event stored',
        async () =>
          JSON.stringify(await probe.storedToken(consumer, 'blobs')) === JSON.stringify(small._id),
      );
      expect(app.get(ChangeStreamRegistry).getStatus('blobs')).toMatchObject({
        state: 'open',
        consecutiveFailures: 0,
      });
    },
  );

  onMongod(
    'without it the stream fails once with a message naming the option, not a reopen loop (real mongod only)',
    async () => {
      const dbName = uniqueName('large');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      await probe.db.createCollection('blobs', { changeStreamPreAndPostImages: { enabled: true } });
      const blobs = probe.db.collection<Blob>('blobs');
      await blobs.insertOne({ _id: 'big', data: NINE_MB, version: 1 });
      const app = await scope.app({ dbName, consumer, providers: [PlainListener] });

      await blobs.updateOne({ _id: 'big' }, { $set: { version: 2 } });
      const status = () => app.get(ChangeStreamRegistry).getStatus('blobs')!;
      await eventually('failed', () => status().state === 'failed', 30_000);
      expect(status().lastError).toContain('splitLargeEvents: true');
      expect(
        app.logger.messages('warn').filter((m) => m.includes('reopening from the last checkpoint'))
          .length,
      ).toBeLessThanOrEqual(1);
      expect(app.get(PlainListener).versions).toEqual([]);
    },
  );
});
