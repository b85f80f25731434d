import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  CHANGE_STREAM_RESOLVED_OPTIONS,
  CHANGE_STREAM_STORES,
  DEFAULT_CONNECTION_NAME,
} from '../change-stream.constants.js';
import { messages } from '../change-stream.messages.js';
import { ChangeStreamRegistry } from '../change-stream.registry.js';
import type { LeaseStore } from '../interfaces/lease-store.interface.js';
import type {
  PauseStreamOptions,
  StreamControlOptions,
} from '../interfaces/stream-control.interface.js';
import type { ResolvedChangeStreamOptions } from '../options/module-options.js';
import type { ChangeStreamStores } from '../stores.factory.js';
import type { CollectionStream } from '../stream/collection-stream.js';
import { encodePauseFlag } from '../stream/pause-flag.js';
import { servesCollection } from '../stream/stream-scope.js';

type FleetPauses = Required<Pick<LeaseStore, 'writePause' | 'renewReadingPause'>>;

/**
 * Pause and resume streams at run time. On this instance (`pause(stream)`): the stream stops
 * reading, drains its in-flight handlers, saves its position and releases its lease (another
 * instance may take it over), and takes no lease until `resume(stream)`. Fleet-wide
 * (`{ fleet: true }`, leases on): sets the stream's pause key in Redis (`pausedKey`), which every
 * instance honours within one lease renewal; an operator may set or delete that key with
 * redis-cli instead. A stream is named by its collection or by its key (`status.key`).
 */
@Injectable()
export class ChangeStreamControl {
  private readonly logger = new Logger('ChangeStreamModule');

  /** @internal Created by Nest's injector. */
  constructor(
    private readonly registry: ChangeStreamRegistry,
    @Inject(CHANGE_STREAM_RESOLVED_OPTIONS) private readonly options: ResolvedChangeStreamOptions,
    @Inject(CHANGE_STREAM_STORES) private readonly stores: ChangeStreamStores,
  ) {}

  /**
   * Pauses `stream` (a collection, or a stream key) on this instance, or with `fleet: true` on
   * every instance. Resolves once this instance stopped reading it (drained, saved, released);
   * fleet-wide, once the pause key is written (and this instance, if it held the stream, stopped).
   */
  async pause(stream: string, options: PauseStreamOptions = {}): Promise<void> {
    const { key, running } = this.find(stream, options.connectionName);
    const pause = {
      by: options.by ?? (this.options.leases ? this.options.leases.instanceId : null),
      reason: options.reason ?? null,
      since: new Date(),
    };
    if (options.fleet) {
      const fleet = this.fleetPauses();
      if (fleet) {
        const value = encodePauseFlag(pause);
        await fleet.writePause(key, value);
        if (!running) {
          this.logger.log(messages.fleetPauseOfDisabled(key, false));
          return;
        }
        const holding = running.status().role === 'active';
        const settled = running.pauses.whenSettled();
        // The holder here acts now rather than at its next renewal.
        running.fleetPauseSeen(value);
        if (holding) await Promise.race([settled, running.whenStopped()]);
        return;
      }
      if (!running) throw new Error(messages.fleetPauseUnsupportedDisabled(key));
      this.logger.warn(messages.fleetPauseUnsupported(key));
    }
    if (!running) throw new Error(messages.controlDisabled(key));
    await running.pause(pause);
  }

  /**
   * Ends the pause of `stream` on this instance; with `fleet: true` also deletes its pause key
   * (every instance may then take the stream again). A local pause on another instance stays.
   */
  async resume(stream: string, options: StreamControlOptions = {}): Promise<void> {
    const { key, running } = this.find(stream, options.connectionName);
    if (options.fleet) {
      const fleet = this.fleetPauses();
      if (fleet) {
        await fleet.writePause(key, null);
        if (running) running.fleetPauseSeen(null);
        else this.logger.log(messages.fleetPauseOfDisabled(key, true));
      } else if (!running) throw new Error(messages.fleetPauseUnsupportedDisabled(key));
      else this.logger.warn(messages.fleetPauseUnsupported(key));
    } else if (!running) throw new Error(messages.controlDisabled(key));
    running?.resume();
  }

  /** Whether `stream` is paused on this instance (by a local pause, or the fleet-wide one as last seen). */
  isPaused(stream: string, options: Pick<StreamControlOptions, 'connectionName'> = {}): boolean {
    const { running } = this.find(stream, options.connectionName);
    return running !== undefined && running.pauses.current !== null;
  }

  /** The store's fleet-wide pause, when leases are on and it implements it. */
  private fleetPauses(): FleetPauses | undefined {
    const leases = this.stores.tokens.leases;
    if (this.options.leases === false || !leases?.writePause || !leases.renewReadingPause)
      return undefined;
    return leases as FleetPauses;
  }

  private find(
    stream: string,
    connectionName: string | undefined,
  ): { key: string; running?: CollectionStream } {
    const connection = connectionName ?? this.options.connectionName ?? DEFAULT_CONNECTION_NAME;
    const running =
      this.registry.streams.find((s) => s.key === stream) ??
      this.registry.streams.find(
        (s) => servesCollection(s.plan, stream) && s.plan.connectionName === connection,
      );
    if (running) return { key: running.key, running };
    const disabled =
      this.registry.disabled.find((s) => s.key === stream) ??
      this.registry.disabled.find(
        (s) =>
          (s.collection === stream || s.collections.includes(stream)) &&
          s.connectionName === connection,
      );
    if (disabled) return { key: disabled.key };
    throw new Error(
      messages.controlUnknownStream(
        stream,
        this.registry.getStatuses().map((s) => s.key),
      ),
    );
  }
}
