// Database streams at their edges: renames between watched collections, 'required' images, the streams option's connections.
import { describe, expect, it } from '@jest/globals';
import { ChangeStreamConfigError, InMemoryPositionStore } from '../../lib/index.js';
import { messages } from '../../lib/change-stream.messages.js';
import { loadRecords, oldestOf } from '../../lib/checkpoint/replaced-position.js';
import { resolveOptions } from '../../lib/options/module-options.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import type { ChangeEvent } from '../../lib/common/change-event.js';
import { databasePlans } from '../../lib/stream/database-plan.js';
import { DatabaseRoutes } from '../../lib/stream/database-routes.js';
import { streamModeOf, warnUnknownStreamConnections } from '../../lib/options/streams-option.js';
import { planStreams } from '../../lib/stream/stream-plan.js';
import { token } from '../fixtures/fake-change-stream.js';

const handler = (
  collection: string,
  options: ChangeHandler['options'] = {},
  name = `${collection}.on`,
): ChangeHandler => ({
  name,
  collection,
  connectionName: 'default',
  options,
  invoke: () => undefined,
});

const database = (handlers: ChangeHandler[]) =>
  databasePlans(
    planStreams(handlers),
    streamModeOf(resolveOptions({ consumer: 'svc', streams: 'database' }).streams),
  );

describe('database stream: a rename between two watched collections', () => {
  it("gives a rename of 'orders' into 'archive' to archive's handlers too (a collection stream on archive sees it: mongod matches o.to)", () => {
    const ordersOn = handler('orders', { operationTypes: ['insert'] });
    const archiveOn = handler('archive', { operationTypes: ['insert', 'rename'] });
    const routes = new DatabaseRoutes([ordersOn, archiveOn], new Set());
    const rename = {
      _id: token(1),
      operationType: 'rename',
      ns: { db: 'db', coll: 'orders' },
      to: { db: 'db', coll: 'archive' },
    } as unknown as ChangeEvent;
    // archive's handler asked for renames; the event names archive as its target.
    expect(routes.interested(rename)).toContain(archiveOn);
  });
});

describe("database stream: one collection's 'required' image", () => {
  it("fails startup rather than give 'users' (which set nothing) orders' fullDocumentBeforeChange: 'required'", () => {
    // mongod raises on every update/replace/delete of a collection without pre-images under
    // 'required': the whole database stream (orders included) would fail on users' first update.
    const plans = () =>
      database([handler('orders', { fullDocumentBeforeChange: 'required' }), handler('users')]);
    expect(plans).toThrow(ChangeStreamConfigError);
  });

  it("fails startup rather than give 'users' orders' fullDocument: 'required'", () => {
    const plans = () =>
      database([handler('orders', { fullDocument: 'required' }), handler('users')]);
    expect(plans).toThrow(ChangeStreamConfigError);
  });
});

describe('database stream: updateLookup shared', () => {
  it('lets a collection that set nothing share updateLookup (it only costs lookups)', () => {
    const [plan] = database([
      handler('orders', { fullDocument: 'updateLookup' }),
      handler('users'),
    ]);
    expect(plan.fullDocument).toBe('updateLookup');
  });
});

describe('streams.connections', () => {
  it('warns about a connection no handler uses (a typo), naming the ones in use', () => {
    const warnings: string[] = [];
    const streams = resolveOptions({
      consumer: 'svc',
      streams: { connections: { analytcs: 'database' } },
    }).streams;
    warnUnknownStreamConnections(streams, [handler('orders')], {
      warn: (m: string) => warnings.push(m),
    });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("'analytcs'");
    expect(warnings[0]).toContain("'default'");
  });
});

describe('switching modes on a server whose tokens carry no cluster time', () => {
  it('says it cannot tell the oldest of several stored positions (and which it takes)', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save('cs:{svc:db:orders}', { token: { _data: 'not-a-mongod-token-a' } });
    await tokens.save('cs:{svc:db:users}', { token: { _data: 'not-a-mongod-token-b' } });
    const replaced = oldestOf(
      await loadRecords(tokens, ['cs:{svc:db:orders}', 'cs:{svc:db:users}']),
    );
    expect(replaced).toEqual({
      position: { token: { _data: 'not-a-mongod-token-a' } },
      from: 'cs:{svc:db:orders}',
      unordered: 2,
    });
    expect(messages.startingFromUnorderedPosition('k', replaced!.from, 2)).toContain(
      'cannot tell the oldest',
    );
  });
});
