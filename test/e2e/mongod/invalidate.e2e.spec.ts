import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type ChangeStreamEvent,
  positionKey,
  ChangeStreamRegistry,
  decodePosition,
  OnChange,
} from '../../../lib/index.js';
import { EventLog } from '../../fixtures/event-log.js';
import { KeyWrites } from '../../fixtures/key-writes.js';
import type { TestApp } from '../../fixtures/test-app.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../../fixtures/test-env.js';

/** No filter: gets every event, the lifecycle ones included. */
@Injectable()
class DropListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('drops')
  onAny(change: mongo.ChangeStreamDocument) {
    this.log.record('all', change);
  }

  @OnChange('drops', { operationTypes: ['insert'] })
  onInsert(change: mongo.ChangeStreamDocument) {
    this.log.record('inserts', change);
  }
}

/** Keeps the raw events: the rename event says where the collection went. */
@Injectable()
class RenameListener {
  readonly changes: mongo.ChangeStreamDocument[] = [];

  @OnChange('renames')
  onAny(change: mongo.ChangeStreamDocument) {
    this.changes.push(change);
  }
}

const vipOnly = [{ $match: { 'fullDocument.vip': true } }];

/** A `pipeline` on the stream: lifecycle events reach only the handler that lists them. */
@Injectable()
class PipelineListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('members', { pipeline: vipOnly })
  onVip(change: mongo.ChangeStreamDocument) {
    this.log.record('vip', change);
  }

  @OnChange('members', { pipeline: vipOnly, operationTypes: ['drop', 'invalidate'] })
  onLifecycle(change: mongo.ChangeStreamDocument) {
    this.log.record('lifecycle', change);
  }
}

/** Every handler restricts the operation types, so they are filtered on the server too. */
@Injectable()
class TypedListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('typed', { operationTypes: ['insert'] })
  onInsert(change: mongo.ChangeStreamDocument) {
    this.log.record('typed', change);
  }
}

const types = (app: TestApp, handler: string) => app.events.of(handler).map((e) => e.operationType);
const ids = (app: TestApp, handler: string) => app.events.of(handler).map((e) => e.documentId);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
/** State changes that mean trouble: an invalidate is not an error, the stream just reopens. */
const troubled = (events: ChangeStreamEvent[]) =>
  events.filter(
    (e) =>
      e.type === 'state' &&
      (e.state === 'failed' || e.state === 'reconnecting' || e.state === 'closed'),
  );

/**
 * A real mongod ends a collection's change stream with an `invalidate` event after the collection
 * is dropped or renamed; the stream must reopen with `startAfter` that event (resuming after it is
 * refused) and go on with the re-created collection. mongo-java-server sends no invalidate events.
 * Routing ("Filters never hide a drop"): the server filters always let drop, rename, dropDatabase
 * and invalidate through; a handler receives them if it lists them in `operationTypes`, or lists
 * no types and the collection has no `pipeline`.
 */
