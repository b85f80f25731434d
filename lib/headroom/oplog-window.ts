import type { mongo } from 'mongoose';
import { messages } from '../change-stream.messages.js';

/** Error codes of a server that refuses to show its oplog (not a passing failure). */
const UNAUTHORIZED = 13;
const ILLEGAL_OPERATION = 20;
/** CommandNotFound, CommandNotSupported, AtlasError (a shared tier's "not allowed"). */
const OTHER_REFUSALS = new Set([59, 115, 8000]);
/** Bounds one sample's queries: they read one entry at either end of a capped collection by natural order. */
const OPLOG_QUERY_MAX_TIME_MS = 5000;

/** The part of `local.oplog.rs` the sampler reads; `oplogOf` adapts a driver client. */
export interface OplogCollection {
  findOne(
    filter: object,
    options: { sort: { $natural: 1 | -1 }; projection: { ts: 1; _id: 0 }; maxTimeMS: number },
  ): Promise<{ ts?: unknown } | null>;
}

/** The oplog's first and last entry times, or why they cannot be read. */
export type OplogWindowReading =
  | { readonly oldest: mongo.Timestamp; readonly newest: mongo.Timestamp }
  | {
      /** Why the oplog cannot be read (a sentence for status and the log). */
      readonly unknown: string;
      /** The server refuses (privilege, mongos, no oplog): said once, asked again each interval all the same. */
      readonly refused: boolean;
    };

/** `local.oplog.rs` of the node `client` reads from (its read preference), as `rs.printReplicationInfo()` reads it. */
export function oplogOf(client: mongo.MongoClient): OplogCollection {
  const oplog = client.db('local').collection('oplog.rs');
  return { findOne: (filter, options) => oplog.findOne<{ ts?: unknown }>(filter, options) };
}

/**
 * The first and the last entry of the oplog by natural (insertion) order, projected to `ts`: two
 * cheap reads at the ends of a capped collection. An empty or missing collection (not a replica set
 * member) and a refusal (Unauthorized, `mongos`) are reported as unknown, never thrown.
 */
export async function readOplogWindow(oplog: OplogCollection): Promise<OplogWindowReading> {
  const at = (direction: 1 | -1) =>
    oplog.findOne(
      {},
      {
        sort: { $natural: direction },
        projection: { ts: 1, _id: 0 },
        maxTimeMS: OPLOG_QUERY_MAX_TIME_MS,
      },
    );
  let first: { ts?: unknown } | null;
  let last: { ts?: unknown } | null;
  try {
    [first, last] = await Promise.all([at(1), at(-1)]);
  } catch (error) {
    return refusalOf(error);
  }
  if (!first || !last || !isTimestamp(first.ts) || !isTimestamp(last.ts))
    return { unknown: messages.oplogMissing(), refused: true };
  return { oldest: first.ts, newest: last.ts };
}

function refusalOf(error: unknown): OplogWindowReading {
  const { code, message } = error as { code?: unknown; message?: string };
  const detail = message ?? String(error);
  if (code === UNAUTHORIZED) return { unknown: messages.oplogUnauthorized(detail), refused: true };
  if (code === ILLEGAL_OPERATION || /mongos/i.test(detail))
    return { unknown: messages.oplogThroughMongos(detail), refused: true };
  if (typeof code === 'number' && OTHER_REFUSALS.has(code))
    return { unknown: messages.oplogRefused(detail), refused: true };
  // A network error, a timeout, a primary stepping down: the next interval asks again.
  return { unknown: messages.oplogUnreadable(detail), refused: false };
}

function isTimestamp(value: unknown): value is mongo.Timestamp {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { _bsontype?: unknown })._bsontype === 'Timestamp'
  );
}

/** The part of `local.oplog.rs` a database stream's start reads: its first entry by natural order. */
export interface OplogStart {
  findOne(
    filter: object,
    options: {
      sort: { $natural: 1 };
      projection: { ts: 1; op: 1; 'o.msg': 1; _id: 0 };
      maxTimeMS: number;
    },
  ): Promise<{ ts?: unknown; op?: unknown; o?: { msg?: unknown } } | null>;
}

/**
 * `local.oplog.rs` as `OplogStart`, read with `readPreference`: the one the stream's own database
 * handle reads with (it may differ from the client's), so both go to the same kind of member. With
 * a secondary read preference they may still be different members, whose oplogs differ.
 */
export function oplogStartOf(
  client: mongo.MongoClient,
  readPreference?: mongo.ReadPreference,
): OplogStart {
  const oplog = client.db('local').collection('oplog.rs');
  return {
    findOne: (filter, options) =>
      oplog.findOne<{ ts?: unknown; op?: unknown; o?: { msg?: unknown } }>(filter, {
        ...options,
        ...(readPreference && { readPreference }),
      }),
  };
}

/** The oplog's oldest entry could not be read at a database stream's start (not a refusal): the start is retried with backoff. */
export class OplogStartUnreadableError extends Error {}

/**
 * The time of the oplog's oldest entry now, for where a database stream starts (one read of its
 * first entry, the privilege `readOplogWindow` needs). Null when nothing can have fallen off it
 * (its first entry is the replica set's "initiating set": nothing was written before, and mongod
 * starts a stream from before it there), when the oplog is empty or missing, and when the server
 * refuses to show it (as `readOplogWindow` judges a refusal: it will not be shown on a retry
 * either). Any other failure, and no answer within the query's own bound, throws
 * `OplogStartUnreadableError`: a passing failure must not make the start hold the whole stream
 * back to a position that fell off (the stream's policy would then decide for every collection).
 */
export async function readOldestOplogEntry(oplog: OplogStart): Promise<mongo.Timestamp | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${OPLOG_QUERY_MAX_TIME_MS} ms`)),
      OPLOG_QUERY_MAX_TIME_MS,
    );
  });
  let first: { ts?: unknown; op?: unknown; o?: { msg?: unknown } } | null;
  try {
    first = await Promise.race([
      oplog.findOne(
        {},
        {
          sort: { $natural: 1 },
          projection: { ts: 1, op: 1, 'o.msg': 1, _id: 0 },
          maxTimeMS: OPLOG_QUERY_MAX_TIME_MS,
        },
      ),
      late,
    ]);
  } catch (error) {
    const reading = refusalOf(error);
    if ('unknown' in reading && reading.refused) return null;
    throw new OplogStartUnreadableError(
      messages.oplogStartUnreadable((error as { message?: string })?.message ?? String(error)),
    );
  } finally {
    clearTimeout(timer);
  }
  if (!first || !isTimestamp(first.ts)) return null;
  return first.op === 'n' && first.o?.msg === 'initiating set' ? null : first.ts;
}
