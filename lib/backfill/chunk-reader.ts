import type { Connection, mongo } from 'mongoose';

/** One chunk read: documents with `_id` above `after` (all when undefined), in `_id` order. */
export interface ChunkQuery {
  after: unknown;
  limit: number;
  filter?: Record<string, unknown>;
  projection?: Record<string, unknown>;
  /** Start a new server cursor even if this read continues the last one. */
  fresh?: boolean;
}

export type BackfillDocument = { _id: unknown } & Record<string, unknown>;

/** A chunk's documents, and the cluster time the server read them at (null when it gives none). */
export interface ChunkRead {
  docs: BackfillDocument[];
  /** The reply's `operationTime`: every write at or before it is in `docs`. */
  readAt: mongo.Timestamp | null;
}

/** How a backfill reads the collection: its chunks, and an estimate of its size. */
export interface ChunkReader {
  /**
   * `limit` documents (fewer only at the end). A read that continues the previous one (`after` is
   * the last `_id` it returned, not `fresh`) may return documents read as early as the first read
   * of that run of reads; any other read, no earlier than this call.
   */
  read(query: ChunkQuery): Promise<ChunkRead>;
  estimate(): Promise<number>;
  /** Releases what reads keep open (a server cursor). */
  close?(): Promise<void>;
}

/**
 * Reads chunks of a mongoose connection's collection from the primary, through one `find` cursor
 * sorted by `_id` that each chunk continues (its next `getMore`), so the server finds its place
 * once, not once per chunk; a query that does not continue the last one opens a new cursor.
 * A batch is read when it is asked for (the driver's buffer is empty by then), which is when
 * the chunk's window opens.
 */
export function connectionChunkReader(connection: Connection, collection: string): ChunkReader {
  const target = () => {
    const db = connection.db;
    if (!db) throw new Error(`mongoose connection "${connection.name}" is not connected`);
    return db.collection(collection);
  };
  let open: {
    cursor: mongo.FindCursor;
    session: mongo.ClientSession | undefined;
    lastId: unknown;
    query: string;
    /** Closed by another read or by `close`: a short read of it is no end of the scan. */
    killed: boolean;
  } | null = null;
  const close = async () => {
    const closing = open;
    open = null;
    if (closing) closing.killed = true;
    await closing?.cursor.close().catch(() => undefined);
    await closing?.session?.endSession().catch(() => undefined);
  };
  return {
    read: async ({ after, limit, filter, projection, fresh }) => {
      const query = JSON.stringify([filter ?? null, projection ?? null, limit]);
      if (fresh || !open || open.query !== query || open.lastId !== after) {
        await close();
        const range = after === undefined ? {} : { _id: { $gt: after } };
        const where = (filter ? { $and: [filter, range] } : range) as mongo.Filter<mongo.Document>;
        // A session of its own: the driver keeps the latest reply's operationTime on it.
        const session = supportsSessions(connection.getClient())
          ? connection.getClient().startSession()
          : undefined;
        const cursor = target()
          .find(where, {
            readPreference: 'primary',
            ...(session && { session }),
            ...(projection && { projection }),
          })
          .sort({ _id: 1 })
          .batchSize(limit);
        open = { cursor, session, lastId: after, query, killed: false };
      }
      const reading = open;
      const docs: BackfillDocument[] = [];
      while (docs.length < limit) {
        const next = await reading.cursor.next(); // a getMore once the buffer is empty
        if (next === null) break;
        docs.push(next as BackfillDocument);
        const room = limit - docs.length;
        if (room > 0)
          docs.push(...(reading.cursor.readBufferedDocuments(room) as BackfillDocument[]));
      }
      if (reading.killed) throw new ChunkReadInterrupted();
      const readAt = reading.session?.operationTime ?? null;
      if (docs.length < limit && open === reading) await close();
      else reading.lastId = docs[docs.length - 1]._id;
      return { docs, readAt };
    },
    estimate: () => target().estimatedDocumentCount(),
    close,
  };
}

/** A chunk's cursor was closed while it read (a reopen, a new run): its documents so far are no answer. */
export class ChunkReadInterrupted extends Error {
  constructor() {
    super('the backfill chunk cursor was closed while reading');
  }
}

/**
 * Whether the server takes sessions, tested as the driver does: an explicit session on a server
 * without them (mongo-java-server) fails every command.
 */
function supportsSessions(client: mongo.MongoClient): boolean {
  const description = (client as { topology?: { description?: TopologyFacts } }).topology
    ?.description;
  return description?.type === 'LoadBalanced' || description?.logicalSessionTimeoutMinutes != null;
}

type TopologyFacts = { type?: string; logicalSessionTimeoutMinutes?: number | null };