describe('invalidate: dropped and renamed collections (real mongod)', () => {
  const onMongod = testEnv().realMongod ? it : it.skip;
  const scope = new TestScope();
  afterEach(() => scope.closeAll());

  onMongod(
    'drop: drop and invalidate reach the unfiltered handler only, the stream reopens after it, the invalidate is never stored (real mongod only)',
    async () => {
      const dbName = uniqueName('drop');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      const writes = scope.track(
        await KeyWrites.watch(
          testEnv().redisUrl,
          positionKey('change-stream', consumer, dbName, 'drops'),
        ),
      );
      const spec = { dbName, consumer, providers: [DropListener] };
      const app = await scope.app(spec);
      const events: ChangeStreamEvent[] = [];
      app.get(ChangeStreamRegistry).onEvent((event) => events.push(event));
      const drops = probe.collection('drops');

      await drops.insertOne({ _id: 1 as never });
      await drops.drop();
      await eventually('the invalidate handled', () => types(app, 'all').includes('invalidate'));
      await drops.insertOne({ _id: 2 as never }); // re-creates the collection
      await eventually('the insert into the re-created collection', () =>
        ids(app, 'inserts').includes(2),
      );
      await eventually('and to the unfiltered handler', () => ids(app, 'all').includes(2));

      expect(types(app, 'all')).toEqual(['insert', 'drop', 'invalidate', 'insert']);
      expect(ids(app, 'inserts')).toEqual([1, 2]);
      const status = app.get(ChangeStreamRegistry).getStatus('drops')!;
      expect(status.state).toBe('open');
      expect(status.lastInvalidatedAt).toBeInstanceOf(Date);
      expect(status.eventsHandled).toBe(4);
      expect(troubled(events)).toEqual([]);
      expect(app.logger.messages('warn').some((m) => m.includes('invalidated'))).toBe(true);

      // The invalidate's token was never written (the server refuses to resume after it).
      const invalidate = app.events.of('all').find((e) => e.operationType === 'invalidate')!.token;
      const insert2 = app.events.of('all').at(-1)!.token;
      await eventually('the position of the last insert (or a later one) stored', async () =>
        writes.writes.some((w) => {
          const position = decodePosition('k', w.value);
          return 'token' in position && same(position.token, insert2);
        }),
      );
      const stored = writes.writes
        .map((w) => decodePosition('k', w.value))
        .map((p) => ('token' in p ? p.token : null));
      expect(stored.some((token) => same(token, invalidate))).toBe(false);

      // A restart resumes after that position: neither the drop nor the invalidate comes again.
      await scope.close(app);
      await drops.insertOne({ _id: 3 as never });
      const restarted = await scope.app(spec);
      await drops.insertOne({ _id: 4 as never });
      await eventually('the write made after the restart', () => ids(restarted, 'all').includes(4));
      expect(types(restarted, 'all')).toEqual(['insert', 'insert']);
      expect(ids(restarted, 'all')).toEqual([3, 4]);
    },
  );

  onMongod(
    'a restart right after a drop, with nothing written since, resumes: the invalidate was never stored (real mongod only)',
    async () => {
      const dbName = uniqueName('dropquiet');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      const spec = { dbName, consumer, providers: [DropListener] };
      const app = await scope.app(spec);
      const drops = probe.collection('drops');

      await drops.insertOne({ _id: 1 as never });
      await drops.drop();
      await eventually('the invalidate handled', () => types(app, 'all').includes('invalidate'));
      // Reopened after it, and a read came back empty: on a quiet server mongod's post-batch token
      // is then the invalidate's own token (the stream's startAfter), which must not be stored.
      await eventually('reopened after the invalidate', () =>
        app.logger.messages('log').some((m) => m.includes('starting after the invalidate event')),
      );
      await eventually(
        'an empty read after the reopen',
        () => app.get(ChangeStreamRegistry).getStatus('drops')?.lagMs === 0,
      );
      await scope.close(app); // the final flush stores the newest position

      const restarted = await scope.app(spec);
      await drops.insertOne({ _id: 2 as never });
      await eventually('the write made after the restart', () =>
        ids(restarted, 'inserts').includes(2),
      );
      expect(ids(restarted, 'inserts')).toEqual([2]);
      // The drop's position may bring the invalidate again (at least once); never a refused resume.
      expect(types(restarted, 'all').filter((t) => t !== 'invalidate')).toEqual(['insert']);
      expect(restarted.get(ChangeStreamRegistry).getStatus('drops')?.state).toBe('open');
      expect(
        restarted.logger.messages('error').filter((m) => /history|failed|DATA LOSS/i.test(m)),
      ).toEqual([]);
    },
  );

  onMongod(
    'rename: rename and invalidate reach the handler, the stream follows the name, not the renamed collection (real mongod only)',
    async () => {
      const dbName = uniqueName('rename');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      const app = await scope.app({ dbName, consumer, providers: [RenameListener] });
      const listener = app.get(RenameListener);
      const seen = () =>
        listener.changes.map((c) => [
          c.operationType,
          'documentKey' in c ? (c.documentKey as { _id: unknown })._id : null,
        ]);

      await probe.collection('renames').insertOne({ _id: 1 as never });
      await probe.collection('renames').rename('renamed');
      await eventually('the invalidate handled', () =>
        listener.changes.some((c) => c.operationType === 'invalidate'),
      );
      const rename = listener.changes.find(
        (c) => c.operationType === 'rename',
      ) as mongo.ChangeStreamRenameDocument;
      expect(rename.to).toEqual({ db: dbName, coll: 'renamed' });

      // Writes to the new name belong to another namespace; writes to the old name re-create it.
      await probe.collection('renamed').insertOne({ _id: 2 as never });
      await probe.collection('renames').insertOne({ _id: 3 as never });
      await eventually('the insert into the re-created collection', () =>
        listener.changes.some(
          (c) => c.operationType === 'insert' && (c.documentKey._id as unknown) === 3,
        ),
      );
      expect(seen()).toEqual([
        ['insert', 1],
        ['rename', null],
        ['invalidate', null],
        ['insert', 3],
      ]);
      expect(app.get(ChangeStreamRegistry).getStatus('renames')).toMatchObject({
        state: 'open',
        eventsHandled: 4,
      });
      expect(app.get(ChangeStreamRegistry).getStatus('renames')?.lastInvalidatedAt).toBeInstanceOf(
        Date,
      );
    },
  );

  onMongod(
    'with a pipeline: the matching handler never sees drop or invalidate, the one that lists them does, and the stream goes on (real mongod only)',
    async () => {
      const dbName = uniqueName('piped');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      const app = await scope.app({ dbName, consumer, providers: [PipelineListener] });
      const members = probe.collection('members');

      await members.insertMany([
        { _id: 1 as never, vip: false },
        { _id: 2 as never, vip: true },
      ]);
      await members.drop();
      await eventually('the invalidate reached the lifecycle handler', () =>
        types(app, 'lifecycle').includes('invalidate'),
      );
      await members.insertMany([
        { _id: 3 as never, vip: false },
        { _id: 4 as never, vip: true },
      ]);
      await eventually('the VIP insert into the re-created collection', () =>
        ids(app, 'vip').includes(4),
      );

      expect(app.events.of('vip').map((e) => [e.operationType, e.documentId])).toEqual([
        ['insert', 2],
        ['insert', 4],
      ]);
      expect(types(app, 'lifecycle')).toEqual(['drop', 'invalidate']);
      expect(app.get(ChangeStreamRegistry).getStatus('members')?.lastInvalidatedAt).toBeInstanceOf(
        Date,
      );
    },
  );

  onMongod(
    'with operationTypes on every handler: the drop still reaches the stream, which reopens for the re-created collection (real mongod only)',
    async () => {
      const dbName = uniqueName('typed');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      const app = await scope.app({ dbName, consumer, providers: [TypedListener] });
      const typed = probe.collection('typed');
      const status = () => app.get(ChangeStreamRegistry).getStatus('typed')!;

      await typed.insertOne({ _id: 1 as never });
      await eventually('first insert', () => ids(app, 'typed').includes(1));
      await typed.drop();
      await eventually('the stream saw the invalidate', () => status().lastInvalidatedAt !== null);
      await typed.insertOne({ _id: 2 as never });
      await eventually('the insert into the re-created collection', () =>
        ids(app, 'typed').includes(2),
      );

      expect(app.events.of('typed').map((e) => [e.operationType, e.documentId])).toEqual([
        ['insert', 1],
        ['insert', 2],
      ]);
      expect(status().state).toBe('open');
    },
  );
});
