import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import {
  type LeftPosition,
  leaveOrphanPosition,
  orphanStore,
  reportOrphanNotLeft,
  restoreCommand,
} from '../redis/left-position.js';

/** Waits for one shutdown step within what is left of the shutdown; true when it settled in time. */
export type ShutdownStep = (what: string, work: Promise<unknown>) => Promise<boolean>;

/**
 * One stream's positions left for its next holder when the store lost the stream's data (see
 * `PositionStore.leaveOrphan`): after a lost lease, after a final save that failed, and the
 * look-up of a position another instance left.
 */
export class LeavingPositions {
  /** The store's recovery methods for lost data, if it has all three. */
  private readonly store: ReturnType<typeof orphanStore>;
  /** Positions being left after a lost lease: shutdown waits for them. */
  private readonly leaving = new Map<Promise<void>, LeftPosition>();

  constructor(
    private readonly key: string,
    store: PositionStore | undefined,
    /** Aborted at shutdown: the leaving makes one last attempt. */
    private readonly stopping: AbortSignal,
    private readonly logger: Logger,
  ) {
    this.store = orphanStore(store);
  }

  /** The store can keep and return left positions. */
  get supported(): boolean {
    return this.store !== undefined;
  }

  /** A position another instance left, if any (rejects when the store is away). */
  async find(): Promise<StreamPosition | null> {
    return this.store ? this.store.loadOrphan(this.key) : null;
  }

  /** After losing `lease` at `position`: leaves it (in the background, retried) in case the store lost its data. */
  leave(position: StreamPosition, lease: StreamLease, saved: boolean): void {
    if (!this.store) return;
    const left: LeftPosition = { position, lease, saved };
    const task = leaveOrphanPosition(this.store, this.key, left, this.stopping, this.logger);
    this.leaving.set(task, left);
    void task.finally(() => this.leaving.delete(task));
  }

  /** At shutdown: waits for the positions still being left, and logs those that could not be in time. */
  async settle(step: ShutdownStep, timeoutMs: number): Promise<void> {
    if (
      !(await step('the position to be left for the next holder', Promise.all(this.leaving.keys())))
    ) {
      for (const pending of this.leaving.values())
        reportOrphanNotLeft(
          this.key,
          pending,
          `no answer within shutdownTimeoutMs (${timeoutMs} ms)`,
          this.logger,
        );
    }
  }

  /**
   * The final save did not reach the store. If the store lost its data (Redis restarted empty) the
   * next holder would start from now: make the same last attempt as after a lost lease (leave the
   * position for the next holder), and log it with its restore command if that fails too.
   */
  async finalSaveFailed(
    position: StreamPosition | null,
    unsaved: number,
    lease: StreamLease | null,
    saved: boolean,
    step: ShutdownStep,
  ): Promise<void> {
    const { key, logger, store } = this;
    if (position === null || this.leaving.size > 0) {
      // Nothing reached, or a lost lease already leaves (or reports) the position.
      logger.warn(messages.finalSaveFailed(key, unsaved, null));
      return;
    }
    const restore = restoreCommand(key, position, lease !== null);
    if (store && lease) {
      let settled = false;
      const attempt = store.leaveOrphan(key, position, lease, saved).then((kept) => {
        settled = true;
        if (kept) logger.warn(messages.orphanLeft(key, lease.holder));
      });
      await step(
        'the position to be left for the next holder',
        attempt.catch(() => undefined),
      );
      if (settled) {
        // The store answered: it kept its data (the events come again), or it now holds the position that was left.
        logger.warn(messages.finalSaveFailed(key, unsaved, null));
        return;
      }
    }
    logger.warn(messages.finalSaveFailed(key, unsaved, restore));
  }
}
