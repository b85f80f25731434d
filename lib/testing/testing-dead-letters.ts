import { ChangeStreamRuntime } from '../change-stream.runtime.js';
import { ChangeStreamDeadLetters } from '../dead-letter/change-stream-dead-letters.service.js';
import type { DeadLetter } from '../interfaces/dead-letter.interface.js';
import type { ChangeHandler } from '../stream/change-handler.js';
import { InMemoryPositionStore } from '../memory/in-memory-position.store.js';
import type { TestingStreams } from './testing-streams.js';

/** `ChangeStreamDeadLetters` over the testing module's dead letters and handlers: list, replay and discard work as in production. */
export class TestingDeadLetters extends ChangeStreamDeadLetters {
  constructor(private readonly streams: TestingStreams) {
    const stores = {
      tokens: new InMemoryPositionStore(),
      deadLetters: streams.deadLetterStore,
      verify: async () => undefined,
      close: async () => undefined,
    };
    super(stores, streams.options.module, new ChangeStreamRuntime());
  }

  protected override findHandler(letter: DeadLetter): ChangeHandler | undefined {
    return this.streams.handlerOf(letter.streamKey, letter.handler);
  }
}
