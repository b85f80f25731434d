import type { mongo } from 'mongoose';
import type { ChangeCursor, ChangeEvent } from '../common/change-event.js';
import { documentKeyOf, idKey } from '../common/document-key.js';
import { clusterTimeOfToken } from '../position/resume-token-time.js';
import { isLifecycleEvent } from '../common/change-event.js';
import { backfillEvent } from './backfill-event.js';
import type { BackfillRun, EmittedChunk } from './backfill-run.js';
import type { ChunkReader } from './chunk-reader.js';
import {
  estimateBytes,
  MAX_PENDING_BYTES,
  MAX_PENDING_CHUNKS,
  MAX_PENDING_DOCUMENTS,
  MAX_SEGMENT_KEYS,
  pendingChunk,
  type PendingChunk,
} from './pending-chunk.js';
import { clusterTimeOf, DOCUMENT_EVENTS, keyOfFullDocument } from './window-event.js';

/** What a backfill cursor reads for: the run in progress (it may start or end while the cursor reads). */
export interface BackfillSource {
  readonly run: BackfillRun | null;
  readonly reader: ChunkReader;
  readonly ns: { db: string; coll: string };
  /** A chunk's documents were handed out (they follow in the queue). */
  chunkEmitted(run: BackfillRun, chunk: EmittedChunk): void;
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
    const chunk = pendingChunk(this.scanAfter, this.segmentSeen);
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
