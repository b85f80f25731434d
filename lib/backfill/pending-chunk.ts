import mongoose from 'mongoose';
import type { mongo } from 'mongoose';
import type { BackfillDocument } from './chunk-reader.js';

/** Chunks read ahead while earlier ones wait for their windows to close (at least). */
export const MAX_PENDING_CHUNKS = 4;

/**
 * Documents read ahead, for small chunks: a quiet stream closes windows once per idle getMore
 * (`maxAwaitTimeMS`), so all the chunks read meanwhile close together (16 of 1,000 documents ran
 * at 0.9× a bare find in the bench, 4 at 0.55×).
 */
export const MAX_PENDING_DOCUMENTS = 16_000;

/**
 * Bytes (BSON size, estimated from a few documents of each chunk) read ahead: past this, no
 * further chunk is read until one is handed out, so large documents do not multiply the
 * documents bound into hundreds of MB (16,000 documents of 10 KB are 160 MB). One chunk is
 * always read (its size is `batchSize`, the user's choice).
 */
export const MAX_PENDING_BYTES = 16 * 2 ** 20;

/** Keys remembered for one scan segment (one server cursor): past this, the next chunk starts a new one. */
export const MAX_SEGMENT_KEYS = 10_000;

/** A chunk between its find and the close of its window. */
export interface PendingChunk {
  /** In `_id` order; null while its find runs. */
  docs: BackfillDocument[] | null;
  /** Keys of the events read in its window: their documents are left out at the close. */
  readonly dropped: Set<string>;
  /** Keys of the events read in its scan segment before its find (its window may open there). */
  segment: ReadonlySet<string>;
  /** A drop, rename or invalidate was read in its window: none of its documents may be delivered. */
  void: boolean;
  /** Without `readAt`: its window closes once every event of this read (numbered from 1) was handed out. */
  closeAfter: number;
  /** The cluster time its find read at: its window closes once the stream read past it (`caughtUp`). */
  readAt: mongo.Timestamp | null;
  caughtUp: boolean;
  /** The `_id` its find starts after. */
  readonly startAfter: unknown;
  lastId: unknown;
  scanned: number;
  last: boolean;
  /** Estimated BSON size of `docs` (0 while its find runs). */
  bytes: number;
}

/** A chunk's size from its first, middle and last documents: a few µs, not a walk of every document. */
export function estimateBytes(docs: BackfillDocument[]): number {
  if (docs.length === 0) return 0;
  const samples = [docs[0], docs[docs.length >> 1], docs[docs.length - 1]];
  let sampled = 0;
  for (const doc of samples) sampled += mongoose.mongo.BSON.calculateObjectSize(doc);
  return Math.round((sampled / samples.length) * docs.length);
}

/** A chunk whose find is about to be issued, starting after `startAfter` in scan segment `segment`. */
export function pendingChunk(startAfter: unknown, segment: ReadonlySet<string>): PendingChunk {
  return {
    docs: null,
    dropped: new Set(),
    segment,
    void: false,
    closeAfter: Infinity,
    readAt: null,
    caughtUp: false,
    startAfter,
    lastId: startAfter,
    scanned: 0,
    last: false,
    bytes: 0,
  };
}
