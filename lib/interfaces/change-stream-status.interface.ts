import type { BackfillStatus } from './backfill.interface.js';

/**
 * `paused`: stopped at run time (`ChangeStreamControl.pause`, or the fleet-wide pause key in
 * Redis): it reads nothing and holds no lease until resumed. `disabled`: `enabled: false` (module,
 * or every handler of the stream); never opened.
 * `standby`: another instance consumes the stream (leases); this one takes over if it goes away.
 * `degraded`: reading, but positions cannot be saved (store unreachable; they are kept in
 * memory and saved when it is back), or a handler has run longer than `handlerTimeoutMs`, or its
 * history headroom is below `historyHeadroom.warnMs` (see `historyHeadroomMs`).
 */
export type ChangeStreamState =
  | 'starting'
  | 'standby'
  | 'open'
  | 'degraded'
  | 'reconnecting'
  | 'failed'
  | 'closed'
  | 'paused'
  | 'disabled';

/** Who paused a stream, why and since when (`ChangeStreamStatus.paused`). */
export interface StreamPause {
  /** `local`: this instance only (`pause(stream)`); `fleet`: every instance (the pause key in Redis). */
  scope: 'local' | 'fleet';
  /** Who paused it (an instance id, or what an operator wrote); null when not said. */
  by: string | null;
  /** Why; null when not said. */
  reason: string | null;
  /** Since when; null when not said (a pause key an operator wrote as plain text). */
  since: Date | null;
}

/** With leases: whether this instance consumes the stream (`active`) or waits to take over (`standby`). */
export type ChangeStreamRole = 'active' | 'standby';

/** A snapshot of one collection stream, as shown by the registry and health. */
export interface ChangeStreamStatus {
  /** The Redis key (or store key) that holds this stream's position. */
  key: string;
  /** The mongoose connection the stream reads from. */
  connectionName: string;
  /** The database of the watched collection; `$deployment` for a deployment stream (see `databases`). */
  database: string;
  /** The watched collection; `$database` for a database stream (`streams: 'database'`), `$deployment` for a deployment stream. */
  collection: string;
  /** The collections the stream serves, sorted: one for a collection stream, all of them for a database stream. */
  collections: string[];
  /**
   * A deployment stream's database patterns (handlers declared with `{ collection, database }`),
   * sorted: a RegExp as `/source/flags`, a name as it is. Absent for other streams.
   */
  databases?: string[];
  /** Where the stream is in its life; see `ChangeStreamState`. */
  state: ChangeStreamState;
  /** With leases: this instance's role; null when leases are off. */
  role: ChangeStreamRole | null;
  /** With leases: this instance's id (hostname:pid:tag by default). */
  instanceId: string | null;
  /** With leases: the active instance as far as this one knows (itself when active). */
  holder: string | null;
  /** With leases: the fencing number of the holder's lease. */
  fence: number | null;
  /**
   * `ClassName.methodName` of every handler this stream calls; on a database stream prefixed
   * with its collection (`orders: ClassName.methodName`), on a deployment stream with its
   * database pattern and collection (`/^tenant_/.orders: ClassName.methodName`). On a `disabled` stream (this
   * instance does not run it) every handler declared on it, with `disabledHandlers` naming those
   * disabled themselves (`enabled: false`), so a stream whose handlers are all disabled lists them.
   */
  handlers: string[];
  /** Events whose handlers all succeeded since this process started the stream. */
  eventsHandled: number;
  /** When the last event was handled (null before the first). */
  lastEventAt: Date | null;
  /** When the position was last stored (null before the first save). */
  lastCheckpointAt: Date | null;
  /** When the collection was last dropped or renamed (an `invalidate` event), if ever. */
  lastInvalidatedAt: Date | null;
  /** Handled events whose position is not stored yet. */
  unsavedEvents: number;
  /**
   * How far behind the newest change this stream is (ms): while events are pending, now minus
   * the time (`wallTime`, else `clusterTime`) of the last handled event, or of the first event
   * read since the stream was last caught up if that is newer; 0 when caught up; null when
   * unknown (not open, or open with pending events that carry neither `wallTime` nor `clusterTime`).
   */
  lagMs: number | null;
  /** Time since the position was last stored (ms), or null if never. */
  lastCheckpointAgeMs: number | null;
  /** Events handed to handlers and not finished yet. */
  inFlightEvents: number;
  /** How long the oldest event in flight has been running (null when none is): a stuck handler shows here. */
  inFlightForMs: number | null;
  /** Why the stream is failed, reconnecting or degraded. */
  lastError: string | null;
  /**
   * How many reopen attempts in a row failed with the same error (`lastError`): 0 once the stream
   * reads again. A number that keeps growing is a stream that cannot get past something (an
   * oversized event, a server that refuses the stored position): see `docs/troubleshooting.md`.
   */
  consecutiveFailures: number;
  /**
   * How long until the stream's position falls off the oplog (ms): the cluster time of the position
   * last stored (what a restart resumes from, not a newer one in memory that saves could not store
   * yet) minus the oldest oplog entry's time, sampled every `historyHeadroom.intervalMs`; negative
   * when it already did. On a standby, the holder's stored position. Null when unknown: see
   * `historyHeadroomUnknown`.
   */
  historyHeadroomMs: number | null;
  /** The oplog's window (ms): its newest entry's time minus its oldest's, as `rs.printReplicationInfo()` shows it; null when unknown. */
  oplogWindowMs: number | null;
  /** Why `historyHeadroomMs` is null (not sampled yet, no position, the server does not show its oplog); null when it is known. */
  historyHeadroomUnknown: string | null;
  /** Present while the stream is paused (state `paused`): who paused it, why and since when. */
  paused?: StreamPause;
  /** Present when some handlers of the stream are disabled (`enabled: false`): they are not called. */
  disabledHandlers?: string[];
  /** The backfill run this instance is working on (it holds the stream), else null. */
  backfill: BackfillStatus | null;
}
