import type { Connection, mongo } from 'mongoose';
import type { StreamPosition } from '../interfaces/resume-token-store.interface.js';

export type ChangeEvent = mongo.ChangeStreamDocument;

/** The part of a change stream a collection stream uses; `DriverChangeCursor` adapts the driver's. */
export interface ChangeCursor {
  /** The next event, or null after an empty batch. The first call opens the stream on the server. */
  tryNext(): Promise<ChangeEvent | null>;
  /** Resolves once the server accepted the stream (its `aggregate` answered); never rejects. */
  whenOpen(): Promise<void>;
  /** True once the server accepted the stream: an error after that is not about the start position. */
  readonly isOpen: boolean;
  /**
   * Where the stream started, as the server answered the open: its post-batch token, else its
   * `operationTime`. Null before the open, or when the server gave neither.
   */
  readonly startPosition: StreamPosition | null;
  /** The driver's cached token: the last event's, or the post-batch token of an empty batch. */
  readonly resumeToken: unknown;
  readonly closed: boolean;
  close(): Promise<void>;
}

export type CursorFactory = (pipeline: object[], options: mongo.ChangeStreamOptions) => ChangeCursor;

/** The driver's internal cursor: emits `init` with the aggregate's reply and knows where it would resume. */
interface DriverInnerCursor {
  once(event: 'init', listener: () => void): unknown;
  readonly resumeOptions?: { resumeAfter?: mongo.ResumeToken; startAfter?: mongo.ResumeToken; startAtOperationTime?: mongo.Timestamp };
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

  constructor(private readonly stream: mongo.ChangeStream) {
    this.opened = new Promise((resolve) => (this.markOpen = resolve));
    // Errors also surface through tryNext; this listener only keeps them from being unhandled.
    stream.on('error', () => undefined);
    const inner = (stream as unknown as { cursor?: DriverInnerCursor }).cursor;
    inner?.once('init', () => {
      this.position = positionOf(inner.resumeOptions);
      this.setOpen();
    });
  }

  tryNext(): Promise<ChangeEvent | null> {
    if (this.open) return this.stream.tryNext();
    // A driver without `init` still opened once a read succeeded.
    return this.stream.tryNext().then((change) => {
      this.setOpen();
      return change;
    });
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

  close(): Promise<void> {
    return this.stream.close();
  }

  private setOpen(): void {
    this.open = true;
    this.markOpen();
  }
}

function positionOf(options: DriverInnerCursor['resumeOptions']): StreamPosition | null {
  const token = options?.resumeAfter ?? options?.startAfter;
  if (token) return { token };
  return options?.startAtOperationTime ? { operationTime: options.startAtOperationTime } : null;
}

/** Opens change streams on a collection of a mongoose connection, through its own client. */
export function connectionCursorFactory(connection: Connection, collection: string): CursorFactory {
  return (pipeline, options) => {
    const db = connection.db;
    if (!db) throw new Error(`mongoose connection "${connection.name}" is not connected`);
    return new DriverChangeCursor(db.collection(collection).watch(pipeline, options));
  };
}
