import type { Connection, mongo } from 'mongoose';

/** One chunk read: documents with `_id` above `after` (all when undefined), in `_id` order. */
export interface ChunkQuery {
  after: unknown;
  limit: number;
  filter?: Record<string, unknown>;
  projection?: Record<string, unknown>;
}

export type BackfillDocument = { _id: unknown } & Record<string, unknown>;

/** How a backfill reads the collection: its chunks, and an estimate of its size. */
export interface ChunkReader {
  read(query: ChunkQuery): Promise<BackfillDocument[]>;
  estimate(): Promise<number>;
}

/** Reads chunks of a mongoose connection's collection, from the primary (the stream's own history is the primary's). */
export function connectionChunkReader(connection: Connection, collection: string): ChunkReader {
  const target = () => {
    const db = connection.db;
    if (!db) throw new Error(`mongoose connection "${connection.name}" is not connected`);
    return db.collection(collection);
  };
  return {
    read: ({ after, limit, filter, projection }) => {
      const range = after === undefined ? {} : { _id: { $gt: after } };
      const query = (filter ? { $and: [filter, range] } : range) as mongo.Filter<mongo.Document>;
      return target()
        .find(query, { readPreference: 'primary', ...(projection && { projection }) })
        .sort({ _id: 1 })
        .limit(limit)
        .toArray() as Promise<BackfillDocument[]>;
    },
    estimate: () => target().estimatedDocumentCount(),
  };
}
