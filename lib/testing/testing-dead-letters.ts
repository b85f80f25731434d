import { ChangeStreamRegistry } from '../change-stream.registry.js';
import { ChangeStreamDeadLetters } from '../dead-letter/change-stream-dead-letters.service.js';
import type { DeadLetter } from '../interfaces/dead-letter.interface.js';
import { deadLetterCall } from '../stream/dead-letter-call.js';
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
    super(stores, new ChangeStreamRegistry(streams.options.module));
  }

  /** The handler, called at once: the testing module runs no streams (no lease, no live events to order against). */
  protected override replayOf(letter: DeadLetter): (() => Promise<unknown>) | undefined {
    const handler = this.streams.handlerOf(letter.streamKey, letter.handler);
    return handler && deadLetterCall(handler, letter, this.streams.options.module.consumer);
  }
}
