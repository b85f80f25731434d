import type { Connection, mongo } from 'mongoose';
import type { StreamPosition } from '../interfaces/position-store.interface.js';
import { warnIfDriverTooOld } from './driver-floor.js';
import type { StreamPlan } from './stream-plan.js';
import type { ChangeCursor, ChangeEvent } from '../common/change-event.js';

export type CursorFactory = (
  pipeline: object[],
  options: mongo.ChangeStreamOptions,
) => ChangeCursor;

/** The driver's internal cursor: emits `init` with the aggregate's reply, knows where it would resume and what it holds. */
interface DriverInnerCursor {
  once(event: 'init', listener: (reply?: { batchSize?: number }) => void): unknown;
  readonly resumeOptions?: {
    resumeAfter?: mongo.ResumeToken;
    startAfter?: mongo.ResumeToken;
    startAtOperationTime?: mongo.Timestamp;
  };
  bufferedCount?(): number;
  readBufferedDocuments?(count: number): ChangeEvent[];
  readonly documents?: DriverReply;
  readonly transform?: unknown;
}

/**
 * What `ChangeStream.tryNext` does with each document its cursor returns (mongodb 7 and late 6.x,
 * `lib/change_stream.js`; 6.x releases before NODE-4763's fix skip `_processChange` in `tryNext`,
 * so their own resume after a network error starts earlier: reading through it repeats fewer events).
 */
interface DriverStreamInternals {
  /** Replaced by the driver when it resumes after a network error. */
  readonly cursor?: DriverInnerCursor;
  /** Caches the event's token as the driver's resume point; throws if the event has none. */
  _processChange?(change: ChangeEvent): ChangeEvent;
  /** Set only with the client's `timeoutMS`, which `tryNext` refreshes per call. */
  readonly timeoutContext?: unknown;
}

/**
 * Adapts the driver's `ChangeStream`. Its first `tryNext()` runs the aggregate *and* a getMore,
 * then caches the first event's token over the aggregate's post-batch token, so the start
 * position is read at the inner cursor's `init` (what the driver itself would resume from),
 * before any event is processed.
 */
export class DriverChangeCursor implements ChangeCursor {
  private open = false;
  private position: StreamPosition | null = null;
  private readonly opened: Promise<void>;
  private markOpen!: () => void;
  private closing: Promise<void> | undefined;
  /** The first batch held events: the start position is the first event's cluster time, known once it is read. */
  private startAtFirstEvent = false;

  constructor(private readonly stream: mongo.ChangeStream) {
    this.opened = new Promise((resolve) => (this.markOpen = resolve));
    // Errors also surface through tryNext; this listener only keeps them from being unhandled.
    stream.on('error', () => undefined);
    const inner = (stream as unknown as { cursor?: DriverInnerCursor }).cursor;
    inner?.once('init', (reply) => {
      this.position = positionOf(inner.resumeOptions);
      if (this.position && 'operationTime' in this.position && (reply?.batchSize ?? 0) > 0) {
        // The driver's `startAtOperationTime` here is the reply's `operationTime`, later than these events may be.
        this.position = null;
        this.startAtFirstEvent = true;
        return; // open once that first event is read (the same `tryNext`: no more I/O)
      }
      this.setOpen();
    });
  }

  tryNext(): Promise<ChangeEvent | null> {
    if (this.open) return this.stream.tryNext();
    // A driver without `init` still opened once a read succeeded.
    return this.stream.tryNext().then((change) => {
      if (this.startAtFirstEvent) {
        this.startAtFirstEvent = false;
        this.position = change?.clusterTime ? { operationTime: change.clusterTime } : null;
      }
      this.setOpen();
      return change;
    });
  }

  /**
   * What `tryNext` does for a buffered document (take it, cache its token as the driver's resume
   * point, so the driver resumes from it after a network error), without its two async frames,
   * and then lets the driver's reply drop its parse of that document (see `forgetHandedOut`).
   * Null (use `tryNext`) whenever the driver's internals are not as expected.
   */
  nextBuffered(): ChangeEvent | null {
    const stream = this.stream as unknown as DriverStreamInternals;
    const inner = stream.cursor;
    if (
      !this.open ||
      this.stream.closed ||
      stream.timeoutContext != null ||
      typeof stream._processChange !== 'function'
    )
      return null;
    if (
      !inner?.bufferedCount ||
      !inner.readBufferedDocuments ||
      inner.transform != null ||
      inner.bufferedCount() === 0
    )
      return null;
    try {
      const [change] = inner.readBufferedDocuments(1);
      forgetHandedOut(inner.documents);
      return change == null ? null : stream._processChange(change);
    } catch (error) {
      // As `tryNext` does on an error it cannot resume from (a document that fails to decode, an event without `_id`).
      this.close().catch(() => undefined);
      throw error;
    }
  }

  get buffered(): number | undefined {
    const inner = (this.stream as unknown as DriverStreamInternals).cursor;
    return inner?.bufferedCount?.();
  }

  whenOpen(): Promise<void> {
    return this.opened;
  }

  get isOpen(): boolean {
    return this.open;
  }

  get startPosition(): StreamPosition | null {
    return this.position;
  }

  get resumeToken(): unknown {
    return this.stream.resumeToken;
  }

  get closed(): boolean {
    return this.stream.closed;
  }

  /** One close, however often called: a second `stream.close()` would end the session before the first one's killCursors. */
  close(): Promise<void> {
    return (this.closing ??= this.stream.close());
  }

  private setOpen(): void {
    this.open = true;
    this.markOpen();
  }
}

/**
 * The driver's server reply (mongodb 6.8+ `CursorResponse`): it parses its batch on demand and
 * caches each document it hands out, parsed, until the whole reply is used up.
 */
interface DriverReply {
  readonly iterated?: number;
  readonly _batch?: { readonly cache?: Record<number, unknown> } | null;
  readonly _encryptedBatch?: { readonly cache?: Record<number, unknown> } | null;
}

/**
 * Drops the driver's cached parse of the document just handed out: it is never read again, and
 * kept it costs about 2 KB per event until the reply is used up (tens of MB, and the scavenges
 * that copy them, while a large backlog drains).
 */
function forgetHandedOut(reply: DriverReply | undefined): void {
  const index = (reply?.iterated ?? 0) - 1;
  if (index < 0) return;
  const plain = reply?._batch?.cache;
  if (plain) plain[index] = undefined;
  const encrypted = reply?._encryptedBatch?.cache;
  if (encrypted) encrypted[index] = undefined;
}

function positionOf(options: DriverInnerCursor['resumeOptions']): StreamPosition | null {
  const token = options?.resumeAfter ?? options?.startAfter;
  if (token) return { token };
  return options?.startAtOperationTime ? { operationTime: options.startAtOperationTime } : null;
}

/** Opens a plan's change streams (on its collection, its database, or the deployment) through the mongoose connection's own client. */
export function connectionCursorFactory(
  connection: Connection,
  plan: Pick<StreamPlan, 'collection' | 'scope'>,
): CursorFactory {
  warnIfDriverTooOld();
  return (pipeline, options) => {
    // A deployment stream (database patterns): every database of the deployment, filtered by `ns.db`.
    if (plan.scope.kind === 'deployment')
      return new DriverChangeCursor(connection.getClient().watch(pipeline, options));
    const db = connection.db;
    if (!db) throw new Error(`mongoose connection "${connection.name}" is not connected`);
    const watched = plan.scope.kind === 'database' ? db : db.collection(plan.collection);
    return new DriverChangeCursor(watched.watch(pipeline, options));
  };
}
