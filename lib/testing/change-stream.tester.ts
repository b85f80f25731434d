import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type CollectionToken,
  type DocumentOf,
  describeCollection,
  isTenantCollection,
  type SchemaClass,
  storedCollection,
  type TenantCollection,
} from '../decorators/collection-source.js';
import { describeDatabasePattern, matchesDatabase } from '../stream/database-pattern.js';
import { modelCollection } from '../decorators/model-collection.js';
import type { ChangeOf } from '../decorators/on-change.decorator.js';
import { backfillEvent } from '../backfill/backfill-event.js';
import { messages } from '../change-stream.messages.js';
import type { BackfillEvent } from '../interfaces/backfill.interface.js';
import type { DeadLetter } from '../interfaces/dead-letter.interface.js';
import { type ChangeInput, completeChange } from './change-events.js';
import type { ChangeOutcome } from './change-outcome.js';
import {
  type DatabaseNamer,
  emittedDatabase,
  type EmitTarget,
  mergedOutcome,
} from './testing-routes.js';
import { type TestingStream, TestingStreams } from './testing-streams.js';

export interface EmitOptions {
  /** The stream's connection name (default: the testing module's `connectionName`, else the default connection). */
  connectionName?: string;
  /**
   * The event's database (`ns.db`): for handlers with a database pattern
   * (`@OnChange({ collection, database: /^tenant_/ })`), a tenant's database.
   * An event built for the app's database (`changeEvents`) is moved to it; one built for a third
   * database (`changeEvents.forDatabase('tenant_v')`) is refused.
   * @defaultValue the event's own `ns.db` if it has one (`changeEvents.forDatabase('tenant_a')`), else the testing module's `database`
   */
  database?: string;
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
   * handler watches `collection`, when the event is incomplete or of another namespace, or when
   * no database is named and only database patterns that do not match the app's watch `collection`.
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
  /**
   * `emit` on the collection of `@OnChange({ collection, database })` (a handler with a database
   * pattern), in the database `options.database` names, else the source's when it names one
   * database (both as `EmitOptions.database`), else the event's own `ns.db`
   * (`changeEvents.forDatabase('tenant_a')`).
   */
  async emit<T extends mongo.Document = any>(
    tenant: TenantCollection,
    change: ChangeInput<T>,
    options?: EmitOptions,
  ): Promise<ChangeOutcome<ChangeOf<T>>>;
  async emit(
    source: Source,
    change: ChangeInput,
    options: EmitOptions = {},
  ): Promise<ChangeOutcome> {
    const { target, input, namedBy } = this.targetOf(source, change, options);
    const event = completeChange(input, target.database, target.collection);
    const streams = this.streams.route(target, event, namedBy);
    const outcomes = await Promise.all(
      // A second stream gets its own copy, as it would from its own cursor.
      streams.map((stream, i) =>
        this.streams.deliver(stream, i === 0 ? event : { ...event }, target),
      ),
    );
    return mergedOutcome(event, outcomes);
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
  /** `emitMany` on the collection of `@OnChange({ collection, database })` (see `emit`). */
  async emitMany<T extends mongo.Document = any>(
    tenant: TenantCollection,
    changes: ReadonlyArray<ChangeInput<T>>,
    options?: EmitOptions,
  ): Promise<Array<ChangeOutcome<ChangeOf<T>>>>;
  async emitMany(
    source: Source,
    changes: ReadonlyArray<ChangeInput>,
    options: EmitOptions = {},
  ): Promise<ChangeOutcome[]> {
    const resolved = changes.map((change) => this.targetOf(source, change, options));
    const targets = resolved.map((r) => r.target);
    const events = resolved.map(({ input, target }) =>
      completeChange(input, target.database, target.collection),
    );
    // Each stream gets its events as one run, in order (batch handlers cut their batches from it).
    const byStream = new Map<TestingStream, number[]>();
    const routes = events.map((event, i) =>
      this.streams.route(targets[i], event, resolved[i].namedBy),
    );
    events.forEach((_event, i) =>
      routes[i].forEach((stream) => byStream.set(stream, [...(byStream.get(stream) ?? []), i])),
    );
    const perEvent: ChangeOutcome[][] = events.map(() => []);
    const given = new Set<number>();
    // A second stream gets its own copy of an event, as it would from its own cursor.
    const copy = (i: number) => (given.has(i) ? { ...events[i] } : (given.add(i), events[i]));
    await Promise.all(
      [...byStream].map(async ([stream, indexes]) => {
        const outcomes = await this.streams.deliverMany(
          stream,
          indexes.map(copy),
          indexes.map((i) => targets[i]),
        );
        outcomes.forEach((outcome, j) => perEvent[indexes[j]].push(outcome));
      }),
    );
    return perEvent.map((outcomes, i) => mergedOutcome(events[i], outcomes));
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
    const connectionName = options.connectionName ?? this.streams.options.defaultConnection;
    const stream = this.streams.find(collection, connectionName);
    const asking = stream.plan.handlers.filter((h) => h.options.backfill).map((h) => h.name);
    if (asking.length === 0) throw new Error(messages.backfillNoHandler(stream.key, undefined, []));
    const event = backfillEvent(
      document,
      { db: stream.database, coll: collection },
      Object.freeze({ run: options.run ?? 'test' }),
      new Set(asking),
    );
    const target = { connectionName, database: stream.database, collection };
    const outcome = await this.streams.deliver(stream, event, target);
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
    this.streams.all().forEach((stream) => {
      stream.failure = null;
      // As a new process: a fresh scheduler (the stopped one starts nothing more).
      delete stream.concurrent;
    });
  }

  /**
   * The connection, database and collection an emitted event is of, the event for that database
   * (see `emittedDatabase`), and who named the database.
   */
  private targetOf(
    source: Source,
    change: ChangeInput,
    options: EmitOptions,
  ): { target: EmitTarget; input: ChangeInput; namedBy: DatabaseNamer } {
    const connectionName = options.connectionName ?? this.streams.options.defaultConnection;
    const own = this.streams.databaseOf(connectionName);
    const collection = collectionName(source);
    const tenant = isTenantCollection(source) ? source : undefined;
    const named =
      options.database ?? (typeof tenant?.database === 'string' ? tenant.database : undefined);
    const { database, change: input, namedBy } = emittedDatabase(change, named, own);
    if (tenant && namedBy === 'none' && !matchesDatabase(tenant.database, database))
      throw new Error(
        `Emitting on { collection: '${collection}', database: ${describeDatabasePattern(tenant.database)} } needs the ` +
          `event's database: pass { database: 'tenant_a' } (say) as the emit options, or build the event with ` +
          `changeEvents.forDatabase('tenant_a').`,
      );
    return { target: { connectionName, collection, database }, input, namedBy };
  }
}

/** What `emit` takes as the collection: what `@OnChange` takes (a Mongoose model is a `SchemaClass` here). */
type Source = string | CollectionToken | SchemaClass | TenantCollection;

/** The collection `@OnChange(source)` watches in the testing module (no connection, so no registered models). */
function collectionName(source: Source): string {
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
