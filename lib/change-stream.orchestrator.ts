import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { getConnectionToken } from '@nestjs/mongoose';
import type { Connection, mongo } from 'mongoose';
import {
  CHANGE_STREAM_RESOLVED_OPTIONS,
  CHANGE_STREAM_STORES,
  DEFAULT_CONNECTION_NAME,
} from './change-stream.constants.js';
import {
  checkDeadLetterDurability,
  createBalancer,
  keyedPlans,
  modelCollectionResolver,
  warnMissingCollections,
} from './change-stream.planning.js';
import { CHANGE_STREAM_MODULE_OPTIONS } from './change-stream.module-definition.js';
import { ChangeStreamExplorer } from './change-stream.explorer.js';
import { disabledParts, recordDisabled } from './control/disabled-streams.js';
import { messages } from './change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from './options/module-options.js';
import { ChangeStreamRegistry } from './change-stream.registry.js';
import { settlesWithin } from './common/backoff.js';
import { handlerSetOf, type LeaseBalancer } from './lease/lease-balancer.js';
import { ProviderLifecycle, type ProviderWrapper } from './lifecycle/provider-lifecycle.js';
import { ChangeStreamTelemetry } from './telemetry/change-stream-telemetry.js';
import type { ChangeStreamStores } from './stores.factory.js';
import { connectionChunkReader } from './backfill/chunk-reader.js';
import { connectionCursorFactory } from './stream/change-cursor.js';
import type { CollectionStream } from './stream/collection-stream.js';
import { createCollectionStream } from './stream/create-collection-stream.js';
import { planStreams } from './stream/stream-plan.js';
import { databasePlans } from './stream/database-plan.js';
import { streamModeOf, warnUnknownStreamConnections } from './options/streams-option.js';
import type { PositionStore } from './interfaces/position-store.interface.js';
import { MirroredPositionStore } from './position-mirror/mirrored-position.store.js';
import { withPositionMirror } from './position-mirror/position-mirror.factory.js';
import { MIN_CLOSE_MS, STORE_CHECK_MS } from './options/defaults.js';
import { HeadroomSampling } from './headroom/headroom-sampling.js';
import { oplogStartOf, readOldestOplogEntry } from './headroom/oplog-window.js';

