/** Shutdown: draining and the final save. */
export const shutdownMessages = {
  finalSaveFailed: (key: string, unsaved: number, restoreCommand: string | null) =>
    `Stream ${key}: the final position could not be stored (the save failed or the shutdown timeout ran out). If the store still holds its stored position, up to ${unsaved} handled event(s) after it will be delivered again on the next start${restoreCommand ? `; if it lost it (Redis restarted without persistence), the next start begins from now and skips everything after it, unless the position this instance reached is restored first: ${restoreCommand}` : ''}.`,
  shutdownWaiting: (key: string, what: string, leftMs: number) =>
    `Stream ${key}: shutdown is waiting for ${what} (${leftMs} ms left of shutdownTimeoutMs).`,
  handlerFailedDuringShutdown: (handler: string, key: string, eventId: string, error: string) =>
    `Handler ${handler} failed on ${eventId} of ${key} during shutdown (${error}); the event is not acknowledged and will be delivered again on the next start.`,
  drainTimedOut: (key: string, timeoutMs: number) =>
    `Stream ${key}: in-flight handlers did not finish within ${timeoutMs} ms (shutdownTimeoutMs); their context.signal was aborted, and their events are not acknowledged: they come again once this instance's lease expires (leases.ttlMs after its last renewal), on whichever instance takes the stream (without leases: on the next start).`,
  shutdownHooksOff: () =>
    'No SIGTERM handler is installed: call app.enableShutdownHooks() in main.ts, or a SIGTERM kills the process without draining the streams (their last events are then delivered again).',
  streamClosed: (
    key: string,
    saved: boolean,
    holding: boolean,
    positioned = true,
    unread = false,
  ) =>
    `Stream ${key} ${!holding ? 'closed (it was on standby here)' : unread ? 'closed before it read its stored position; what the store holds stays as it is' : !positioned ? 'closed; it has no position yet (no event handled, and the server gave no start position)' : saved ? 'drained and closed; its position is stored' : 'closed'}.`,
};
