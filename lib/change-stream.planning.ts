import type { Logger } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { getConnectionToken } from '@nestjs/mongoose';
import type { Connection, mongo } from 'mongoose';
import { DEFAULT_CONNECTION_NAME } from './change-stream.constants.js';
import type { ReplacedStreams } from './checkpoint/replaced-position.js';
import { ChangeStreamConfigError } from './change-stream.errors.js';
import { messages } from './change-stream.messages.js';
import { errorText } from './common/errors.js';
import type { ModelCollectionResolver } from './change-stream.explorer.js';
import { describeCollection } from './decorators/collection-source.js';
import { modelCollection } from './decorators/model-collection.js';
import { LeaseBalancer } from './lease/lease-balancer.js';
import type { ResolvedChangeStreamOptions } from './options/module-options.js';
import { deploymentKey, positionKey } from './redis/redis-keys.js';
import type { ChangeStreamStores } from './stores.factory.js';
import type { ChangeHandler } from './stream/change-handler.js';
import type { CollectionStream } from './stream/collection-stream.js';
import type { StreamPlan } from './stream/stream-plan.js';
import { collectionsOf, DATABASE_STREAM, DEPLOYMENT_STREAM } from './stream/stream-scope.js';

export interface KeyedPlan {
  plan: StreamPlan;
  connection: Connection;
  database: string;
  /** For the startup check that the watched collections exist. */
  db: mongo.Db;
  key: string;
  /** The streams that share its collections in the other shape (see `replacedStreams`). */
  replaces: ReplacedStreams | undefined;
}

/** Each plan's connection, database and key; two plans sharing a key fail startup. */
export async function keyedPlans(
  plans: StreamPlan[],
  moduleRef: ModuleRef,
  options: ResolvedChangeStreamOptions,
): Promise<KeyedPlan[]> {
  const keys = new Map<string, StreamPlan>();
  const planned: KeyedPlan[] = [];
  for (const plan of plans) {
    const connection = resolveConnection(plan, moduleRef);
    const connected = await databaseOf(connection, plan);
    const deployment = plan.scope.kind === 'deployment';
    // A deployment stream reads every database: its key names the connection instead.
    const database = deployment ? DEPLOYMENT_STREAM : connected;
    const key = deployment
      ? deploymentKey(options.keyPrefix, options.consumer, plan.connectionName)
      : positionKey(options.keyPrefix, options.consumer, database, plan.collection);
    const clash = keys.get(key);
    if (clash)
      throw new ChangeStreamConfigError(
        messages.keyClash(
          key,
          `${database}.${plan.collection}`,
          clash.connectionName,
          plan.connectionName,
        ),
      );
    keys.set(key, plan);
    planned.push({
      plan,
      connection,
      database,
      db: connection.db!,
      key,
      replaces: replacedStreams(plan, (c) =>
        positionKey(options.keyPrefix, options.consumer, database, c),
      ),
    });
  }
  return planned;
}

/**
 * Switching modes loses nothing: a database stream reads its collections' own streams' records, a
 * collection stream its database stream's (see `start-rule.ts`). The deployment stream has none.
 */
function replacedStreams(
  plan: StreamPlan,
  keyOf: (collection: string) => string,
): ReplacedStreams | undefined {
  if (plan.scope.kind === 'deployment') return undefined;
  return plan.scope.kind === 'database'
    ? {
        collections: collectionsOf(plan).map((collection) => ({
          collection,
          key: keyOf(collection),
        })),
      }
    : {
        collection: plan.collection,
        databaseKey: keyOf(DATABASE_STREAM),
        backfillHandlers: plan.handlers.filter((h) => h.options.backfill).map((h) => h.name),
      };
}

function resolveConnection(plan: StreamPlan, moduleRef: ModuleRef): Connection {
  return connectionNamed(
    plan.connectionName,
    moduleRef,
    plan.handlers.map((h) => `@OnChange('${h.collection}') on ${h.name}`),
  );
}

function connectionNamed(
  connectionName: string,
  moduleRef: ModuleRef,
  users: string[],
): Connection {
  const name = connectionName === DEFAULT_CONNECTION_NAME ? undefined : connectionName;
  try {
    return moduleRef.get<Connection>(getConnectionToken(name), { strict: false });
  } catch {
    throw new ChangeStreamConfigError(messages.missingConnection(connectionName, users));
  }
}

/**
 * Names the collection of a handler declared with a `@Schema()` class or a Mongoose model, as
 * Mongoose names it on the handler's connection (`modelCollection`). Without `moduleRef` (the
 * testing module) there is no connection: registered models are not looked up.
 */