/** Wires discovery to streams and runs them with the application's lifecycle. */
@Injectable()
export class ChangeStreamOrchestrator
  implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger = new Logger('ChangeStreamModule');
  private readonly lifecycle = new ProviderLifecycle();
  /** Set by the first drain: the whole shutdown (drains, final saves, closing the store) fits before it. */
  private shutdownDeadline: number | undefined;
  /** Leases on: spreads this consumer's streams over its live instances. */
  private balancer: LeaseBalancer | undefined;
  private telemetry: ChangeStreamTelemetry | undefined;
  /** The position store of every stream: the configured one, wrapped by the MongoDB mirror when `positionMirror` is on. */
  private tokens: PositionStore;
  /** The oplog samplers of the streams' connections (history headroom). */
  private readonly headroom: HeadroomSampling;
  /** Each stream's database, by key: for the startup check that the watched collections exist. */
  private readonly databases = new Map<string, mongo.Db>();

  constructor(
    private readonly explorer: ChangeStreamExplorer,
    private readonly registry: ChangeStreamRegistry,
    private readonly moduleRef: ModuleRef,
    @Inject(CHANGE_STREAM_RESOLVED_OPTIONS) private readonly options: ResolvedChangeStreamOptions,
    @Inject(CHANGE_STREAM_STORES) private readonly stores: ChangeStreamStores,
  ) {
    this.tokens = stores.tokens;
    this.headroom = new HeadroomSampling(options.historyHeadroom);
  }

  /** Discovery and every configuration check happen here, so a bad setup fails `app.init()`. */
  async onModuleInit(): Promise<void> {
    try {
      await this.setUp();
    } catch (error) {
      // Nest calls no shutdown hook after a failed init: a Redis client of ours would reconnect forever.
      await this.stores.close(STORE_CHECK_MS);
      throw error;
    }
  }

  private async setUp(): Promise<void> {
    const handlers = this.explorer.explore(
      this.options.connectionName ?? DEFAULT_CONNECTION_NAME,
      modelCollectionResolver(this.moduleRef),
    );
    if (handlers.length === 0) this.logger.warn(messages.noHandlers());
    checkDeadLetterDurability(handlers, this.options, this.stores, this.logger);
    const plans = databasePlans(
      planStreams(handlers, this.options.checkpoint.maxEvents),
      streamModeOf(this.options.streams),
    );
    warnUnknownStreamConnections(this.options.streams, handlers, this.logger);
    const disabled = disabledParts(handlers, plans);
    const keyed = await keyedPlans([...plans, ...disabled.idlePlans], this.moduleRef, this.options);
    const { enabled } = this.options;
    recordDisabled(
      keyed,
      plans.length,
      enabled,
      disabled,
      this.registry,
      this.logger,
      handlers.length,
    );
    // Disabled: validated, and shown in status; nothing opened, no lease, no announcement.
    if (!enabled) return;
    const planned = keyed.slice(0, plans.length);
    const telemetry = await ChangeStreamTelemetry.load(this.options.telemetry);
    planned.forEach((p) => this.databases.set(p.key, p.db));
    if (planned.length > 0) {
      this.tokens = await withPositionMirror(this.stores.tokens, this.options, (name) =>
        this.moduleRef.get<Connection>(getConnectionToken(name), { strict: false }),
      );
    }
    const handlerSets = new Map(
      planned.map((p) => [p.key, handlerSetOf(p.plan.handlers.map((h) => h.name))]),
    );
    this.balancer = createBalancer(
      handlerSets,
      this.options,
      this.stores,
      this.logger,
      (key) =>
        this.registry.streams
          .find((s) => s.key === key)
          ?.handOver('this instance holds more than its fair share') ?? false,
    );
    for (const { plan, connection, database, key, replaces } of planned) {
      const owners = plan.handlers
        .map((h) => h.owner)
        .filter((owner): owner is ProviderWrapper => owner !== undefined);
      const stream = createCollectionStream({
        plan,
        database,
        key,
        replaces,
        // `historyHeadroom: false` reads nothing from the oplog.
        ...(this.options.historyHeadroom !== false && {
          // Read where the stream reads: its database handle's read preference.
          oldestOplogEntry: () =>
            readOldestOplogEntry(
              oplogStartOf(connection.getClient(), connection.db?.readPreference),
            ),
        }),
        store: this.tokens,
        deadLetters: this.stores.deadLetters,
        options: this.options,
        openCursor: connectionCursorFactory(connection, plan),
        ...(plan.scope.kind === 'collection' && {
          chunks: connectionChunkReader(connection, plan.collection),
        }),
        emit: (event) => this.registry.emit(event),
        handlersReady: this.lifecycle.bootstrapped(owners),
        telemetry,
        balancer: this.balancer,
      });
      this.lifecycle.drainBeforeTeardown(owners, () => this.drain(stream));
      this.registry.streams.push(stream);
      if (stream.headroom) this.headroom.add(connection, plan.connectionName, stream.headroom);
    }
    this.telemetry = telemetry;
    this.stores.onDeadLettersDropped?.((letters) =>
      letters.forEach((l) =>
        telemetry.deadLetterDropped({
          consumer: this.options.consumer,
          database: l.database,
          collection: l.collection,
          handler: l.handler,
        }),
      ),
    );
    telemetry.observe(this.options.consumer, () => this.registry.streams.map((s) => s.status()));
    // A Redis client (or store) injected into forRootAsync must outlive every stream's final save.
    this.lifecycle.drainBeforeTeardown(
      this.explorer.providersOf(CHANGE_STREAM_MODULE_OPTIONS),
      () => this.onModuleDestroy(),
    );
  }

  /**
   * Opens every stream; waits (bounded) until each is listening, so writes made after `init()`
   * are seen. Handlers are called only once their providers finished bootstrapping.
   */
  async onApplicationBootstrap(): Promise<void> {
    const streams = this.registry.streams;
    if (streams.length === 0) return;
    if (process.listenerCount('SIGTERM') === 0) this.logger.log(messages.shutdownHooksOff());
    const storeCheckMs = Math.min(STORE_CHECK_MS, this.options.startupTimeoutMs || STORE_CHECK_MS);
    await Promise.all([
      this.stores.verify(storeCheckMs),
      settlesWithin(
        warnMissingCollections(this.registry.streams, this.databases, this.logger),
        storeCheckMs,
      ),
    ]);
    // A Redis that does not answer (a TLS URL for a plain server, say) must not hold bootstrap for its connect timeouts: the first announcement goes on in the background.
    if (this.balancer) await settlesWithin(this.balancer.start(), storeCheckMs);
    streams.forEach((s) => s.start());
    this.headroom.start();
    const settled = await settlesWithin(
      Promise.all(streams.map((s) => s.whenSettled())),
      this.options.startupTimeoutMs,
    );
    if (!settled) {
      const pending = streams
        .map((s) => s.status())
        .filter((s) => s.state === 'starting' || s.state === 'reconnecting');
      this.logger.warn(
        messages.notOpenAtStartup(
          pending.map((s) => s.key),
          this.options.startupTimeoutMs,
        ),
      );
    }
  }

  /** Nest destroys our (global) module after the app's: streams not drained earlier by their providers' hooks drain here. */
  async onModuleDestroy(): Promise<void> {
    this.headroom.stop();
    await Promise.all(this.registry.streams.map((s) => this.drain(s)));
  }

  /** Runs before mongoose closes its connections (in `onApplicationShutdown`). */
  async beforeApplicationShutdown(): Promise<void> {
    await this.onModuleDestroy();
    if (this.balancer)
      await settlesWithin(this.balancer.stop(), Math.max(MIN_CLOSE_MS, this.timeLeft()));
    this.telemetry?.dispose();
    // The mirror's last copies: positions whose Redis save failed at shutdown are kept there.
    if (this.tokens instanceof MirroredPositionStore)
      await settlesWithin(this.tokens.close(), Math.max(MIN_CLOSE_MS, this.timeLeft()));
    await this.stores.close(Math.max(MIN_CLOSE_MS, this.timeLeft()));
  }

  /**
   * The first drain starts the shutdown of every stream against one deadline (so none is left
   * with the scraps of it), and waits for `stream`'s.
   */
  private drain(stream: CollectionStream): Promise<void> {
    if (this.shutdownDeadline === undefined) {
      this.shutdownDeadline = Date.now() + this.options.shutdownTimeoutMs;
      // Leave the candidate sets now: the other instances' shares grow before the leases are released.
      void this.balancer?.stop();
      this.registry.streams.forEach((s) => void s.stop(this.options.shutdownTimeoutMs));
    }
    return stream.stop(this.timeLeft());
  }

  private timeLeft(): number {
    return Math.max(0, (this.shutdownDeadline ?? Date.now()) - Date.now());
  }
}
