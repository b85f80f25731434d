import type { mongo } from 'mongoose';
import { isInvalidStoredTokenError } from '../change-stream.errors.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { timeOf } from './stream-coverage.js';

/**
 * The streams whose records decide, with a stream's own, where it starts: the streams of the
 * other shape that serve (or served) its collections, after a switch of the `streams` mode or a
 * collection joining or leaving a database stream.
 */
export type ReplacedStreams =
  /** A database stream: each of its collections with the key of that collection's own stream. */
  | { collections: ReadonlyArray<{ collection: string; key: string }> }
  /**
   * A collection stream: its collection, the key of its database's stream, and its handlers
   * declared with `backfill` (the database stream did not run them).
   */
  | { collection: string; databaseKey: string; backfillHandlers?: readonly string[] };

/** A stored record under another stream's key (null: none, or one that cannot be read). */
export interface KeyedRecord {
  key: string;
  position: StreamPosition | null;
}

/** Where a stream that replaces others starts, and the key it came from. */
export interface ReplacedPosition {
  position: StreamPosition;
  from: string;
  /** How many of the replaced streams had a position, when none carried a readable time (else undefined). */
  unordered?: number;
}

/**
 * The oldest of the records of the streams a new stream replaces, as a cluster time
 * (`startAtOperationTime`, inclusive): a resume token belongs to the stream that produced it, a
 * cluster time means the same to every stream. A token whose time cannot be read (not a mongod
 * token) is used as it is, only when no position has a time. Null when none is stored.
 */
export function oldestOf(records: readonly KeyedRecord[]): ReplacedPosition | null {
  let oldest: { time: mongo.Timestamp; from: string } | null = null;
  let untimed: ReplacedPosition | null = null;
  let stored = 0;
  for (const { key, position } of records) {
    if (!position) continue;
    stored++;
    const time = timeOf(position);
    if (time === null)
      untimed ??= { position: { token: (position as { token: never }).token }, from: key };
    else if (!oldest || time.lessThan(oldest.time)) oldest = { time, from: key };
  }
  if (oldest) return { position: { operationTime: oldest.time }, from: oldest.from };
  return untimed && { ...untimed, unordered: stored };
}

/** The records under `keys`, in order; a malformed value under another stream's key is that stream's problem: it counts as none. */
export async function loadRecords(
  store: PositionStore,
  keys: readonly string[],
): Promise<KeyedRecord[]> {
  return Promise.all(
    keys.map(async (key) => {
      try {
        return { key, position: await store.load(key) };
      } catch (error) {
        if (isInvalidStoredTokenError(error)) return { key, position: null };
        throw error;
      }
    }),
  );
}
