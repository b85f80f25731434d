import mongoose, { type mongo } from 'mongoose';
import type { ChangeCursor, ChangeEvent } from '../stream/change-cursor.js';
import { documentKeyOf, idKey } from '../stream/document-key.js';
import { clusterTimeOfToken } from '../position/resume-token-time.js';
import { isLifecycleEvent } from '../stream/stream-plan.js';
import { backfillEvent } from './backfill-event.js';
import type { BackfillRun, EmittedChunk } from './backfill-run.js';
import type { BackfillDocument, ChunkReader } from './chunk-reader.js';

/** What a backfill cursor reads for: the run in progress (it may start or end while the cursor reads). */
export interface BackfillSource {
  readonly run: BackfillRun | null;
  readonly reader: ChunkReader;
  readonly ns: { db: string; coll: string };
  /** A chunk's documents were handed out (they follow in the queue). */
  chunkEmitted(run: BackfillRun, chunk: EmittedChunk): void;
}

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
interface PendingChunk {
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
function estimateBytes(docs: BackfillDocument[]): number {
  if (docs.length === 0) return 0;
  const samples = [docs[0], docs[docs.length >> 1], docs[docs.length - 1]];
  let sampled = 0;
  for (const doc of samples) sampled += mongoose.mongo.BSON.calculateObjectSize(doc);
  return Math.round((sampled / samples.length) * docs.length);
}

/** Events of one document: one without a document key still changed some document. */
const DOCUMENT_EVENTS = new Set(['insert', 'update', 'replace', 'delete']);

/** The key of an event's `fullDocument` (a server that puts something else in `documentKey`). */
function keyOfFullDocument(change: ChangeEvent): string | null {
  const doc = (change as { fullDocument?: { _id?: unknown } | null }).fullDocument;
  if (!doc || doc._id === undefined) return null;
  return documentKeyOf({ documentKey: { _id: doc._id } } as unknown as ChangeEvent);
}

/** An event's cluster time (its `clusterTime`, else its token's), null when neither tells. */
function clusterTimeOf(change: ChangeEvent): mongo.Timestamp | null {
  const time = (change as { clusterTime?: mongo.Timestamp }).clusterTime;
  return time ?? clusterTimeOfToken(change._id);
}

/**
 * A change stream cursor with a backfill woven in (DBLog's windows, without watermark writes).
 * A chunk's window opens when its find is issued. Where the server gave the find's cluster time
 * (`readAt`), it closes once the stream read past that time: an event with a later cluster time,
 * or a post-batch token at or past it (every change the chunk's copy reflects was read by then,
 * however far the stream lags). Otherwise it closes once every event of the first read
 * (getMore) issued after the find returned has been handed out; any event read in the window
 * removes its document from the chunk (the event is as new or newer). At the close the chunk's
 * remaining documents are handed out as backfill events, right there in stream order, so the
 * scheduler orders them per document like any event. A read is counted only when the inner
 * cursor holds nothing buffered (it is a real getMore); counting fewer reads only widens windows.
 */
export class BackfillCursor implements ChangeCursor {
  private readonly queue: ChangeEvent[] = [];
  private readonly pending: PendingChunk[] = [];
  /** Reads issued on the inner cursor. */
  private reads = 0;
  /** Events handed out: the scheduler numbers them `baseSeq + 1`, `+ 2`, … */
  private handedOut = 0;
  private finding = false;
  /** The `_id` after which the next find starts (the last document the previous find returned). */
  private scanAfter: unknown;
  private scanEnded = false;
  private failure: unknown = null;
  /**
   * Keys of the events read since the current scan segment began: a chunk continues the segment's
   * server cursor, which may have read its documents as early as the segment's first find (a
   * server that materializes a sorted result does), so its window opens there.
   */
  private segmentSeen = new Set<string>();
  private segmentOpen = false;
  /** The run this cursor reads for; another (a start, a cancel) resets the windows. */
  private runOf: BackfillRun | null = null;
  /** Closed (a reopen, the end of the term): a find still under way must not start another. */
  private isClosed = false;

  constructor(
    private readonly inner: ChangeCursor,
    private readonly source: BackfillSource,
    private readonly baseSeq: number,
    private readonly signal: AbortSignal,
  ) {}

