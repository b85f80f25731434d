import { Inject, Injectable } from '@nestjs/common';
import { CHANGE_STREAM_RESOLVED_OPTIONS, CHANGE_STREAM_STORES } from '../change-stream.constants.js';
import type { ResolvedChangeStreamOptions } from '../options/module-options.js';
import { ChangeStreamRuntime } from '../change-stream.runtime.js';
import type { DeadLetter } from '../interfaces/dead-letter.interface.js';
import type { ChangeStreamStores } from '../stores.factory.js';
import { ChangeDispatcher } from '../stream/change-dispatcher.js';
import type { ChangeHandler } from '../stream/change-handler.js';

/** List, replay and discard the events handlers gave up on (`onHandlerFailure: 'dead-letter'`). */
@Injectable()
export class ChangeStreamDeadLetters {
  /** @internal Created by Nest's injector. */
  constructor(
    @Inject(CHANGE_STREAM_STORES) private readonly stores: ChangeStreamStores,
    @Inject(CHANGE_STREAM_RESOLVED_OPTIONS) private readonly options: ResolvedChangeStreamOptions,
    private readonly runtime: ChangeStreamRuntime,
  ) {}

  /** Oldest first. */
  list(): Promise<DeadLetter[]> {
    return this.stores.deadLetters.list();
  }

  /** The dead letter with this id, or null. */
  get(id: string): Promise<DeadLetter | null> {
    return this.stores.deadLetters.get(id);
  }

  /**
   * Calls the handler that failed once more with the stored event; on success the dead
   * letter is removed, on failure it stays and the handler's error is thrown.
   */
  async replay(id: string): Promise<void> {
    const letter = await this.get(id);
    if (!letter) throw new Error(`No dead letter with id "${id}".`);
    const handler = this.findHandler(letter);
    if (!handler) {
      throw new Error(`Dead letter "${id}": handler ${letter.handler} on ${letter.streamKey} is not registered in this application.`);
    }
    await ChangeDispatcher.invokeOnce(handler, letter.change, {
      consumer: this.options.consumer,
      connectionName: letter.connectionName,
      database: letter.database,
      collection: letter.collection,
    });
    await this.stores.deadLetters.remove(id);
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
