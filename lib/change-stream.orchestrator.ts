import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { getConnectionToken } from '@nestjs/mongoose';
import type { Connection } from 'mongoose';
import { CHANGE_STREAM_RESOLVED_OPTIONS, CHANGE_STREAM_STORES, DEFAULT_CONNECTION_NAME } from './change-stream.constants.js';
import { ChangeStreamConfigError } from './change-stream.errors.js';
import { ChangeStreamExplorer } from './change-stream.explorer.js';
import { messages } from './change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from './change-stream.options.js';
import { ChangeStreamRegistry } from './change-stream.registry.js';
import { Checkpointer } from './checkpoint/checkpointer.js';
import { settlesWithin } from './stream/backoff.js';
import { CollectionStream } from './stream/collection-stream.js';
import { planStreams, type StreamPlan } from './stream/stream-plan.js';
import type { ChangeStreamStores } from './stores.factory.js';
import { connectionCursorFactory } from './stream/change-cursor.js';
import { checkpointKey } from './token-store/checkpoint-key.js';

/** Wires discovery to streams and runs them with the application's lifecycle. */
@Injectable()
export class ChangeStreamOrchestrator implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('ChangeStreamModule');

  constructor(
    private readonly explorer: ChangeStreamExplorer,
    private readonly registry: ChangeStreamRegistry,
    private readonly moduleRef: ModuleRef,
    @Inject(CHANGE_STREAM_RESOLVED_OPTIONS) private readonly options: ResolvedChangeStreamOptions,
    @Inject(CHANGE_STREAM_STORES) private readonly stores: ChangeStreamStores,
  ) {}

  /** Discovery and every configuration check happen here, so a bad setup fails `app.init()`. */
  onModuleInit(): void {
    const handlers = this.explorer.explore(this.options.connectionName ?? DEFAULT_CONNECTION_NAME);
    const keys = new Map<string, StreamPlan>();
    for (const plan of planStreams(handlers)) {
      const connection = this.resolveConnection(plan);
      const database = connection.db?.databaseName ?? connection.name;
      const key = checkpointKey(this.options.keyPrefix, this.options.consumer, database, plan.collection);
      const clash = keys.get(key);
      if (clash) throw new ChangeStreamConfigError(messages.keyClash(key, `${database}.${plan.collection}`, clash.connectionName, plan.connectionName));
      keys.set(key, plan);
      this.registry.add(
        new CollectionStream({
          plan,
          database,
          deadLetters: this.stores.deadLetters,
          checkpointer: new Checkpointer(this.stores.tokens, key, this.options.checkpoint),
          options: this.options,
          openCursor: connectionCursorFactory(connection, plan.collection),
          emit: (event) => this.registry.emit(event),
        }),
      );
    }
  }

  /** Opens every stream; waits (bounded) until each is listening, so writes made after `init()` are seen. */
  async onApplicationBootstrap(): Promise<void> {
    const streams = this.registry.all();
    streams.forEach((s) => s.start());
    const settled = await settlesWithin(Promise.all(streams.map((s) => s.whenSettled())), this.options.startupTimeoutMs);
    if (!settled) {
      const pending = this.registry.getStatuses().filter((s) => s.state === 'starting' || s.state === 'reconnecting');
      this.logger.warn(messages.notOpenAtStartup(pending.map((s) => s.key), this.options.startupTimeoutMs));
    }
  }

  /** Runs before mongoose closes its connections (in `onApplicationShutdown`). */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all(this.registry.all().map((s) => s.stop(this.options.shutdownTimeoutMs)));
    await this.stores.close();
  }

  private resolveConnection(plan: StreamPlan): Connection {
    const name = plan.connectionName === DEFAULT_CONNECTION_NAME ? undefined : plan.connectionName;
    try {
      return this.moduleRef.get<Connection>(getConnectionToken(name), { strict: false });
    } catch {
      throw new ChangeStreamConfigError(
        messages.missingConnection(plan.connectionName, plan.handlers.map((h) => `@OnChange('${plan.collection}') on ${h.name}`)),
      );
    }
  }
}
