import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { ChangeStreamRegistry } from '../change-stream.registry.js';
import { messages } from '../change-stream.messages.js';
import type { BackfillStatus } from '../interfaces/backfill.interface.js';
import type { ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';

/** Terminus 12 knows `degraded`; Terminus 11 only `up` and `down`. */
export type HealthStatus = 'up' | 'degraded' | 'down';

/**
 * Same shape as Terminus' `HealthIndicatorResult`, declared here so Terminus stays an optional
 * peer. `Status` is inferred from where the result goes (`HealthCheckService.check`), so it fits
 * Terminus 11's `'up' | 'down'` as well as 12's.
 */
export type ChangeStreamHealthResult<
  Key extends string = string,
  Status extends HealthStatus = HealthStatus,
> = Record<
  Key,
  {
    /** The worst state among the streams, as Terminus reports it. */
    status: Status;
    /** Each stream by `<connection>/<database>.<collection>`. */
    streams: Record<string, StreamHealth>;
  }
>;

/** The second argument of `ChangeStreamHealthIndicator.isHealthy()`. */
export interface ChangeStreamHealthOptions {
  /**
   * What a `degraded` stream (starting, reconnecting, cannot save, stuck handler) reports:
   * `degraded` (default; `up` on Terminus 11, which has no such status), `up` or `down` (for a
   * readiness probe that should take a stuck instance out of rotation).
   */
  degraded?: HealthStatus;
  /** A stream further behind than this (`lagMs`) counts as degraded. */
  maxLagMs?: number;
  /** A stream further behind than this counts as down (e.g. a hung or hopelessly slow consumer). */
  downLagMs?: number;
}

/** One stream in the health details: `ChangeStreamStatus` in JSON-friendly form (dates as ISO strings). */
export interface StreamHealth {
  /** The stream's state; see `ChangeStreamState`. */
  state: ChangeStreamStatus['state'];
  /** With leases: `active` or `standby` (healthy while Redis answers), the active instance and its lease's fence. */
  role?: ChangeStreamStatus['role'];
  /** With leases: the active instance, as far as this one knows. */
  holder?: string | null;
  /** With leases: the fencing number of the holder's lease. */
  fence?: number | null;
  /** Events whose handlers all succeeded since this process started the stream. */
  eventsHandled: number;
  /** When the last event was handled (ISO 8601), null before the first. */
  lastEventAt: string | null;
  /** When the position was last stored (ISO 8601), null before the first save. */
  lastCheckpointAt: string | null;
  /** Handled events whose position is not stored yet. */
  unsavedEvents: number;
  /** How far behind the newest change the stream is (ms); 0 when caught up, null when unknown. */
  lagMs: number | null;
  /** Time since the position was last stored (ms), null if never. */
  lastCheckpointAgeMs: number | null;
  /** Events handed to handlers and not finished yet. */
  inFlightEvents: number;
  /** How long the oldest event in flight has been running. */
  inFlightForMs: number | null;
  /** When the collection was last dropped or renamed (ISO 8601); absent if never. */
  lastInvalidatedAt?: string;
  /** Why the stream is failed, reconnecting or degraded; absent when it is fine. See docs/troubleshooting.md. */
  lastError?: string;
  /** Time until the position falls off the oplog (ms); absent before the first sample. See `ChangeStreamStatus`. */
  historyHeadroomMs?: number | null;
  /** The oplog's window (ms); absent before the first sample. */
  oplogWindowMs?: number | null;
  /** Why the headroom is unknown (privilege, mongos, no oplog…); absent when it is known. */
  historyHeadroomUnknown?: string;
  /** While paused (state `paused`, which is healthy): `local` or `fleet`, who, why and since when (ISO 8601). */
  paused?: StreamPauseHealth;
  /** Handlers of the stream left out by `enabled: false`. */
  disabledHandlers?: string[];
}

/** `StreamPause` in health details (the date as an ISO string). */
export interface StreamPauseHealth {
  /** `local`: this instance only; `fleet`: every instance (the pause key in Redis). */
  scope: 'local' | 'fleet';
  /** Who paused it; null when not said. */
  by: string | null;
  /** Why; null when not said. */
  reason: string | null;
  /** Since when (ISO 8601); null when not said. */
  since: string | null;
  /** The backfill this instance runs on the stream; absent when none. */
  backfill?: Omit<BackfillStatus, 'startedAt'> & {
    /** When the run started (ISO 8601). */
    startedAt: string;
  };
}

interface TerminusSession {
  up(data: object): unknown;
  down(data: object): unknown;
  degraded?(data: object): unknown;
}

/**
 * Terminus indicator: `down` when any stream failed or closed (or is more than `downLagMs`
 * behind), `degraded` (Terminus 12; `up` on 11; see `options.degraded`) while one is starting,
 * reconnecting or degraded (cannot save its position, a handler is stuck) or more than
 * `maxLagMs` behind, else `up` (a standby is healthy: it turns `reconnecting` once Redis has not
 * answered for a lease TTL, when no live holder is known; a `paused` or `disabled` stream is
 * healthy too: it was stopped on purpose); per stream its state, role, lag, counts and times.
 */
@Injectable()
export class ChangeStreamHealthIndicator {
  /** @internal Created by Nest's injector. */
  constructor(
    private readonly registry: ChangeStreamRegistry,
    private readonly moduleRef: ModuleRef,
  ) {}

  /**
   * The Terminus result for every stream of this application, under `key` (default
   * `changeStreams`): use it as `() => indicator.isHealthy()` in `HealthCheckService.check`.
   * `options.degraded` chooses what a degraded stream reports.
   */
  async isHealthy<
    const Key extends string = 'changeStreams',
    Status extends HealthStatus = HealthStatus,
  >(
    key: Key = 'changeStreams' as Key,
    options: ChangeStreamHealthOptions = {},
  ): Promise<ChangeStreamHealthResult<Key, Status>> {
    const session = (await this.terminus()).check(key) as TerminusSession;
    const statuses = this.registry.getStatuses();
    const data = {
      streams: Object.fromEntries(
        statuses.map((s) => [`${s.connectionName}/${s.database}.${s.collection}`, toHealth(s)]),
      ),
    };
    type Result = ChangeStreamHealthResult<Key, Status>;
    const behind = (limit: number | undefined) =>
      limit !== undefined && statuses.some((s) => (s.lagMs ?? 0) > limit);
    if (
      statuses.some((s) => s.state === 'failed' || s.state === 'closed') ||
      behind(options.downLagMs)
    )
      return session.down(data) as Result;
    if (
      statuses.some(
        (s) => s.state === 'starting' || s.state === 'reconnecting' || s.state === 'degraded',
      ) ||
      behind(options.maxLagMs)
    ) {
      const degraded = options.degraded ?? 'degraded';
      if (degraded === 'down') return session.down(data) as Result;
      if (degraded === 'degraded' && session.degraded) return session.degraded(data) as Result;
    }
    return session.up(data) as Result;
  }

  /** Loaded on first use, so apps without Terminus never import it. */
  private async terminus(): Promise<{ check(key: string): unknown }> {
    let terminus: typeof import('@nestjs/terminus');
    try {
      terminus = await import('@nestjs/terminus');
    } catch (error) {
      const code = (error as { code?: string })?.code;
      // Only "not installed" gets the install hint; any other load failure is shown as it is.
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')
        throw new Error(messages.terminusMissing(), { cause: error });
      throw error;
    }
    try {
      return this.moduleRef.get(terminus.HealthIndicatorService, { strict: false });
    } catch {
      return new terminus.HealthIndicatorService();
    }
  }
}

function toHealth(s: ChangeStreamStatus): StreamHealth {
  return {
    state: s.state,
    ...(s.role ? { role: s.role, holder: s.holder, fence: s.fence } : {}),
    eventsHandled: s.eventsHandled,
    lastEventAt: s.lastEventAt?.toISOString() ?? null,
    lastCheckpointAt: s.lastCheckpointAt?.toISOString() ?? null,
    unsavedEvents: s.unsavedEvents,
    lagMs: s.lagMs,
    lastCheckpointAgeMs: s.lastCheckpointAgeMs,
    inFlightEvents: s.inFlightEvents,
    inFlightForMs: s.inFlightForMs,
    ...(s.lastInvalidatedAt ? { lastInvalidatedAt: s.lastInvalidatedAt.toISOString() } : {}),
    ...(s.lastError ? { lastError: s.lastError } : {}),
    ...(s.paused ? { paused: { ...s.paused, since: s.paused.since?.toISOString() ?? null } } : {}),
    ...(s.disabledHandlers ? { disabledHandlers: s.disabledHandlers } : {}),
    ...headroomOf(s),
    ...(s.backfill
      ? { backfill: { ...s.backfill, startedAt: s.backfill.startedAt.toISOString() } }
      : {}),
  };
}

function headroomOf(s: ChangeStreamStatus): Partial<StreamHealth> {
  if (s.historyHeadroomUnknown === messages.headroomNotSampled()) return {};
  return {
    historyHeadroomMs: s.historyHeadroomMs,
    oplogWindowMs: s.oplogWindowMs,
    ...(s.historyHeadroomUnknown ? { historyHeadroomUnknown: s.historyHeadroomUnknown } : {}),
  };
}
