import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type {
  BackfillOptions,
  BackfillStatus,
  StoredBackfill,
} from '../interfaces/backfill.interface.js';
import type { ChangeCursor } from '../common/change-event.js';
import type { OnChangeOptions } from '../interfaces/on-change-options.interface.js';
import { BackfillCursor, type BackfillSource } from './backfill-cursor.js';
import { BackfillRun, type EmittedChunk } from './backfill-run.js';
import type { ChunkReader } from './chunk-reader.js';

/** A handler of the stream as its backfills see it: `ClassName.methodName` and its options (`backfill`). */
export interface BackfillHandler {
  name: string;
  options: Pick<OnChangeOptions, 'backfill'>;
}

export interface StreamBackfillDeps {
  key: string;
  ns: { db: string; coll: string };
  handlers: readonly BackfillHandler[];
  reader: ChunkReader;
  /** Ask for a save soon (progress to store that no acknowledgement brings). */
  requestSave(): void;
  /** Documents covered by acknowledged chunks. */
  onDone?(documents: number): void;
}

/** The backfill options a handler asked for (`backfill: true` is all defaults). */
function optionsOf(handler: BackfillHandler): BackfillOptions {
  const { backfill } = handler.options;
  return typeof backfill === 'object' ? backfill : {};
}

/**
 * A stream's backfills: which handlers are owed one (those declared with `backfill` that never
 * completed one), the run in progress (one at a time; handlers with the same options share a
 * run), and the record stored with the position. Only the holder of the stream runs one: each
 * lease term starts from the stored record (`beginTerm`).
 */
export class StreamBackfill implements BackfillSource {
  private readonly logger = new Logger('ChangeStreamBackfill');
  private completed = new Set<string>();
  private current: BackfillRun | null = null;
  private waiting: string[][] = [];
  /** A lease term began on this instance: it owns the record until the term ends. */
  private holding = false;

  constructor(private readonly deps: StreamBackfillDeps) {}

  get run(): BackfillRun | null {
    return this.current;
  }

  get reader(): ChunkReader {
    return this.deps.reader;
  }

  get ns(): { db: string; coll: string } {
    return this.deps.ns;
  }

  /** Handlers declared with `backfill`. */
  get asking(): string[] {
    return this.deps.handlers.filter((h) => h.options.backfill).map((h) => h.name);
  }

  /**
   * A lease term read the stored record: resume its run (for the handlers still declared), and
   * owe a run to every declared handler that never completed one (all of them on a new stream).
   */
  beginTerm(stored: StoredBackfill | undefined): void {
    const asking = new Set(this.asking);
    this.completed = new Set(stored?.completed ?? []);
    this.current = null;
    const resumed = stored?.run?.handlers.filter((h) => asking.has(h)) ?? [];
    if (stored?.run && resumed.length > 0) {
      this.current = new BackfillRun(
        stored.run.id,
        resumed,
        this.optionsFor(resumed[0]),
        stored.run,
      );
      this.logger.log(messages.backfillStarted(this.deps.key, stored.run.id, resumed, true));
    }
    this.waiting = groups(
      [...asking].filter((h) => !this.completed.has(h) && !resumed.includes(h)),
      (h) => JSON.stringify(this.optionsFor(h)),
    );
    this.holding = true;
    if (!this.current) this.startNext();
  }

  /** The lease term ended: another instance may own the record now. */
  endTerm(): void {
    this.holding = false;
  }

  /** A backfill is in progress (the cursor then opens with a short `maxAwaitTimeMS`). */
  get active(): boolean {
    return this.current !== null;
  }

  /** The cursor a stream reads through: `baseSeq` is the number of events its lease term dispatched before it. */
  wrap(
    cursor: ChangeCursor,
    baseSeq: number,
    acknowledgedSeq: number,
    signal: AbortSignal,
  ): ChangeCursor {
    this.current?.acknowledge(acknowledgedSeq);
    this.current?.forgetUnacknowledged();
    return new BackfillCursor(cursor, this, baseSeq, signal);
  }

  chunkEmitted(run: BackfillRun, chunk: EmittedChunk): void {
    run.chunkEmitted(chunk);
    this.deps.requestSave();
  }

  /**
   * The record to store with the position of event `seq` (every event up to it handled): chunks
   * that ended there count as done; a run whose last chunk is done completes its handlers.
   * Undefined while this instance does not hold the stream (the loaded record is kept).
   */
  recordAt(seq: number): StoredBackfill | undefined {
    if (!this.holding) return undefined;
    const run = this.current;
    if (run) {
      const before = run.done;
      run.acknowledge(seq);
      if (run.done > before) this.deps.onDone?.(run.done - before);
      if (run.finished) {
        run.handlers.forEach((h) => this.completed.add(h));
        this.logger.log(messages.backfillFinished(this.deps.key, run.id, run.delivered, run.done));
        this.current = null;
        this.startNext();
      }
    }
    return {
      completed: [...this.completed],
      ...(this.current && { run: this.current.stored() }),
    };
  }

  /** Starts a run for `handlers` (they must be declared with `backfill`); throws while one runs. */
  start(handlers: string[]): BackfillRun {
    if (this.current) throw new Error(messages.backfillRunning(this.deps.key, this.current.id));
    this.waiting = [
      handlers,
      ...this.waiting.map((g) => g.filter((h) => !handlers.includes(h))),
    ].filter((g) => g.length > 0);
    this.startNext();
    return this.current!;
  }

  /** Ends the run in progress; its handlers count as completed (so it does not start again on its own). */
  cancel(): BackfillRun | null {
    const run = this.current;
    if (!run) return null;
    run.handlers.forEach((h) => this.completed.add(h));
    this.current = null;
    this.logger.log(messages.backfillCancelled(this.deps.key, run.id, run.done));
    this.startNext();
    this.deps.requestSave();
    return run;
  }

  status(now = Date.now()): BackfillStatus | null {
    const run = this.holding ? this.current : null;
    if (!run) return null;
    const elapsed = (now - run.resumedAt) / 1000;
    const covered = run.done - run.doneAtResume;
    const rate = elapsed >= 1 && covered > 0 ? covered / elapsed : null;
    const left = run.total === null ? null : Math.max(0, run.total - run.done);
    return {
      run: run.id,
      handlers: [...run.handlers],
      done: run.done,
      total: run.total,
      rate,
      etaMs: rate === null || left === null ? null : Math.round((left / rate) * 1000),
      startedAt: run.startedAt,
    };
  }

  private optionsFor(name: string): BackfillOptions {
    const handler = this.deps.handlers.find((h) => h.name === name);
    return handler ? optionsOf(handler) : {};
  }

  private startNext(): void {
    const next = this.waiting.shift();
    if (!next) return;
    const run = new BackfillRun(BackfillRun.newId(), next, this.optionsFor(next[0]));
    this.current = run;
    this.logger.log(messages.backfillStarted(this.deps.key, run.id, next, false));
    this.deps.reader.estimate().then(
      (total) => (run.total ??= total),
      () => undefined, // only an estimate
    );
    this.deps.requestSave();
  }
}

function groups<T>(items: T[], keyOf: (item: T) => string): T[][] {
  const byKey = new Map<string, T[]>();
  for (const item of items) byKey.set(keyOf(item), [...(byKey.get(keyOf(item)) ?? []), item]);
  return [...byKey.values()];
}
