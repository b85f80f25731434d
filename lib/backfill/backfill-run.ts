import { randomBytes } from 'node:crypto';
import mongoose from 'mongoose';
import type { BackfillOptions, StoredBackfill } from '../interfaces/backfill.interface.js';

const { EJSON } = mongoose.mongo.BSON;

/** A chunk whose documents were handed to the reader: done once every event up to `lastSeq` is acknowledged. */
export interface EmittedChunk {
  /** The `_id` of the chunk's last document as read (the next chunk starts above it). */
  lastId: unknown;
  /** Documents the chunk read (those dropped for a change in its window included). */
  scanned: number;
  /** Of those, the documents handed to the reader as backfill events (not dropped). */
  delivered: number;
  /** The stream order number of its last event (or of the event before it, if it emitted none). */
  lastSeq: number;
  /** The scan ended with it. */
  last: boolean;
}

/**
 * One backfill run: which handlers it is for, how it reads, and how far it got. `after` and
 * `done` only move when a chunk is acknowledged (`acknowledge`), so what is stored never claims
 * a document that a crash could lose.
 */
export class BackfillRun {
  readonly handlers: ReadonlySet<string>;
  /** EJSON of the last acknowledged chunk's last `_id`. */
  after: string | undefined;
  done: number;
  /** Of `done`, the documents delivered to the handlers (the others were dropped by a chunk's window). */
  delivered: number;
  total: number | null;
  readonly startedAt: Date;
  /** Emitted chunks not acknowledged yet, oldest first. */
  private readonly emitted: EmittedChunk[] = [];
  /** The last chunk was acknowledged: nothing is left to read. */
  finished = false;
  /** For the rate: documents done and when, as this instance resumed the run. */
  readonly resumedAt = Date.now();
  readonly doneAtResume: number;
  /** The `backfill` field of its events: one frozen object for all of them. */
  readonly eventTag: Readonly<{ run: string }>;

  constructor(
    readonly id: string,
    handlers: Iterable<string>,
    readonly options: BackfillOptions,
    stored?: NonNullable<StoredBackfill['run']>,
  ) {
    this.handlers = new Set(handlers);
    this.after = stored?.after;
    this.done = stored?.done ?? 0;
    this.delivered = stored?.delivered ?? this.done;
    this.total = stored?.total ?? null;
    this.startedAt = stored ? new Date(stored.startedAt) : new Date();
    this.doneAtResume = this.done;
    this.eventTag = Object.freeze({ run: id });
  }

  static newId(): string {
    return randomBytes(6).toString('hex');
  }

  /** The `_id` the next scan starts above (the last acknowledged chunk's), undefined from the start. */
  get resumeAfter(): unknown {
    return this.after === undefined ? undefined : EJSON.parse(this.after, { relaxed: false });
  }

  /** A chunk's documents went to the reader. */
  chunkEmitted(chunk: EmittedChunk): void {
    this.emitted.push(chunk);
  }

  /** Every event up to `seq` was handled: the chunks that ended there are done. */
  acknowledge(seq: number): void {
    while (this.emitted.length > 0 && this.emitted[0].lastSeq <= seq) {
      const chunk = this.emitted.shift()!;
      this.after = EJSON.stringify(chunk.lastId, { relaxed: false });
      this.done += chunk.scanned;
      this.delivered += chunk.delivered;
      if (chunk.last) this.finished = true;
    }
  }

  /** A new cursor reads again from `after`: emitted chunks that were not acknowledged are read again. */
  forgetUnacknowledged(): void {
    this.emitted.length = 0;
  }

  stored(): NonNullable<StoredBackfill['run']> {
    return {
      id: this.id,
      handlers: [...this.handlers],
      ...(this.after !== undefined && { after: this.after }),
      done: this.done,
      delivered: this.delivered,
      total: this.total,
      startedAt: this.startedAt.toISOString(),
    };
  }
}
