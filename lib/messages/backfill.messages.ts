import { duration } from './duration.js';
import { plural } from './plural.js';

/** Backfill: reading existing documents beside the stream. */
export const backfillMessages = {
  backfillNeedsFullDocument: (collection: string, handlers: string[], fullDocument: string) =>
    `@OnChange('${collection}'): ${handlers.join(', ')} ask${handlers.length === 1 ? 's' : ''} for a backfill, but the stream's fullDocument is "${fullDocument}". ` +
    `A backfill needs update events with the whole document: set fullDocument: 'updateLookup' (or 'required' with post-images enabled) on a handler of '${collection}'.`,
  backfillNeedsDocumentEvents: (collection: string, handler: string, missing: string[]) =>
    `@OnChange('${collection}') on ${handler}: a backfill handler must receive every change of a document, but its operationTypes leave out ${missing.join(', ')}. ` +
    `A chunk's copy of a document changed while the chunk is read is dropped in favour of that change, so the handler would get neither. Add ${missing.join(', ')} to operationTypes (or leave operationTypes out).`,
  backfillStarted: (key: string, run: string, handlers: string[], resumed: boolean) =>
    `Backfill ${run} of ${key} ${resumed ? 'resumed' : 'started'} for ${handlers.join(', ')}.`,
  backfillProgress: (
    key: string,
    run: string,
    done: number,
    total: number | null,
    rate: number | null,
    etaMs: number | null,
  ) =>
    `Backfill ${run} of ${key}: ${done}${total === null ? '' : ` of about ${total}`} ${plural(total ?? done, 'document')} done` +
    `${rate === null ? '' : `, ${Math.round(rate)}/s`}${etaMs === null ? '' : `, about ${duration(etaMs)} left`}.`,
  backfillFinished: (key: string, run: string, delivered: number, read: number) =>
    `Backfill ${run} of ${key} finished: ${delivered} ${plural(delivered, 'document')} delivered to the handlers` +
    (read === delivered
      ? '.'
      : ` (${read} read; ${read - delivered} not delivered: the stream delivered a change of them while their chunk was read).`),
  backfillCancelled: (key: string, run: string, done: number) =>
    `Backfill ${run} of ${key} cancelled after ${done} ${plural(done, 'document')}.`,
  backfillRefused: (key: string, state: string, holder: string | null) =>
    `Backfill request refused: this instance is not consuming stream ${key} (${holder ? `it is held by ${holder}` : `state ${state}`}). ` +
    `A backfill runs under the stream's lease: ask ${holder ?? 'the instance that holds the stream'}.`,
  backfillNoStream: (collection: string, connectionName: string) =>
    `ChangeStreamBackfill: no stream of collection '${collection}' on connection '${connectionName}'.`,
  backfillNoHandler: (key: string, handler: string | undefined, asking: string[]) =>
    `ChangeStreamBackfill: ${handler ? `handler ${handler} of ${key} is not declared with backfill` : `no handler of ${key} is declared with backfill`}` +
    `${asking.length ? ` (those that are: ${asking.join(', ')})` : ''}.`,
  backfillDisabled: (
    key: string,
    handler: string | undefined,
    why: 'handler' | 'stream' | 'module',
  ) =>
    `ChangeStreamBackfill: ${handler ? `handler ${handler} of ${key}` : `stream ${key}`} cannot be backfilled on this instance: ` +
    (why === 'module'
      ? 'the module is disabled here (enabled: false), so no stream runs'
      : why === 'stream'
        ? 'every handler of the stream is disabled here (enabled: false), so the stream does not run'
        : 'the handler is disabled here (enabled: false), so it is not called') +
    `. Start the backfill on an instance where ${handler ? 'it' : 'they'} ${handler ? 'is' : 'are'} enabled and that holds the stream.`,
  backfillRunning: (key: string, run: string) =>
    `ChangeStreamBackfill: backfill ${run} of ${key} is still running; cancel it first.`,
};
