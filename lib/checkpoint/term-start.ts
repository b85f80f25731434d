import type { Logger } from '@nestjs/common';
import type { StreamCoverage, StreamPosition } from '../interfaces/position-store.interface.js';
import type { CheckpointerContext } from './checkpointer-context.js';
import { AdoptedLeftPosition, readStartPosition, type StartPosition } from './start-position.js';
import { coverageForTerm } from './stream-coverage.js';

/**
 * Where each lease term of a stream starts (see `readStartPosition`), the left position it may
 * have adopted, and what a database stream's positions cover in that term.
 */
export class TermStart {
  /** What a database stream's positions cover in this lease term (set by `read`). */
  private coverage: StreamCoverage | undefined;
  /** Keys whose missing coverage was said (once each). */
  private readonly coverageWarned = new Set<string>();
  /** A left position this lease term resumed from (see `Checkpointer.load`). */
  readonly leftPosition: AdoptedLeftPosition;

  constructor(
    private readonly context: CheckpointerContext,
    private readonly logger: Logger,
  ) {
    this.leftPosition = new AdoptedLeftPosition(context.store, context.key);
  }

  /** Reads where this lease term starts; `remembered` is the previous term's newest position. */
  async read(leased: boolean, remembered: StreamPosition | null): Promise<StartPosition> {
    const { replaces } = this.context;
    const start = await readStartPosition(
      this.context.store,
      this.context.key,
      leased,
      remembered,
      this.logger,
      replaces,
      this.coverageWarned,
      this.context.fellOff,
    );
    this.coverage =
      replaces && 'collections' in replaces
        ? coverageForTerm(
            start.base,
            replaces.collections.map((c) => c.collection),
          )
        : undefined;
    return start;
  }

  /** A database stream's positions carry the collections they cover (see `StreamCoverage`). */
  withCoverage(position: StreamPosition): StreamPosition {
    return this.coverage ? { ...position, coverage: this.coverage } : position;
  }
}
