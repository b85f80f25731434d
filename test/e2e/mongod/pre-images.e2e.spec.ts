import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { ChangeStreamRegistry, OnChange } from '../../../lib/index.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../../fixtures/test-env.js';

interface Account {
  _id: string;
  balance: number;
  owner?: string;
}

type Changed = 'update' | 'replace' | 'delete';

@Injectable()
class AccountListener {
  readonly changes: Array<
    | mongo.ChangeStreamUpdateDocument<Account>
    | mongo.ChangeStreamReplaceDocument<Account>
    | mongo.ChangeStreamDeleteDocument<Account>
  > = [];

  @OnChange<Account, Changed>('accounts', {
    operationTypes: ['update', 'replace', 'delete'],
    fullDocumentBeforeChange: 'required',
    fullDocument: 'whenAvailable',
  })
  onChange(
    change:
      | mongo.ChangeStreamUpdateDocument<Account>
      | mongo.ChangeStreamReplaceDocument<Account>
      | mongo.ChangeStreamDeleteDocument<Account>,
  ) {
    this.changes.push(change);
  }
}

/**
 * Pre-images (MongoDB 6.0+): with `changeStreamPreAndPostImages` enabled on the collection, the
 * server keeps each document's version before an update, replace or delete, and a stream with
 * `fullDocumentBeforeChange: 'required'` receives it (and fails if one is missing). mongo-java-server
 * has no pre-images.
 */
describe('pre-images with fullDocumentBeforeChange: required (real mongod)', () => {
  const onMongod = testEnv().realMongod ? it : it.skip;
  const scope = new TestScope();
  afterEach(() => scope.closeAll());

  onMongod(
    'update, replace and delete events carry the document as it was before (real mongod only)',
    async () => {
      const dbName = uniqueName('preimages');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      await probe.db.createCollection('accounts', {
        changeStreamPreAndPostImages: { enabled: true },
      });
      const app = await scope.app({ dbName, consumer, providers: [AccountListener] });
      const listener = app.get(AccountListener);
      const accounts = probe.db.collection<Account>('accounts');

      await accounts.insertOne({ _id: 'acc1', balance: 100 });
      await accounts.updateOne({ _id: 'acc1' }, { $inc: { balance: -30 } });
      await accounts.replaceOne({ _id: 'acc1' }, { balance: 70, owner: 'ada' });
      await accounts.deleteOne({ _id: 'acc1' });
      await eventually('the delete handled', () =>
        listener.changes.some((c) => c.operationType === 'delete'),
      );

      expect(listener.changes.map((c) => [c.operationType, c.fullDocumentBeforeChange])).toEqual([
        ['update', { _id: 'acc1', balance: 100 }],
        ['replace', { _id: 'acc1', balance: 70 }],
        ['delete', { _id: 'acc1', balance: 70, owner: 'ada' }],
      ]);
      // Post-images are kept as well: the update's new version without an extra lookup.
      expect(
        (listener.changes[0] as mongo.ChangeStreamUpdateDocument<Account>).fullDocument,
      ).toEqual({ _id: 'acc1', balance: 70 });
      expect(app.get(ChangeStreamRegistry).getStatus('accounts')).toMatchObject({
        state: 'open',
        eventsHandled: 3,
        lastError: null,
      });
    },
  );
});
