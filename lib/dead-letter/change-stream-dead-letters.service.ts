import { Inject, Injectable } from '@nestjs/common';
import { CHANGE_STREAM_STORES } from '../change-stream.constants.js';
import { ChangeStreamRegistry } from '../change-stream.registry.js';
import type {
  DeadLetter,
  DeadLetterPage,
  DeadLetterPageOptions,
} from '../interfaces/dead-letter.interface.js';
import type { ChangeStreamStores } from '../stores.factory.js';

/** List, replay and discard the events handlers gave up on (`onHandlerFailure: 'dead-letter'`). */
@Injectable()
export class ChangeStreamDeadLetters {
  /** @internal Created by Nest's injector. */
  constructor(
    @Inject(CHANGE_STREAM_STORES) private readonly stores: ChangeStreamStores,
    private readonly registry: ChangeStreamRegistry,
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
    return {
      letters: all.slice(from, from + count),
      cursor: from + count < all.length ? String(from + count) : null,
    };
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
    const replay = this.replayOf(letter);
    if (!replay) {
      throw new Error(
        `Dead letter "${id}": handler ${letter.handler} on ${letter.streamKey} is not registered in this application.`,
      );
    }
    await replay();
    await this.stores.deadLetters.remove(id);
  }

  /**
   * @internal The call of the registered handler that failed on `letter`, under its stream's lease and
   * in its document's order; undefined if this application has no such handler (the testing module looks elsewhere).
   */
  protected replayOf(letter: DeadLetter): (() => Promise<unknown>) | undefined {
    return this.registry.replayOf(letter);
  }

  /** Drops the dead letter for good; true when it existed. */
  discard(id: string): Promise<boolean> {
    return this.stores.deadLetters.remove(id);
  }
}
