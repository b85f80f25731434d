import { Logger } from '@nestjs/common';
import { isFencedWriteError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import { errorText } from '../common/errors.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { encodePosition } from '../position/position.codec.js';
import { type MirrorStamp, stampFor } from './mirror-stamp.js';
import type { MongoPositionMirror } from './mongo-position-mirror.js';
import { MIRROR_TICK_MIN_MS } from '../options/defaults.js';

export interface MirrorSettings {
  /** Each stream's mirror is written at most this often, besides a tenure's first save and the close. */
  intervalMs: number;
  /** A Redis save under a lease proves it current for this long (see `stampFor`). */
  proofWindowMs: number;
}

interface Pending {
  position: StreamPosition;
  lease: StreamLease | undefined;
  /** When Redis accepted it (null: the Redis save failed). */
  acceptedAt: number | null;
}

interface MirrorState {
  pending?: Pending;
  /** The stamp of the writes under `lease`, fixed at its first write. */
  pinned?: { lease: StreamLease; stamp: MirrorStamp };
  refusedFor?: StreamLease;
  /** The lease whose first save was mirrored at once. */
  firstFor?: StreamLease;
  lastAttemptAt: number;
  /** Writes of one stream never overlap, so they land in order. */
  chain: Promise<void>;
}

/**
 * Positions go to the wrapped store (Redis) as before; a copy goes to MongoDB every
 * `intervalMs`, fenced (see `mirror-stamp.ts`). `load` reads the copy only when the wrapped
 * store holds no position for the stream: after Redis restarted empty, nothing is lost.
 */
export class MirroredPositionStore implements PositionStore {
  private readonly logger = new Logger('ChangeStreamModule');
  readonly durable: boolean | undefined;
  readonly leases: PositionStore['leases'];
  readonly leaveOrphan?: PositionStore['leaveOrphan'];
  readonly loadOrphan?: PositionStore['loadOrphan'];
  readonly dropOrphan?: PositionStore['dropOrphan'];
  /** Failed mirror writes so far (each is retried with the next save or tick). */
  writeFailures = 0;
  private failing = false;
  private readonly streams = new Map<string, MirrorState>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly inner: PositionStore,
    private readonly mirror: MongoPositionMirror,
    private readonly settings: MirrorSettings,
  ) {
    this.durable = inner.durable;
    this.leases = inner.leases;
    if (inner.leaveOrphan && inner.loadOrphan && inner.dropOrphan) {
      this.leaveOrphan = inner.leaveOrphan.bind(inner);
      this.loadOrphan = inner.loadOrphan.bind(inner);
      this.dropOrphan = inner.dropOrphan.bind(inner);
    }
  }

  /** Redis first; the mirror only when Redis has nothing (a mirror that cannot be read then throws: the stream waits, it never starts from now). */
  async load(key: string): Promise<StreamPosition | null> {
    const stored = await this.inner.load(key);
    if (stored !== null) return stored;
    const mirrored = await this.mirror.read(key);
    if (mirrored === null) return null;
    this.logger.warn(
      messages.positionFromMirror(key, this.mirror.namespace, mirrored.savedAt, mirrored.holder),
    );
    // Not written back to Redis here: load has no lease, and an unfenced write could overwrite a newer holder's position.
    // Every holder finds the same mirror until the first checkpoint stores a position in Redis.
    return mirrored.position;
  }

  async save(key: string, position: StreamPosition, lease?: StreamLease): Promise<void> {
    const state = this.state(key);
    try {
      await (lease ? this.inner.save(key, position, lease) : this.inner.save(key, position));
    } catch (error) {
      if (isFencedWriteError(error)) throw error; // another holder's position now: nothing of ours to mirror
      // Redis unreachable: the mirror is the only copy of this position.
      state.pending = { position, lease, acceptedAt: null };
      if (Date.now() - state.lastAttemptAt >= this.settings.intervalMs) void this.write(key, state);
      else this.tick();
      throw error;
    }
    state.pending = { position, lease, acceptedAt: Date.now() };
    // A lease's first save is mirrored at once (and again each interval until its stamp is fixed), while
    // the Redis save proves the lease current. Never awaited: a slow MongoDB must not hold the checkpoint.
    const unpinned = lease !== undefined && !sameLease(state.pinned?.lease, lease);
    if (
      unpinned &&
      (!sameLease(state.firstFor, lease) ||
        Date.now() - state.lastAttemptAt >= this.settings.intervalMs)
    ) {
      state.firstFor = lease;
      void this.write(key, state);
    } else this.tick();
  }

  /** Writes every position not mirrored yet (at shutdown, before the Redis client is closed), and stops the timer. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.streams.keys()].map((key) => this.write(key, this.state(key))));
  }

  private tick(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(
      () => {
        const due = [...this.streams].filter(
          ([, s]) => s.pending && Date.now() - s.lastAttemptAt >= this.settings.intervalMs,
        );
        for (const [key, state] of due) void this.write(key, state);
      },
      Math.max(MIRROR_TICK_MIN_MS, Math.floor(this.settings.intervalMs / 2)),
    );
    this.timer.unref();
  }

  private write(key: string, state: MirrorState): Promise<void> {
    state.chain = state.chain.then(() => this.writePending(key, state));
    return state.chain;
  }

  private async writePending(key: string, state: MirrorState): Promise<void> {
    const pending = state.pending;
    if (!pending) return;
    state.pending = undefined;
    state.lastAttemptAt = Date.now();
    try {
      await this.writeOne(key, state, pending);
      if (this.failing)
        this.logger.log(messages.mirrorWriteRecovered(this.mirror.namespace, this.writeFailures));
      this.failing = false;
    } catch (error) {
      state.pending ??= pending;
      this.tick(); // retried even if no save comes
      this.writeFailures++;
      if (!this.failing)
        this.logger.warn(messages.mirrorWriteFailed(this.mirror.namespace, errorText(error)));
      this.failing = true;
    }
  }

  private async writeOne(
    key: string,
    state: MirrorState,
    { position, lease, acceptedAt }: Pending,
  ): Promise<void> {
    const raw = encodePosition(position, new Date(), lease);
    if (!lease) {
      await this.mirror.write(key, raw, { generation: 0, fence: 0 }, undefined);
      return;
    }
    let stamp = sameLease(state.pinned?.lease, lease) ? state.pinned!.stamp : undefined;
    if (!stamp) {
      const stored = await this.mirror.stamp(key);
      const proven = acceptedAt !== null && Date.now() - acceptedAt <= this.settings.proofWindowMs;
      const chosen = stampFor(stored, lease.fence, proven);
      if (!chosen) return this.refused(key, state, lease, stored);
      stamp = chosen;
      state.pinned = { lease, stamp };
    }
    if (!(await this.mirror.write(key, raw, stamp, lease)))
      this.refused(key, state, lease, await this.mirror.stamp(key).catch(() => null));
  }

  private refused(
    key: string,
    state: MirrorState,
    lease: StreamLease,
    stored: MirrorStamp | null,
  ): void {
    if (sameLease(state.refusedFor, lease)) return;
    state.refusedFor = lease;
    this.logger.warn(messages.mirrorWriteRefused(key, this.mirror.namespace, lease, stored));
  }

  private state(key: string): MirrorState {
    let state = this.streams.get(key);
    if (!state) this.streams.set(key, (state = { lastAttemptAt: 0, chain: Promise.resolve() }));
    return state;
  }
}

function sameLease(a: StreamLease | undefined, b: StreamLease): boolean {
  return a !== undefined && a.fence === b.fence && a.holder === b.holder;
}
