import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { LeaseTerm } from './lease-term.js';
import type { LeavingPositions } from './leaving-positions.js';
import type { ReopeningReader } from './reopening-reader.js';
import { shutdownStep } from './shutdown-step.js';
import type { StreamState } from './stream-state.js';

/** What a stream's shutdown acts on (see `shutDownStream`). */
export interface StreamShutdownDeps {
  key: string;
  logger: Logger;
  checkpointer: Checkpointer;
  /** With leases on: this stream's lease on this instance. */
  lease?: StreamLeaseKeeper;
  state: StreamState;
  leftPositions: LeavingPositions;
  reader: Pick<ReopeningReader, 'closeCursor'>;
  /** The supervision, if it started: it ends once reading stopped. */
  running(): Promise<void> | undefined;
  /** The lease term running now, if any. */
  term(): LeaseTerm | undefined;
  /** Stops what watches the stream while it runs (stuck handlers, catch-up reports, backfills). */
  stopWatching(): void;
}

/**
 * Stops a stream whose reading was told to stop: lets in-flight handlers finish, saves the
 * position (or leaves it for the next holder), releases the lease, closes the cursor, all by
 * `deadline`; handlers still running then are aborted and their events are not acknowledged.
 */
export async function shutDownStream(
  deps: StreamShutdownDeps,
  deadline: number,
  timeoutMs: number,
): Promise<void> {
  const left = () => Math.max(0, deadline - Date.now());
  const step = (what: string, work: Promise<unknown>) =>
    shutdownStep(deps.logger, deps.key, what, work, left);
  const drained = await step('in-flight handlers to finish', stopReading(deps));
  if (!drained) {
    deps.logger.warn(messages.drainTimedOut(deps.key, timeoutMs));
    deps.term()?.scheduler.abortInFlight();
  }
  const { checkpointer, lease } = deps;
  // A standby (or an instance that lost its lease) has nothing of its own to save.
  const holding = !lease || lease.current !== null;
  const flushed = !holding || (await step('the final save of the position', checkpointer.flush()));
  const saved = holding && flushed && checkpointer.unsavedCount === 0;
  if (holding && !saved) {
    await deps.leftPositions.finalSaveFailed(
      checkpointer.positionWithBackfill,
      checkpointer.unsavedCount,
      deps.term()?.lease ?? null,
      checkpointer.savedThisTerm,
      step,
    );
  }
  // A lease lost before or during that flush: the position it reached may still have to be left.
  await deps.leftPositions.settle(step, timeoutMs);
  checkpointer.dispose();
  deps.stopWatching();
  // Handlers still running after the timeout: keep the lease until it expires (no more renewals),
  // or the next holder would handle their events while they still run.
  if (lease && drained) await step('the release of the lease', lease.release());
  else lease?.abandon();
  await step('the cursor to close', deps.reader.closeCursor());
  if (deps.state.baseState !== 'failed') deps.state.setBase('closed');
  // Failed or stopped before its position was read (a bad stored value, a store or oplog read that kept failing).
  const unread = !deps.term()?.positionLoaded;
  const positioned = checkpointer.position !== null;
  deps.logger.log(messages.streamClosed(deps.key, drained && saved, holding, positioned, unread));
}

/**
 * Resolves once reading stopped and nothing is in flight. A read the server never answers (a
 * hung getMore) must not hold that up: the cursor is closed at once, and a read still pending
 * once nothing is in flight is abandoned (the term is aborted: it can dispatch nothing more).
 */
function stopReading(deps: StreamShutdownDeps): Promise<void> {
  const running = deps.running();
  if (!running) return Promise.resolve();
  void deps.reader.closeCursor();
  const term = deps.term();
  return term ? Promise.race([running, term.scheduler.drain()]) : running;
}
