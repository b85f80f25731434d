import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { ChangeStreamRegistry, OnChange } from '../../../lib/index.js';
import { EventLog } from '../../fixtures/event-log.js';
import type { TestApp } from '../../fixtures/test-app.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../../fixtures/test-env.js';

@Injectable()
class QuietListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('quiet')
  onQuiet(change: mongo.ChangeStreamDocument) {
    this.log.record('quiet', change);
  }
}

const ids = (app: TestApp) => app.events.of('quiet').map((e) => e.documentId);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * A real mongod answers every getMore with a post-batch resume token, which moves with the oplog
 * even when nothing in the watched collection changed (writes elsewhere, the primary's periodic
 * no-op writes). mongo-java-server returns none, so there a quiet collection's position only moves
 * with its own events.
 */
describe('post-batch resume tokens keep a quiet collection fresh (real mongod)', () => {
  const onMongod = testEnv().realMongod ? it : it.skip;
  const scope = new TestScope();
  afterEach(() => scope.closeAll());

  onMongod(
    'the stored position advances while nothing is written to the collection, and resuming from it delivers only later writes (real mongod only)',
    async () => {
      const dbName = uniqueName('idle');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      const spec = { dbName, consumer, providers: [QuietListener] };
      const first = await scope.app(spec);
      const quiet = probe.collection('quiet');
      const busy = probe.collection('busy'); // same database, not watched: it moves the oplog, not the stream
      const storedToken = () => probe.storedToken(consumer, 'quiet');

      await quiet.insertOne({ _id: 1 as never });
      await eventually('the event handled', () => ids(first).length === 1);
      const eventToken = first.events.of('quiet')[0].token;

      // Only the neighbour is written to. Each write is a later oplog entry, so the next empty
      // getMore returns a newer post-batch token, which the stream stores while nothing is in flight.
      let idleA: unknown;
      await eventually('a stored position newer than the last event', async () => {
        await busy.insertOne({});
        idleA = await storedToken();
        return idleA !== null && !same(idleA, eventToken);
      });
      let idleB: unknown;
      await eventually(
        'the stored position moved again, with still nothing written to the collection',
        async () => {
          await busy.insertOne({});
          idleB = await storedToken();
          return !same(idleB, idleA);
        },
      );
      expect(idleB).not.toBeNull();
      // Nothing reached the handler meanwhile.
      expect(ids(first)).toEqual([1]);
      expect(first.get(ChangeStreamRegistry).getStatus('quiet')).toMatchObject({
        state: 'open',
        eventsHandled: 1,
      });

      await scope.close(first); // the final flush stores the newest idle position (or one just like it)
      const stored = await storedToken();
      expect(same(stored, eventToken)).toBe(false);

      // Resuming from an idle position: the server accepts it, and only what was written after it comes.
      await quiet.insertOne({ _id: 2 as never });
      const second = await scope.app(spec);
      expect(second.get(ChangeStreamRegistry).getStatus('quiet')?.state).toBe('open');
      await quiet.insertOne({ _id: 3 as never });
      await eventually('the write made after the restart', () => ids(second).includes(3));
      expect(ids(second)).toEqual([2, 3]);
    },
  );

  onMongod(
    'a fresh stream stores a post-batch token as its start position before any event (real mongod only)',
    async () => {
      const dbName = uniqueName('start');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      await scope.app({ dbName, consumer, providers: [QuietListener] });
      // init() resolved: the stream is open, and its start position was stored before that.
      const position = await probe.storedPosition(consumer, 'quiet');
      expect(position).not.toBeNull();
      expect(position && 'token' in position).toBe(true);
    },
  );
});