  nextBuffered(): ChangeEvent | null {
    if (this.queue.length === 0 && this.pending[0]?.caughtUp) this.closeWindows();
    if (this.queue.length > 0) return this.handOut(this.queue.shift()!);
    const change = this.inner.nextBuffered();
    return change === null ? null : this.handOut(this.observe(change));
  }

  async tryNext(): Promise<ChangeEvent | null> {
    if (this.queue.length === 0 && this.pending[0]?.caughtUp) this.closeWindows();
    if (this.queue.length > 0) return this.handOut(this.queue.shift()!);
    if (this.failure !== null) throw this.failure;
    if ((this.inner.buffered ?? 0) === 0) {
      // Every event of every read so far was handed out: windows may close.
      this.follow();
      this.passed(clusterTimeOfToken(this.inner.resumeToken), true);
      this.closeWindows(true);
      if (this.queue.length > 0) return this.handOut(this.queue.shift()!);
      this.findAhead();
      this.reads++;
    }
    const change = await this.inner.tryNext();
    return change === null ? null : this.handOut(this.observe(change));
  }

  get buffered(): number {
    return this.queue.length + (this.inner.buffered ?? 0);
  }

  /** Chunks read (found) and not handed out yet; for tests. */
  get pendingChunks(): number {
    return this.pending.length;
  }

  whenOpen(): Promise<void> {
    return this.inner.whenOpen();
  }

  get isOpen(): boolean {
    return this.inner.isOpen;
  }

  get startPosition() {
    return this.inner.startPosition;
  }

  get resumeToken(): unknown {
    return this.inner.resumeToken;
  }

  get closed(): boolean {
    return this.inner.closed;
  }

  close(): Promise<void> {
    this.isClosed = true;
    void this.source.reader.close?.();
    return this.inner.close();
  }

  /** The stream read past `time` (an event after it, or with `orAt` a post-batch token at or after it). */
  private passed(time: mongo.Timestamp | null, orAt: boolean): void {
    if (time === null) return;
    for (const chunk of this.pending) {
      if (chunk.caughtUp || chunk.readAt === null) continue;
      const order = time.compare(chunk.readAt);
      if (order > 0 || (orAt && order === 0)) chunk.caughtUp = true;
    }
  }

  private handOut(change: ChangeEvent): ChangeEvent {
    this.handedOut++;
    return change;
  }

  /** Removes the event's document from every open window (all of them, for an event that ends the collection). */
  private observe(change: ChangeEvent): ChangeEvent {
    if (this.pending.length === 0 && !this.segmentOpen) return change;
    const key = documentKeyOf(change) ?? keyOfFullDocument(change);
    if (key === null) {
      if (isLifecycleEvent(change.operationType)) {
        for (const chunk of this.pending) chunk.void = true;
        this.endSegment();
      }
      // A document's event that names no document: which chunk document it outdates is unknown, so read them again.
      else if (DOCUMENT_EVENTS.has(change.operationType)) this.readAgain();
      return change;
    }
    if (this.segmentOpen) this.segmentSeen.add(key);
    let timed = false;
    for (const chunk of this.pending) {
      chunk.dropped.add(key);
      timed ||= chunk.readAt !== null;
    }
    // After this event: its window took its document out, so the chunk may follow it.
    if (timed) this.passed(clusterTimeOf(change), false);
    return change;
  }

  /** The run changed (started, cancelled, finished): start over from where it stands. */
  private follow(): void {
    const run = this.source.run;
    if (run === this.runOf) return;
    this.runOf = run;
    this.pending.length = 0;
    this.queue.length = 0;
    this.scanEnded = false;
    this.scanAfter = run?.resumeAfter;
    this.endSegment();
    void this.source.reader.close?.(); // a cursor of the previous run
  }

  /** Drops the pending chunks and scans again from the first one's start (their windows open anew). */
  private readAgain(): void {
    const [first] = this.pending;
    if (first) this.scanAfter = first.startAfter;
    this.scanEnded = false;
    this.pending.length = 0;
    this.endSegment();
  }

  /** The next chunk starts a new segment (a new server cursor, so a new window start). */
  private endSegment(): void {
    this.segmentOpen = false;
    this.segmentSeen = new Set();
  }

