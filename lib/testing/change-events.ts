import { randomBytes } from 'node:crypto';
import mongoose, { type mongo } from 'mongoose';
import type { ChangeOf } from '../decorators/on-change.decorator.js';
import type { ChangeOperationType } from '../interfaces/on-change-options.interface.js';

const { Timestamp } = mongoose.mongo;

/**
 * A change event as the driver delivers it, or the part of one your handler reads: what is left
 * out (`_id` resume token, `clusterTime`, `wallTime`, `ns`, `documentKey` from `fullDocument._id`,
 * an update's `updateDescription`) is filled in. `operationType` is required.
 */
export type ChangeInput<T extends mongo.Document = any> = {
  [Op in ChangeOperationType]: { operationType: Op } & Partial<
    Omit<ChangeOf<T, Op>, 'operationType'>
  >;
}[ChangeOperationType];

/** Fields a builder takes over as given (`_id`, `clusterTime`, `wallTime`, `fullDocumentBeforeChange`, `txnNumber`…). */
export type ChangeOverrides<T extends mongo.Document, Op extends ChangeOperationType> = Partial<
  Omit<ChangeOf<T, Op>, 'operationType'>
>;

/** The `_id` of a document of type `T`. */
type IdOf<T extends mongo.Document> = mongo.InferIdType<T>;

/** Events that belong to one collection (they carry `ns.coll`). */
const COLLECTION_EVENTS = new Set<string>([
  'insert',
  'update',
  'replace',
  'delete',
  'drop',
  'rename',
  'create',
  'createIndexes',
  'dropIndexes',
  'modify',
  'shardCollection',
  'reshardCollection',
  'refineCollectionShardKey',
]);
/** Events about one document (they carry `documentKey`). */
const DOCUMENT_EVENTS = new Set<string>(['insert', 'update', 'replace', 'delete']);
/** Key order of a real event, so a logged or snapshotted event looks like the driver's. */
const KEY_ORDER = [
  '_id',
  'operationType',
  'clusterTime',
  'wallTime',
  'fullDocument',
  'ns',
  'to',
  'documentKey',
  'updateDescription',
];

/** Per process: resume tokens of two test runs never look alike, those of one run sort in emission order. */
const processTag = randomBytes(16).toString('hex').toUpperCase();
let lastSecond = 0;
let increment = 0;

/** A fresh, increasing cluster time and the resume token of an event at that time (shaped like a server's `_data` token). */
function nextStamp(): { token: mongo.ResumeToken; clusterTime: mongo.Timestamp; wallTime: Date } {
  const now = Date.now();
  const second = Math.max(lastSecond, Math.floor(now / 1000));
  increment = second === lastSecond ? increment + 1 : 1;
  lastSecond = second;
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return {
    token: { _data: `82${hex(second)}${hex(increment)}2B042C0100296E5A1004${processTag}04` },
    clusterTime: new Timestamp({ t: second, i: increment }),
    wallTime: new Date(now),
  };
}

/**
 * Completes `input` into a driver-shaped event of `database.collection` (see `ChangeInput`).
 * Throws when the event cannot be completed (an update without a document id, a rename without
 * `to`) or names another namespace than the one it is emitted on.
 */
export function completeChange(
  input: ChangeInput,
  database: string,
  collection: string,
): mongo.ChangeStreamDocument {
  const given = input as Record<string, unknown> & { operationType?: unknown };
  if (typeof given !== 'object' || given === null || typeof given.operationType !== 'string') {
    throw new TypeError(
      `A change event for "${collection}" needs an "operationType" (e.g. { operationType: 'insert', fullDocument: { … } }).`,
    );
  }
  const type = given.operationType;
  const what = `The "${type}" event emitted on ${database}.${collection}`;
  checkNamespace(given, type, database, collection, what);
  const stamp = nextStamp();
  const defaults: Record<string, unknown> = {
    _id: stamp.token,
    clusterTime: stamp.clusterTime,
    wallTime: stamp.wallTime,
  };
  if (COLLECTION_EVENTS.has(type)) defaults.ns = { db: database, coll: collection };
  if (type === 'dropDatabase') defaults.ns = { db: database };
  const fullDocument = given.fullDocument as { _id?: unknown } | null | undefined;
  if (
    (type === 'insert' || type === 'replace') &&
    (typeof fullDocument !== 'object' || fullDocument === null)
  ) {
    throw new TypeError(`${what} needs a "fullDocument".`);
  }
  if (DOCUMENT_EVENTS.has(type) && given.documentKey === undefined) {
    if (fullDocument?._id === undefined) {
      throw new TypeError(
        `${what} needs a "documentKey" ({ _id: … }) or a "fullDocument" with an _id.`,
      );
    }
    defaults.documentKey = { _id: fullDocument._id };
  }
  if (type === 'update' && given.updateDescription === undefined) {
    const { _id, ...fields } = fullDocument ?? {};
    defaults.updateDescription = { updatedFields: fields, removedFields: [], truncatedArrays: [] };
  }
  if (type === 'rename' && given.to === undefined)
    throw new TypeError(`${what} needs "to" ({ db, coll }).`);
  const event: Record<string, unknown> = {};
  for (const key of [...KEY_ORDER, ...Object.keys(given)]) {
    if (key in event) continue;
    const value = given[key] !== undefined ? given[key] : defaults[key];
    if (value !== undefined) event[key] = value;
  }
  return event as unknown as mongo.ChangeStreamDocument;
}

