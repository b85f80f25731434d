import type { mongo } from 'mongoose';
import { isInvalidStoredTokenError } from '../change-stream.errors.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { clusterTimeOfToken } from '../position/resume-token-time.js';

/** Where a stream that replaces others starts, and the key it came from. */
export interface ReplacedPosition {
  position: StreamPosition;
  from: string;
  /** How many of the replaced streams had a position, when none carried a readable time (else undefined). */
  unordered?: number;
}

/**
 * The oldest stored position of the streams a new stream replaces (a database stream: its
 * collections' streams; a collection stream: its database stream), as a cluster time
 * (`startAtOperationTime`, inclusive): a resume token belongs to the stream that produced it, a
 * cluster time means the same to every stream. A token whose time cannot be read (not a mongod
 * token) is used as it is, only when no position has a time. Null when none is stored.
 */
export async function oldestReplacedPosition(
  store: PositionStore,
  keys: readonly string[],
): Promise<ReplacedPosition | null> {
  let oldest: { time: mongo.Timestamp; from: string } | null = null;
  let untimed: ReplacedPosition | null = null;
  let stored = 0;
  for (const key of keys) {
    const position = await loadValid(store, key);
    if (!position) continue;
    stored++;
    const time = 'token' in position ? clusterTimeOfToken(position.token) : position.operationTime;
    if (time === null)
      untimed ??= { position: { token: (position as { token: never }).token }, from: key };
    else if (!oldest || time.lessThan(oldest.time)) oldest = { time, from: key };
  }
  if (oldest) return { position: { operationTime: oldest.time }, from: oldest.from };
  return untimed && { ...untimed, unordered: stored };
}

/** A malformed value under another stream's key is that stream's problem: it is skipped here. */
async function loadValid(store: PositionStore, key: string): Promise<StreamPosition | null> {
  try {
    return await store.load(key);
  } catch (error) {
    if (isInvalidStoredTokenError(error)) return null;
    throw error;
  }
}
