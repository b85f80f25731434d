import type { DeadLetter } from '../interfaces/dead-letter.interface.js';
import { ChangeDispatcher } from './change-dispatcher.js';
import type { ChangeHandler } from './change-handler.js';

/** One more call of the handler that failed on `letter`, with the stored event (a dead-letter replay). */
export function deadLetterCall(
  handler: ChangeHandler,
  letter: DeadLetter,
  consumer: string,
): () => Promise<unknown> {
  return () =>
    ChangeDispatcher.invokeOnce(handler, letter.change, {
      consumer,
      connectionName: letter.connectionName,
      database: letter.database,
      collection: letter.collection,
    });
}