function checkNamespace(
  given: Record<string, unknown>,
  type: string,
  database: string,
  collection: string,
  what: string,
): void {
  const ns = given.ns as { db?: unknown; coll?: unknown } | undefined;
  if (ns === undefined) return;
  if (ns.db !== database) {
    throw new TypeError(
      `${what} has ns.db "${String(ns.db)}": emit it in "${String(ns.db)}", or build it with ` +
        `changeEvents.forDatabase('${database}').`,
    );
  }
  if (COLLECTION_EVENTS.has(type) && ns.coll !== collection) {
    throw new TypeError(
      `${what} has ns.coll "${String(ns.coll)}": emit it on "${String(ns.coll)}", or build it for "${collection}".`,
    );
  }
}

/**
 * Builds realistic change events, shaped as the driver delivers them: a resume token `_id`,
 * `operationType`, `clusterTime`, `wallTime`, `ns`, `documentKey`, `fullDocument`,
 * `updateDescription`. Like a real stream without `showExpandedEvents`, events carry no
 * `collectionUUID` (the driver's types declare it anyway).
 *
 * `changeEvents` builds events of database `test` (the testing module's default);
 * `changeEvents.forDatabase('shop')` of another.
 */
export class ChangeEventFactory {
  constructor(readonly database: string = 'test') {}

  /** The same builders for events of `database`. */
  forDatabase(database: string): ChangeEventFactory {
    return new ChangeEventFactory(database);
  }

  /** An insert of `fullDocument` (which must have its `_id`). */
  insert<T extends mongo.Document = any>(
    collection: string,
    fullDocument: T,
    overrides?: ChangeOverrides<T, 'insert'>,
  ): ChangeOf<T, 'insert'> {
    return this.build(collection, { operationType: 'insert', fullDocument, ...overrides });
  }

  /**
   * An update of the document `document._id` (name the document type: `update<Order>(…)`). With more fields than `_id`, `document` is the
   * event's `fullDocument` (as with `fullDocument: 'updateLookup'`); pass only `{ _id }` for an
   * event without one. `updateDescription` defaults to every field of `document` as updated.
   */
  update<T extends mongo.Document = any>(
    collection: string,
    document: NoInfer<T> | { _id: IdOf<NoInfer<T>> },
    updateDescription?: mongo.UpdateDescription<NoInfer<T>>,
    overrides?: ChangeOverrides<NoInfer<T>, 'update'>,
  ): ChangeOf<T, 'update'> {
    const { _id, ...fields } = document as { _id: unknown };
    const withDocument = Object.keys(fields).length > 0 ? { fullDocument: document as T } : {};
    const description = updateDescription && {
      removedFields: [],
      truncatedArrays: [],
      ...updateDescription,
    };
    return this.build(collection, {
      operationType: 'update',
      documentKey: { _id },
      ...withDocument,
      updateDescription: description,
      ...overrides,
    });
  }

  /** A replacement of the document `fullDocument._id` by `fullDocument`. */
  replace<T extends mongo.Document = any>(
    collection: string,
    fullDocument: T,
    overrides?: ChangeOverrides<T, 'replace'>,
  ): ChangeOf<T, 'replace'> {
    return this.build(collection, { operationType: 'replace', fullDocument, ...overrides });
  }

  /** A delete of the document with `_id` of `document` (pass the document or just `{ _id }`). */
  delete<T extends mongo.Document = any>(
    collection: string,
    document: NoInfer<T> | { _id: IdOf<NoInfer<T>> },
    overrides?: ChangeOverrides<NoInfer<T>, 'delete'>,
  ): ChangeOf<T, 'delete'> {
    return this.build(collection, {
      operationType: 'delete',
      documentKey: { _id: (document as { _id: IdOf<T> })._id },
      ...overrides,
    });
  }

  /** The collection was dropped. */
  drop(collection: string, overrides?: ChangeOverrides<any, 'drop'>): ChangeOf<any, 'drop'> {
    return this.build(collection, { operationType: 'drop', ...overrides });
  }

  /** The collection was renamed to `to` (a collection of the same database, or `{ db, coll }`). */
  rename(
    collection: string,
    to: string | { db: string; coll: string },
    overrides?: ChangeOverrides<any, 'rename'>,
  ): ChangeOf<any, 'rename'> {
    return this.build(collection, {
      operationType: 'rename',
      to: typeof to === 'string' ? { db: this.database, coll: to } : to,
      ...overrides,
    });
  }

  /** The database was dropped: every stream on it receives this event. */
  dropDatabase(overrides?: ChangeOverrides<any, 'dropDatabase'>): ChangeOf<any, 'dropDatabase'> {
    return this.build('', { operationType: 'dropDatabase', ...overrides });
  }

  /** The stream was invalidated (it follows a drop or rename of its collection); it has no `ns`. */
  invalidate(overrides?: ChangeOverrides<any, 'invalidate'>): ChangeOf<any, 'invalidate'> {
    return this.build('', { operationType: 'invalidate', ...overrides });
  }

  private build<C>(
    collection: string,
    input: { operationType: ChangeOperationType } & Record<string, unknown>,
  ): C {
    return completeChange(input as ChangeInput, this.database, collection) as C;
  }
}

/** Builders of realistic change events of database `test`: see `ChangeEventFactory`. */
export const changeEvents = new ChangeEventFactory();