export function modelCollectionResolver(moduleRef?: ModuleRef): ModelCollectionResolver {
  return (model, connectionName, handler) => {
    const connection = moduleRef
      ? connectionNamed(connectionName, moduleRef, [
          `@OnChange(${describeCollection(model)}) on ${handler}`,
        ])
      : undefined;
    const resolved = modelCollection(model, connection);
    if ('name' in resolved) return resolved.name;
    throw new ChangeStreamConfigError(
      messages.onChangeModelUnresolved(
        describeCollection(model),
        connectionName,
        [handler],
        resolved.reason,
      ),
    );
  };
}

/**
 * The database name is part of the key: wait for a connection that is still connecting
 * (`lazyConnection`), never guess, or the key could differ between boots.
 */
async function databaseOf(connection: Connection, plan: StreamPlan): Promise<string> {
  const db = connection.db ?? (await connection.asPromise()).db;
  if (!db)
    throw new ChangeStreamConfigError(
      messages.connectionWithoutDatabase(plan.connectionName, plan.collection),
    );
  return db.databaseName;
}

/**
 * Leases: on with a store that supports them unless `leases: false`; asked for explicitly with one
 * that does not, an error. `handOver` asks the stream of a key to give its lease up.
 */
export function createBalancer(
  handlerSets: Map<string, string>,
  options: ResolvedChangeStreamOptions,
  stores: ChangeStreamStores,
  logger: Logger,
  handOver: (key: string) => boolean,
): LeaseBalancer | undefined {
  const keys = [...handlerSets.keys()];
  const { leases } = options;
  const store = stores.tokens.leases;
  if (leases === false) {
    if (keys.length > 0) logger.log(messages.leasesOff('leases: false'));
    return undefined;
  }
  if (!store) {
    if (leases.explicit) throw new ChangeStreamConfigError(messages.leasesUnsupported());
    if (keys.length > 0 && stores.tokens.durable !== false)
      logger.warn(messages.leasesOff('the tokenStore does not implement leases'));
    return undefined;
  }
  return new LeaseBalancer(store, leases.instanceId, leases, keys, handOver, handlerSets);
}

/** Dead letters must be exactly as durable as positions: else a restart loses events (or positions) silently. */
export function checkDeadLetterDurability(
  handlers: ChangeHandler[],
  options: ResolvedChangeStreamOptions,
  stores: ChangeStreamStores,
  logger: Logger,
): void {
  const deadLettering = handlers
    .filter((h) => (h.options.onFailure ?? options.onHandlerFailure) === 'dead-letter')
    .map((h) => h.name);
  if (deadLettering.length === 0) return;
  const positionsDurable = stores.tokens.durable !== false;
  const lettersDurable = stores.deadLetters.durable !== false;
  if (positionsDurable !== lettersDurable)
    throw new ChangeStreamConfigError(messages.durabilityMismatch(deadLettering, positionsDurable));
  if (!lettersDurable) logger.warn(messages.inMemoryDeadLetters());
}

/** A watched collection that does not exist is valid for MongoDB, but usually a typo: say so, never fail. */
export async function warnMissingCollections(
  streams: CollectionStream[],
  databases: Map<string, mongo.Db>,
  logger: Logger,
): Promise<void> {
  const byDatabase = new Map<mongo.Db, CollectionStream[]>();
  for (const stream of streams) {
    // A deployment stream's collections are in databases that may not exist yet.
    if (stream.plan.scope.kind === 'deployment') continue;
    const db = databases.get(stream.key);
    if (db) byDatabase.set(db, [...(byDatabase.get(db) ?? []), stream]);
  }
  await Promise.all(
    [...byDatabase].map(async ([db, streams]) => {
      let names: Set<string>;
      try {
        names = new Set(
          (
            await db.listCollections({}, { nameOnly: true, authorizedCollections: true }).toArray()
          ).map((c) => c.name),
        );
      } catch (error) {
        logger.debug(
          `Not checking that the watched collections of ${db.databaseName} exist: ${errorText(error)}`,
        );
        return;
      }
      for (const { plan } of streams) {
        for (const collection of collectionsOf(plan)) {
          if (!names.has(collection))
            logger.warn(
              messages.collectionMissing(
                db.databaseName,
                collection,
                plan.handlers.filter((h) => h.collection === collection).map((h) => h.name),
              ),
            );
        }
      }
    }),
  );
}