  /** Hands out the chunks whose windows closed (`readDone`: every event of every read so far was handed out). */
  private closeWindows(readDone = false): void {
    const run = this.runOf;
    while (run && this.pending[0]?.docs && this.closes(this.pending[0], readDone)) {
      const chunk = this.pending.shift()!;
      const delivered = chunk.void ? 0 : this.emit(chunk, run);
      this.source.chunkEmitted(run, {
        lastId: chunk.lastId,
        scanned: chunk.scanned,
        delivered,
        lastSeq: this.baseSeq + this.handedOut + this.queue.length,
        last: chunk.last,
      });
    }
  }

  /** A closed chunk's documents that no event in its window touched, as backfill events; returns how many. */
  private emit(chunk: PendingChunk, run: BackfillRun): number {
    const { dropped, segment } = chunk;
    // Keys are built only when some event could have touched a document (not in a quiet collection).
    const check = dropped.size > 0 || segment.size > 0;
    const tag = run.eventTag;
    let delivered = 0;
    for (const doc of chunk.docs!) {
      if (check) {
        const key = idKey(doc._id);
        if (dropped.has(key) || segment.has(key)) continue;
      }
      this.queue.push(backfillEvent(doc, this.source.ns, tag, run.handlers));
      delivered++;
    }
    return delivered;
  }

  private closes(chunk: PendingChunk, readDone: boolean): boolean {
    if (chunk.readAt !== null) return chunk.caughtUp;
    return readDone && chunk.closeAfter <= this.reads;
  }

  private pendingBytes(): number {
    let bytes = 0;
    for (const chunk of this.pending) bytes += chunk.bytes;
    return bytes;
  }

  private pendingLimit(run: BackfillRun): number {
    const limit = run.options.batchSize ?? 1000;
    return Math.max(MAX_PENDING_CHUNKS, Math.floor(MAX_PENDING_DOCUMENTS / limit));
  }

  /** Issues the next find if the run wants one and few chunks wait (one find at a time: each starts after the previous one's last `_id`). */
  private findAhead(): void {
    const run = this.runOf;
    if (
      !run ||
      run.finished ||
      this.isClosed ||
      // Not before the stream's aggregate answered: a chunk read earlier could miss a write made
      // between its snapshot and the stream's start (in neither the chunk nor the stream).
      !this.inner.isOpen ||
      this.finding ||
      this.scanEnded ||
      this.signal.aborted ||
      this.failure !== null ||
      this.pending.length >= this.pendingLimit(run) ||
      this.pendingBytes() >= MAX_PENDING_BYTES
    )
      return;
    const limit = run.options.batchSize ?? 1000;
    const chunk: PendingChunk = {
      docs: null,
      dropped: new Set(),
      segment: this.segmentSeen,
      void: false,
      closeAfter: Infinity,
      readAt: null,
      caughtUp: false,
      startAfter: this.scanAfter,
      lastId: this.scanAfter,
      scanned: 0,
      last: false,
      bytes: 0,
    };
    this.pending.push(chunk);
    this.finding = true;
    const { filter, projection } = run.options;
    if (this.segmentSeen.size > MAX_SEGMENT_KEYS) this.endSegment();
    const fresh = !this.segmentOpen;
    this.segmentOpen = true;
    const segment = this.segmentSeen;
    this.source.reader
      .read({ after: this.scanAfter, limit, filter, projection, fresh })
      .then(
        ({ docs, readAt }) => {
          if (this.isClosed || this.runOf !== run || !this.pending.includes(chunk)) return;
          chunk.docs = docs;
          chunk.segment = segment;
          chunk.scanned = docs.length;
          chunk.bytes = estimateBytes(docs);
          chunk.last = docs.length < limit;
          if (docs.length > 0) chunk.lastId = this.scanAfter = docs[docs.length - 1]._id;
          chunk.closeAfter = this.reads + 1; // the next read issued from now on
          chunk.readAt = readAt;
          this.scanEnded = chunk.last;
          if (chunk.last) this.endSegment();
        },
        (error: unknown) => {
          if (!this.isClosed && this.runOf === run) this.failure = error;
        },
      )
      .finally(() => {
        this.finding = false;
        if (!this.isClosed && this.runOf === run) this.findAhead();
      });
  }
}
