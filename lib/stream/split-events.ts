import { messages } from '../change-stream.messages.js';
import { errorText } from '../common/errors.js';
import type { ChangeCursor, ChangeEvent } from '../common/change-event.js';

const BSON_OBJECT_TOO_LARGE = 10334;

/**
 * Why reopening cannot help, for the errors about events over 16 MB: BSONObjectTooLarge (10334,
 * the same event at every reopen), or a server that refused `$changeStreamSplitLargeEvent` at open.
 * Null for any other error.
 */
export function largeEventFailure(
  key: string,
  error: unknown,
  atOpen: boolean,
  splitLargeEvents: boolean,
): string | null {
  const { code } = (error ?? {}) as { code?: unknown };
  if (code === BSON_OBJECT_TOO_LARGE)
    return splitLargeEvents
      ? messages.eventTooLargeEvenSplit(key, errorText(error))
      : messages.eventTooLarge(key, errorText(error));
  if (atOpen && splitLargeEvents && errorText(error).includes('$changeStreamSplitLargeEvent'))
    return messages.splitUnsupported(key, errorText(error));
  return null;
}

/** What `$changeStreamSplitLargeEvent` adds to each fragment of an event over 16 MB. */
interface Fragment {
  _id: unknown;
  splitEvent?: { fragment: number; of: number };
}

/**
 * Joins the fragments `$changeStreamSplitLargeEvent` cuts an event into (consecutive, numbered
 * from 1, its top-level fields spread over them, each with its own resume token) back into one
 * event whose `_id` is the last fragment's token: a resume point past the whole event, never
 * inside it. While fragments are pending it hides the driver's token (mid-event, not a position).
 */
export class SplitEventCursor implements ChangeCursor {
  private fragments: ChangeEvent[] = [];

  constructor(
    private readonly inner: ChangeCursor,
    private readonly key: string,
  ) {}

  async tryNext(): Promise<ChangeEvent | null> {
    for (;;) {
      const change = await this.inner.tryNext();
      if (change === null) return null;
      const whole = this.join(change);
      if (whole) return whole;
    }
  }

  nextBuffered(): ChangeEvent | null {
    for (
      let change = this.inner.nextBuffered();
      change !== null;
      change = this.inner.nextBuffered()
    ) {
      const whole = this.join(change);
      if (whole) return whole;
    }
    return null;
  }

  whenOpen(): Promise<void> {
    return this.inner.whenOpen();
  }

  get buffered(): number | undefined {
    return this.inner.buffered;
  }

  get isOpen(): boolean {
    return this.inner.isOpen;
  }

  get startPosition() {
    return this.inner.startPosition;
  }

  get resumeToken(): unknown {
    return this.fragments.length > 0 ? undefined : this.inner.resumeToken;
  }

  get closed(): boolean {
    return this.inner.closed;
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** The whole event once its last fragment is in, else undefined (more to read). */
  private join(change: ChangeEvent): ChangeEvent | undefined {
    const split = (change as Fragment).splitEvent;
    const expected = this.fragments.length + 1;
    if (!split) {
      if (this.fragments.length > 0)
        throw new Error(
          messages.splitEventIncomplete(
            this.key,
            `an unsplit event after fragment ${expected - 1}`,
          ),
        );
      return change;
    }
    const of = (this.fragments[0] as Fragment | undefined)?.splitEvent?.of ?? split.of;
    if (split.fragment !== expected || split.of !== of) {
      throw new Error(
        messages.splitEventIncomplete(
          this.key,
          `fragment ${split.fragment} of ${split.of} where ${expected} of ${of} was due`,
        ),
      );
    }
    this.fragments.push(change);
    if (split.fragment < split.of) return undefined;
    const whole = Object.assign({}, ...this.fragments) as ChangeEvent & Fragment;
    delete whole.splitEvent;
    whole._id = change._id; // the last fragment's token: resuming after it starts at the next event
    this.fragments = [];
    return whole;
  }
}
