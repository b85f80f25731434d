import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { errorText } from '../common/errors.js';
import type { LeaseStore } from '../interfaces/lease-store.interface.js';
import { candidatesKey } from '../redis/redis-keys.js';

export interface LeaseTiming {
  /** How long a lease lives without renewal: the worst-case takeover time after a crash (plus one poll). */
  ttlMs: number;
  /** How often the holder renews (and instances announce themselves). */
  renewIntervalMs: number;
  /** How often a standby looks for a free lease. */
  pollIntervalMs: number;
}

/**
 * Spreads streams over the live instances that can consume them. Each instance announces
 * itself as a candidate of each of its streams (`heartbeat` on `<position key>:candidates`), so
 * instances of one consumer may watch different collections. Its fair share is
 * `ceil(Σ 1 / candidates(stream))` over its streams: it takes a lease only while it holds fewer,
 * and holding more (an instance joined) it hands over one stream per renew interval, only one that
 * another instance can take.
 *
 * The share is a preference; that every stream has a holder comes first. With different handler
 * sets, the instances under their share may not be candidates of the stream that is free (A
 * watches s1 and s2, B watches s1, s2 and s3, and B took s1 and s2 first), so a stream only this
 * instance can take is always taken, and one that stayed free for a TTL is taken by any candidate
 * (`reserve(key, true)`); it is not handed over again while held, so this cannot go round in
 * circles (the price: such a stream stays where it is even when the shares change).
 */
export class LeaseBalancer {
  private readonly logger = new Logger('ChangeStreamModule');
  private readonly held = new Set<string>();
  /** Streams with an acquisition under way: they count against the share until it answered. */
  private readonly reserved = new Set<string>();
  /** Streams taken beyond the share because nobody else took them: never handed over while held. */
  private readonly beyondShare = new Set<string>();
  private readonly candidates: Map<string, number>;
  /** Streams for which another instance announced itself since this one started. */
  private readonly othersSeen = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** Announced at least once (an outage at startup is reported by the store check). */
  private announced = false;
  private reportedFailure = false;
  private stopped = false;
  /** Streams paused on this instance: not announced, and not counted in its share. */
  private readonly withdrawn = new Set<string>();
  /** Streams and pairs of handler sets already warned about. */
  private readonly differencesSeen = new Set<string>();

  constructor(
    private readonly store: LeaseStore,
    readonly instanceId: string,
    private readonly timing: LeaseTiming,
    keys: string[],
    /** Asked to hand a stream over; false when it cannot now (events in flight, failed). */
    private readonly shed: (key: string) => boolean,
    /** This instance's handler set per stream (see `handlerSetOf`), announced to the others. */
    private readonly handlerSets: ReadonlyMap<string, string> = new Map(),
  ) {
    this.candidates = new Map(keys.map((key) => [key, 1]));
  }

  /** Announces this instance for each stream, then keeps announcing every renew interval. */
  async start(): Promise<void> {
    await this.tick();
    if (this.stopped) return; // stopped while the first announcement was on its way
    this.timer = setInterval(() => void this.tick(), this.timing.renewIntervalMs);
    this.timer.unref();
  }

  /** Stops announcing and leaves every candidate set at once, so the others' share grows now. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all(
      [...this.candidates.keys()].map((key) =>
        this.store.leave(candidatesKey(key), this.instanceId).catch(() => undefined),
      ),
    );
  }

  /**
   * Paused here: leave the stream's candidates now, so the others' share grows at once (they may
   * hold streams already, and would otherwise take this one only after a TTL unseen).
   */
  withdraw(key: string): void {
    if (this.withdrawn.has(key) || !this.candidates.has(key)) return;
    this.withdrawn.add(key);
    void this.store.leave(candidatesKey(key), this.instanceId).catch(() => undefined);
  }

  /** Resumed here: a candidate of the stream again. */
  rejoin(key: string): void {
    if (this.withdrawn.delete(key)) void this.refresh(key);
  }

