import { Inject, Injectable } from '@nestjs/common';
import { CHANGE_STREAM_RESOLVED_OPTIONS, CHANGE_STREAM_STORES } from '../change-stream.constants.js';
import type { ResolvedChangeStreamOptions } from '../options/module-options.js';
import { ChangeStreamRuntime } from '../change-stream.runtime.js';
import type { DeadLetter, DeadLetterPage, DeadLetterPageOptions } from '../interfaces/dead-letter.interface.js';
import type { ChangeStreamStores } from '../stores.factory.js';
import { ChangeDispatcher } from '../stream/change-dispatcher.js';
import type { ChangeEvent } from '../stream/change-cursor.js';
import type { ChangeHandler } from '../stream/change-handler.js';
import type { CollectionStream } from '../stream/collection-stream.js';

/** List, replay and discard the events handlers gave up on (`onHandlerFailure: 'dead-letter'`). */
@Injectable()
export class ChangeStreamDeadLetters {
  /** @internal Created by Nest's injector. */
  constructor(
    @Inject(CHANGE_STREAM_STORES) private readonly stores: ChangeStreamStores,
    @Inject(CHANGE_STREAM_RESOLVED_OPTIONS) private readonly options: ResolvedChangeStreamOptions,
    private readonly runtime: ChangeStreamRuntime,
  ) {}

  /** Every dead letter, oldest first (bounded by `deadLetterRetention`; for large stores see `page`). */
  list(): Promise<DeadLetter[]> {
    return this.stores.deadLetters.list();
  }

  /**
   * One page of dead letters, for stores too large to list at once: call again with the page's
   * `cursor` until it is null. With Redis each page is one `HSCAN` step (about `count` letters, in
   * no particular order across pages; a letter may come twice while the hash is resized, never
   * not at all if it stays stored).
   */
  async page(options: DeadLetterPageOptions = {}): Promise<DeadLetterPage> {
    const store = this.stores.deadLetters;
    if (store.page) return store.page(options);
    // A custom store without paging: pages over its list, by offset.
    const from = Number(options.cursor ?? 0);
    const count = Math.max(1, options.count ?? 100);
    const all = await store.list();
    return { letters: all.slice(from, from + count), cursor: from + count < all.length ? String(from + count) : null };
  }

  /** The dead letter with this id, or null. */
  get(id: string): Promise<DeadLetter | null> {
    return this.stores.deadLetters.get(id);
  }

  /**
   * Calls the handler that failed once more with the stored event; on success the dead
   * letter is removed, on failure it stays and the handler's error is thrown. The call runs
   * under the stream's lease and in the order of the event's document among the live events
   * (after those of that document already running or queued, before those read later); on an
   * instance that does not hold the stream it is refused with an error that names the holder.
   */
  async replay(id: string): Promise<void> {
    const letter = await this.get(id);
    if (!letter) throw new Error(`No dead letter with id "${id}".`);
    const handler = this.findHandler(letter);
    if (!handler) {
      throw new Error(`Dead letter "${id}": handler ${letter.handler} on ${letter.streamKey} is not registered in this application.`);
    }
    const invoke = () =>
      ChangeDispatcher.invokeOnce(handler, letter.change, {
        consumer: this.options.consumer,
        connectionName: letter.connectionName,
        database: letter.database,
        collection: letter.collection,
      });
    // Under the stream's lease, in the document's order among the live events (never beside a newer one).
    const stream = this.streamOf(letter);
    await (stream ? stream.replayInOrder(letter.change as ChangeEvent, invoke) : invoke());
    await this.stores.deadLetters.remove(id);
  }

  /** The running stream the letter came from (none in the testing module, which runs no streams). */
  private streamOf(letter: DeadLetter): CollectionStream | undefined {
    return this.runtime.streams.find((s) => s.key === letter.streamKey);
  }

  /** @internal The registered handler that failed on `letter`, if this application has it (the testing module looks elsewhere). */
  protected findHandler(letter: DeadLetter): ChangeHandler | undefined {
    const stream = this.runtime.streams.find((s) => s.key === letter.streamKey);
    return stream?.plan.handlers.find((h) => h.name === letter.handler);
  }

  /** Drops the dead letter for good; true when it existed. */
  discard(id: string): Promise<boolean> {
    return this.stores.deadLetters.remove(id);
  }
}
