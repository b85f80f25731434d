import type { Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { messages } from '../change-stream.messages.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { orphanStore } from '../redis/left-position.js';
import { loadRecords, type ReplacedStreams } from './replaced-position.js';
import {
  collectionStreamStart,
  coveringTimes,
  databaseStreamStart,
  type FellOffCollection,
  type StartDecision,
} from './start-rule.js';
import { timeOf } from './stream-coverage.js';

/** Where a lease term starts, and where that came from: a left position, the stored one, or this instance's memory. */
export interface StartPosition {
  position: StreamPosition | null;
  from: 'left' | 'stored' | 'memory' | 'replaced';
  /** The stream's own record it resumed from or was held back from (with what is stored beside it, `coverage`): its next records build on it. */
  base: StreamPosition | null;
  /** Collections whose history fell off the oplog were let go: store the start at once, so a restart does not ask about them again. */
  letGo?: boolean;
}

/**
 * What a database stream's start needs so that a collection whose newest position fell off the
 * oplog does not cost the others their history (see `databaseStreamStart`).
 */
export interface FellOffGuard {
  /** The oplog's oldest entry now; null when it cannot be read (the start is then decided without it). */
  oldestOplogEntry(): Promise<mongo.Timestamp | null>;
  /**
   * Asks `onHistoryLost` for each of those collections before the stream starts (at `startsAt`,
   * the cluster time of its start); throws (the stream fails, nothing is stored) when the answer
   * for any of them is `fail`.
   */
  letGo(
    fellOff: readonly FellOffCollection[],
    oplogOldest: mongo.Timestamp,
    startsAt: mongo.Timestamp,
  ): Promise<void>;
}

/**
 * Reads where a lease term starts (throws `InvalidStoredTokenError` for a bad value). A position
 * an instance left when Redis lost the stream's data comes first (see `PositionStore.leaveOrphan`;
 * only with leases). If nothing is stored but this instance handled events before (Redis restarted
 * empty, say), it resumes from the last of those (`remembered`) instead of from "now": at worst
 * duplicates, never a gap. Otherwise the records of the streams that share its collections
 * (`replaced`: after a switch of the `streams` mode, or a collection joining or leaving a database
 * stream) decide with its own (see `start-rule.ts`). `warned` holds the keys whose missing
 * coverage was said already. With `guard`, a database stream whose collections' positions differ
 * reads the oplog's oldest entry once: a collection whose position fell off it is let go
 * (`FellOffGuard.letGo`) instead of holding the others back.
 */
export async function readStartPosition(
  store: PositionStore,
  key: string,
  withLease: boolean,
  remembered: StreamPosition | null,
  logger: Logger,
  replaced?: ReplacedStreams,
  warned: Set<string> = new Set(),
  guard?: FellOffGuard,
): Promise<StartPosition> {
  const leftPositions = orphanStore(store);
  const left = withLease && leftPositions ? await leftPositions.loadOrphan(key) : null;
  if (left) {
    logger.warn(messages.leaseReload(key));
    return { position: left, from: 'left', base: left };
  }
  const stored = await store.load(key);
  if (stored === null && remembered !== null) {
    logger.warn(messages.positionMissingResumingFromMemory(key));
    return { position: remembered, from: 'memory', base: remembered };
  }
  if (!replaced) return { position: stored, from: 'stored', base: stored };
  const decision = await decide(store, key, stored, replaced, guard);
  // With collections let go there is a start position whose time is readable (see `databaseStreamStart`).
  if (decision.fellOff)
    await guard!.letGo(decision.fellOff, decision.oplogOldest!, timeOf(decision.position!)!);
  if (decision.coverageMissing && !warned.has(decision.coverageMissing)) {
    warned.add(decision.coverageMissing);
    logger.warn(messages.positionCoverageMissing(key, decision.coverageMissing));
  }
  const { reason } = decision;
  if (reason?.kind === 'unordered')
    logger.warn(messages.startingFromUnorderedPosition(key, reason.key, reason.count));
  else if (reason)
    logger.warn(
      messages.startingFromReplacedPosition(
        key,
        reason.key,
        reason.collection,
        reason.time ? `cluster time ${reason.time.t}.${reason.time.i}` : 'its resume token',
        reason.hadOwn,
      ),
    );
  // Taken from another stream's record: its own backfill record still goes with it.
  const position =
    decision.from === 'replaced' && stored?.backfill
      ? { ...decision.position!, backfill: stored.backfill }
      : decision.position;
  // Collections let go are served from this start on: stored at once (see `Checkpointer.load`), so they are not let go again.
  if (decision.fellOff) return { position, from: 'replaced', base: stored, letGo: true };
  return { position, from: decision.from, base: stored };
}

async function decide(
  store: PositionStore,
  key: string,
  stored: StreamPosition | null,
  replaced: ReplacedStreams,
  guard: FellOffGuard | undefined,
): Promise<StartDecision> {
  if ('databaseKey' in replaced) {
    // Its backfill (a run, or one completed) by a handler declared now owes that handler every
    // change since its own position: the database stream's coverage did not include it.
    if (owesBackfill(stored, replaced.backfillHandlers ?? []))
      return { position: stored, from: 'stored' };
    const [database] = await loadRecords(store, [replaced.databaseKey]);
    return collectionStreamStart(stored, replaced.collection, database);
  }
  const records = await loadRecords(
    store,
    replaced.collections.map((c) => c.key),
  );
  const collections = replaced.collections.map(({ collection }, i) => ({
    collection,
    ...records[i],
  }));
  // Only positions that differ can leave one behind in the oplog while another is still in it.
  const times = guard && coveringTimes(key, stored, collections);
  const oplogOldest =
    times && times.some((t) => !t.equals(times[0])) ? await guard!.oldestOplogEntry() : null;
  return databaseStreamStart(key, stored, collections, oplogOldest);
}

function owesBackfill(stored: StreamPosition | null, handlers: readonly string[]): boolean {
  const backfill = stored?.backfill;
  if (!backfill) return false;
  const owed = [...backfill.completed, ...(backfill.run?.handlers ?? [])];
  return handlers.some((h) => owed.includes(h));
}

/** A left position a lease term resumed from (`pending`) until it is stored and then removed. */
export class AdoptedLeftPosition {
  pending = false;
  private readonly store: ReturnType<typeof orphanStore>;

  constructor(
    store: PositionStore,
    private readonly key: string,
  ) {
    this.store = orphanStore(store);
  }

  /** It is stored now (the position is at or after it): remove it; if that fails, again after the next save of the same term. */
  drop(sameTerm: () => boolean): void {
    this.pending = false;
    void this.store?.dropOrphan(this.key).catch(() => {
      if (sameTerm()) this.pending = true;
    });
  }
}
