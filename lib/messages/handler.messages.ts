/** Handler failures, retries and dead letters. */
export const handlerMessages = {
  handlerStuck: (
    handlers: string[],
    key: string,
    eventId: string,
    ms: number,
    action: 'warn' | 'abort',
  ) =>
    `Handler ${handlers.join(', ') || '(none)'} has been running for ${Math.round(ms / 1000)} s on ${eventId} of ${key}` +
    (action === 'abort'
      ? '; its context.signal was aborted.'
      : '; the stream is degraded until it finishes.'),
  handlerFailed: (handler: string, key: string, eventId: string, attempts: number, error: string) =>
    `Handler ${handler} failed on ${eventId} of ${key} after ${attempts} attempt(s): ${error}. ` +
    `The stream is stopped before this event; it will be delivered again after a restart. To get past an event that can never ` +
    `succeed, use onFailure: 'dead-letter' or a callback for this handler.`,
  handlerAttemptFailed: (
    handler: string,
    eventId: string,
    attempt: number,
    delayMs: number,
    error: string,
  ) =>
    `Handler ${handler} threw on ${eventId} (attempt ${attempt}: ${error}); retrying in ${delayMs} ms.`,
  deadLettersDropped: (ids: string[], limit: string) =>
    `Dropped ${ids.length} dead letter(s), the oldest, to keep the store within deadLetterRetention (${limit}): ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', …' : ''}. ` +
    `Their events are gone for good; replay or discard dead letters sooner, or raise the limit.`,
  replayRefused: (key: string, state: string, holder: string | null) =>
    `Dead letter replay refused: this instance is not consuming stream ${key} (${holder ? `it is held by ${holder}` : `state ${state}`}). ` +
    `A replay runs under the stream's lease and in its document's order: replay it on ${holder ?? 'the instance that holds the stream'}, or once this one holds it.`,
  deadLettered: (handler: string, key: string, eventId: string, id: string) =>
    `Handler ${handler} gave up on ${eventId} of ${key}: stored as dead letter ${id}; the stream goes on.`,
  deadLetterSaveFailed: (key: string, error: string, delayMs: number) =>
    `Storing a dead letter of ${key} failed (${error}); retrying in ${delayMs} ms. The stream waits: the event is not acknowledged until it is recorded.`,
  failureCallbackThrew: (handler: string, eventId: string, error: string) =>
    `The onFailure callback for ${handler} threw on ${eventId} (${error}); the stream stops before this event.`,
  batchBisected: (handler: string, batch: string, firstHalf: number, error: string) =>
    `${handler} failed on ${batch} after its retries (${error}); calling it with the first ${firstHalf} and the rest apart, to find the failing events.`,
};