  get fairShare(): number {
    let share = 0;
    for (const [key, count] of this.candidates)
      if (!this.withdrawn.has(key)) share += 1 / Math.max(1, count);
    return Math.ceil(share - 1e-9);
  }

  /**
   * May this instance ask for a lease now? If so the slot is reserved until `acquired` or
   * `unreserve`. Within the share, or for a stream no other live instance can take; `overdue`
   * (the stream was seen free, or not seen held, for a TTL): in any case.
   */
  reserve(key: string, overdue = false): boolean {
    if (this.stopped) return false;
    const within =
      this.held.size + this.reserved.size < this.fairShare || (this.candidates.get(key) ?? 1) <= 1;
    if (!within && !overdue) return false;
    this.reserved.add(key);
    if (!within) this.beyondShare.add(key);
    return true;
  }

  unreserve(key: string): void {
    this.reserved.delete(key);
    this.beyondShare.delete(key);
  }

  acquired(key: string): void {
    this.reserved.delete(key);
    this.held.add(key);
  }

  released(key: string): void {
    this.held.delete(key);
    this.beyondShare.delete(key);
  }

  /**
   * Another instance announced itself for `key` at some point since this one started: kept after
   * the candidates are gone (a Redis restarted empty forgets them, and this instance's own next
   * announcement may reach it first).
   */
  sawOtherCandidates(key: string): boolean {
    return this.othersSeen.has(key);
  }

  private count(key: string, candidates: number): void {
    this.candidates.set(key, candidates);
    if (candidates > 1) this.othersSeen.add(key);
  }

  /** Re-reads how many instances can take `key` (a standby checks before it concludes it is over its share); true if the store answered. */
  async refresh(key: string): Promise<boolean> {
    if (this.stopped || this.withdrawn.has(key)) return false;
    try {
      this.count(key, await this.announce(key));
      return true;
    } catch {
      return false; // the next tick reports a lasting outage
    }
  }

  /** Announces this instance as a candidate of `key` (with its handler set, if the store keeps them); → live candidates. */
  private async announce(key: string): Promise<number> {
    const mine = this.handlerSets.get(key);
    if (mine === undefined || !this.store.announce)
      return this.store.heartbeat(candidatesKey(key), this.instanceId, this.timing.ttlMs);
    const { members, handlers } = await this.store.announce(
      candidatesKey(key),
      this.instanceId,
      this.timing.ttlMs,
      mine,
    );
    for (const [member, theirs] of handlers) {
      const pair = `${key}\n${[mine, theirs].sort().join('\n')}`;
      if (member === this.instanceId || theirs === mine || this.differencesSeen.has(pair)) continue;
      this.differencesSeen.add(pair);
      this.logger.warn(messages.handlerSetsDiffer(key, this.instanceId, mine, member, theirs));
    }
    return members;
  }

  private async tick(): Promise<void> {
    try {
      const keys = [...this.candidates.keys()].filter((key) => !this.withdrawn.has(key));
      const counts = await Promise.all(keys.map((key) => this.announce(key)));
      keys.forEach((key, i) => this.count(key, counts[i]));
      this.announced = true;
      this.reportedFailure = false;
    } catch (error) {
      if (this.announced && !this.reportedFailure)
        this.logger.warn(messages.heartbeatFailed(this.instanceId, errorText(error)));
      this.reportedFailure = true;
      return;
    }
    const share = this.fairShare;
    // Streams taken past the share stay marked while held: unmarked, they could be handed over and
    // left unread for a TTL again, round after round.
    if (this.held.size <= share) return;
    // Only a stream another instance can take (and did not leave to this one); newest first.
    for (const key of [...this.held].reverse()) {
      if ((this.candidates.get(key) ?? 1) < 2 || this.beyondShare.has(key)) continue;
      if (this.shed(key)) {
        this.logger.log(messages.leaseShed(key, this.instanceId, this.held.size, share));
        return;
      }
    }
  }
}

/** How an instance announces its handlers of one stream: their names, sorted. */
export function handlerSetOf(handlerNames: readonly string[]): string {
  return [...handlerNames].sort().join(', ');
}
