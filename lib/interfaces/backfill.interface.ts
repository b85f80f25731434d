import type { mongo } from 'mongoose';

/** `@OnChange(collection, { backfill })` as an object: how existing documents are read. */
export interface BackfillOptions {
  /**
   * Documents per chunk (one `find` sorted by `_id`).
   * @defaultValue 1000
   */
  batchSize?: number;
  /** Only documents matching this query are backfilled (a `find` filter on the collection). */
  filter?: Record<string, unknown>;
  /** The projection of the chunk reads (the backfill event's `fullDocument` holds only these fields). */
  projection?: Record<string, unknown>;
}

/**
 * One existing document, delivered once by a backfill to the handlers that asked for it (see
 * `OnChangeOptions.backfill`). It is no change stream event: it has no resume token (`_id`), no
 * `clusterTime`; `documentKey` and `fullDocument` are the document as a chunk read found it.
 */
export interface BackfillEvent<T extends mongo.Document = any> {
  /** Always `'backfill'`: tells it apart from a change. */
  operationType: 'backfill';
  /** The document's key, as in a change event. */
  documentKey: {
    /** The document's `_id`. */
    _id: unknown;
  };
  /** The document as read (with the backfill's `projection`, if any). */
  fullDocument: T;
  /** Where the document lives, as in a change event. */
  ns: {
    /** The database. */
    db: string;
    /** The collection. */
    coll: string;
  };
  /** Which backfill delivered it. */
  backfill: {
    /** The backfill run this document belongs to (`ChangeStreamBackfill.progress` names it); one frozen object per run. */
    readonly run: string;
  };
}

/** A backfill run's progress, as `getStatus()`, health and `ChangeStreamBackfill.progress` show it. */
export interface BackfillStatus {
  /** The run's id. */
  run: string;
  /** The handlers it delivers to (`ClassName.methodName`). */
  handlers: string[];
  /** Documents whose chunk was acknowledged (handled and stored) so far. */
  done: number;
  /** The collection's estimated document count when the run started (null until known). */
  total: number | null;
  /** Documents per second since this instance resumed the run (null until measured). */
  rate: number | null;
  /** Estimated time to finish (null when unknown). */
  etaMs: number | null;
  /** When the run started (on whichever instance). */
  startedAt: Date;
}

/** What a stream stores about backfills beside its position (written by the same fenced write). */
export interface StoredBackfill {
  /** Handlers that completed a backfill of this stream: they are not backfilled again unless asked. */
  completed: string[];
  /** The run in progress, if any. */
  run?: {
    /** The run's id. */
    id: string;
    /** The handlers it delivers to. */
    handlers: string[];
    /** The `_id` of the last document of the last acknowledged chunk (canonical EJSON); absent before the first. */
    after?: string;
    /** Documents of acknowledged chunks. */
    done: number;
    /**
     * Of those, the documents delivered to the handlers (the others were dropped: the stream
     * delivered a change of them inside their chunk's window). Absent in records written before
     * it was kept: then counted from `done`.
     */
    delivered?: number;
    /** The estimated document count when it started, if known. */
    total: number | null;
    /** When it started (ISO 8601). */
    startedAt: string;
  };
}
