import { messages } from '../change-stream.messages.js';
import { BackfillReporter } from '../backfill/backfill-reporter.js';
import type { StreamBackfill } from '../backfill/stream-backfill.js';

/**
 * A stream's backfills as its supervision sees them: the progress line while it is supervised,
 * the end of each lease term, and the actions of `ChangeStreamBackfill`.
 */
export class BackfillWiring {
  private readonly report: BackfillReporter;

  constructor(
    private readonly key: string,
    private readonly backfill: StreamBackfill | undefined,
  ) {
    this.report = new BackfillReporter(key, () => backfill?.status() ?? null);
  }

  start(): void {
    if (this.backfill) this.report.start();
  }

  stop(): void {
    this.report.stop();
  }

  termEnded(): void {
    this.backfill?.endTerm();
  }

  /** Runs `act` on the stream's backfills; throws `refused()` when it gives an error (this instance does not consume the stream). */
  act<T>(act: (backfill: StreamBackfill) => T, refused: () => Error | null): T {
    if (!this.backfill) throw new Error(messages.backfillNoHandler(this.key, undefined, []));
    const error = refused();
    if (error) throw error;
    return act(this.backfill);
  }
}
