import { describe, expect, it } from '@jest/globals';
import { ChangeStreamConfigError } from '../../lib/index.js';
import type { OnChangeOptions } from '../../lib/index.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { planStreams } from '../../lib/stream/stream-plan.js';

function handler(name: string, options: OnChangeOptions): ChangeHandler {
  return {
    name,
    collection: 'orders',
    connectionName: 'default',
    options,
    invoke: () => undefined,
  };
}

// A chunk's copy of a document changed inside the chunk's window is dropped for that change: a
// backfill handler that would not get the change, or gets it without the document, loses it.
describe('backfill: what the stream must give a backfill handler', () => {
  it('refuses operationTypes that leave out a document event, naming the handler and the types', () => {
    const plan = () =>
      planStreams([
        handler('Search.onInsert', {
          backfill: true,
          fullDocument: 'updateLookup',
          operationTypes: ['insert', 'replace'],
        }),
        handler('Audit.onUpdate', { operationTypes: ['update'] }),
      ]);
    expect(plan).toThrow(ChangeStreamConfigError);
    expect(plan).toThrow(
      "@OnChange('orders') on Search.onInsert: a backfill handler must receive every change of a document, but its operationTypes leave out update, delete.",
    );
  });

  it("refuses fullDocument 'whenAvailable' (an update may come without its document)", () => {
    expect(() =>
      planStreams([handler('Search.sync', { backfill: true, fullDocument: 'whenAvailable' })]),
    ).toThrow(
      /fullDocument is "whenAvailable"\. A backfill needs update events with the whole document/,
    );
  });

  it('accepts every document event (listed or not restricted) with updateLookup or required', () => {
    for (const fullDocument of ['updateLookup', 'required'] as const) {
      expect(
        planStreams([
          handler('Search.sync', {
            backfill: true,
            fullDocument,
            operationTypes: ['insert', 'update', 'replace', 'delete'],
          }),
          handler('Cache.sync', { backfill: true }),
        ])[0].handlers.map((h) => h.name),
      ).toEqual(['Search.sync', 'Cache.sync']);
    }
  });
});
