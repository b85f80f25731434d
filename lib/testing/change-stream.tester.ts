import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type CollectionToken,
  type DocumentOf,
  describeCollection,
  type SchemaClass,
  storedCollection,
} from '../decorators/collection-source.js';
import { modelCollection } from '../decorators/model-collection.js';
import type { ChangeOf } from '../decorators/on-change.decorator.js';
import { backfillEvent } from '../backfill/backfill-event.js';
import { messages } from '../change-stream.messages.js';
import type { BackfillEvent } from '../interfaces/backfill.interface.js';
import type { DeadLetter } from '../interfaces/dead-letter.interface.js';
import { type ChangeInput, completeChange } from './change-events.js';
import type { ChangeOutcome } from './change-outcome.js';
import { TestingStreams } from './testing-streams.js';

export interface EmitOptions {
  /** The stream's connection name (default: the testing module's `connectionName`, else the default connection). */
  connectionName?: string;
}

/**
 * Pushes change events to the application's `@OnChange` handlers as production does (same
 * discovery, routing, retries and failure policies), without MongoDB or Redis, and reports what
 * happened to each. Get it from a testing module that imports `ChangeStreamTestingModule`.
 */
@Injectable()
export class ChangeStreamTester {
  constructor(private readonly streams: TestingStreams) {}

  /**
   * Delivers `change` to the stream of `collection` and resolves once every interested handler
   * is done (retries included). Events of one stream are handled one at a time in the order they
   * were emitted, awaited or not; streams are independent. `change` is a full event (see
   * `changeEvents`) or the part of one your handler reads (see `ChangeInput`). Rejects when no
   * handler watches `collection`, or when the event is incomplete or of another namespace.
   */
  async emit<T extends mongo.Document = any>(
    collection: string,
    change: ChangeInput<T>,
    options?: EmitOptions,
  ): Promise<ChangeOutcome<ChangeOf<T>>>;
  /**
   * `emit` on the collection of a `collection<T>()` token, a `@Schema()` class or a Mongoose
   * model, named as `@OnChange` names it in the testing module; the event is typed from it.
   */
  async emit<S extends CollectionToken | SchemaClass>(
    collection: S,
    change: ChangeInput<DocumentOf<S>>,
    options?: EmitOptions,
  ): Promise<ChangeOutcome<ChangeOf<DocumentOf<S>>>>;
  async emit(
    source: string | CollectionToken | SchemaClass,
    change: ChangeInput,
    options: EmitOptions = {},
  ): Promise<ChangeOutcome> {
    const collection = collectionName(source);
    const stream = this.streams.find(collection, options.connectionName);
    return this.streams.deliver(stream, completeChange(change, stream.database, collection));
  }

  /**
   * `emit` for each event in order; validates all of them before delivering any. `@OnChangeBatch`
   * handlers get these events in batches (cut at their `maxSize` and around an event without a
   * document), as if the stream had read them together; `emit` gives them a batch of one.
   */
  async emitMany<T extends mongo.Document = any>(
    collection: string,
    changes: ReadonlyArray<ChangeInput<T>>,
    options?: EmitOptions,
  ): Promise<Array<ChangeOutcome<ChangeOf<T>>>>;
  /** `emitMany` on the collection of a token, `@Schema()` class or model (see `emit`). */
  async emitMany<S extends CollectionToken | SchemaClass>(
    collection: S,
    changes: ReadonlyArray<ChangeInput<DocumentOf<S>>>,
    options?: EmitOptions,
  ): Promise<Array<ChangeOutcome<ChangeOf<DocumentOf<S>>>>>;
  async emitMany(
    source: string | CollectionToken | SchemaClass,
    changes: ReadonlyArray<ChangeInput>,
    options: EmitOptions = {},
  ): Promise<ChangeOutcome[]> {
    const collection = collectionName(source);
    const stream = this.streams.find(collection, options.connectionName);
    const events = changes.map((change) => completeChange(change, stream.database, collection));
    return this.streams.deliverMany(stream, events);
  }

  /**
   * Delivers `document` as a backfill would (a `BackfillEvent` of run `options.run`, default
   * `'test'`) to the handlers of `collection` declared with `backfill` (the others never see
   * one), in the stream's order like `emit`. Rejects when no handler of `collection` asks for a backfill.
   */
  async backfill<T extends mongo.Document = any>(
    collection: string,
    document: T & { _id: unknown },
    options: EmitOptions & { run?: string } = {},
  ): Promise<ChangeOutcome<BackfillEvent<T>>> {
    const stream = this.streams.find(collection, options.connectionName);
    const asking = stream.plan.handlers.filter((h) => h.options.backfill).map((h) => h.name);
    if (asking.length === 0) throw new Error(messages.backfillNoHandler(stream.key, undefined, []));
    const event = backfillEvent(
      document,
      { db: stream.database, coll: collection },
      Object.freeze({ run: options.run ?? 'test' }),
      new Set(asking),
    );
    const outcome = await this.streams.deliver(stream, event);
    return outcome as unknown as ChangeOutcome<BackfillEvent<T>>;
  }

  /** The dead letters stored so far, oldest first, as `ChangeStreamDeadLetters.list()` returns them (EJSON round trip). */
  deadLetters(): Promise<DeadLetter[]> {
    return this.streams.deadLetterStore.list();
  }

  /**
   * Models a restart after a handler failed under `'stop'`: the stopped streams deliver again.
   * In production the event that stopped the stream comes first after a restart: emit it again.
   * Dead letters are kept, as they are in Redis.
   */
  restart(): void {
    this.streams.all().forEach((stream) => (stream.failure = null));
  }
}

/** The collection `@OnChange(source)` watches in the testing module (no connection, so no registered models). */
function collectionName(source: string | CollectionToken | SchemaClass): string {
  const stored = storedCollection(source);
  if (stored === undefined)
    throw new Error(
      `Cannot emit on ${String(source)}: expected a collection name, a collection<T>() token, a @Schema() class or a Mongoose model.`,
    );
  if (typeof stored === 'string') return stored;
  const resolved = modelCollection(stored);
  if ('name' in resolved) return resolved.name;
  throw new Error(
    `Cannot emit on ${describeCollection(stored)}: ${resolved.reason}. Emit on the collection's name.`,
  );
}
