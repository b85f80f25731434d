import type { Connection } from 'mongoose';
import { DEFAULT_CONNECTION_NAME } from '../change-stream.constants.js';
import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../options/module-options.js';
import type { PositionStore } from '../interfaces/position-store.interface.js';
import { MirroredPositionStore } from './mirrored-position.store.js';
import { type MirrorDocument, MongoPositionMirror } from './mongo-position-mirror.js';

/**
 * `store` wrapped so positions are copied to MongoDB when `positionMirror` is on, in the database
 * of a connection the application already has (`connectionNamed` throws for an unknown name).
 */
export async function withPositionMirror(
  store: PositionStore,
  options: ResolvedChangeStreamOptions,
  connectionNamed: (name: string | undefined) => Connection,
): Promise<PositionStore> {
  const mirror = options.positionMirror;
  if (mirror === false) return store;
  const name = mirror.connectionName ?? DEFAULT_CONNECTION_NAME;
  let connection: Connection;
  try {
    connection = connectionNamed(name === DEFAULT_CONNECTION_NAME ? undefined : name);
  } catch {
    throw new ChangeStreamConfigError(
      messages.missingConnection(name, ['the "positionMirror" option']),
    );
  }
  const db = connection.db ?? (await connection.asPromise()).db;
  if (!db)
    throw new ChangeStreamConfigError(messages.connectionWithoutDatabase(name, mirror.collection));
  return new MirroredPositionStore(
    store,
    new MongoPositionMirror(db.collection<MirrorDocument>(mirror.collection)),
    {
      intervalMs: mirror.intervalMs,
      // A Redis save under a lease proves it current for a renewal interval (see `stampFor`).
      proofWindowMs: options.leases === false ? 0 : options.leases.renewIntervalMs,
    },
  );
}
