import { Inject, Injectable } from '@nestjs/common';
import { CHANGE_STREAM_RESOLVED_OPTIONS, DEFAULT_CONNECTION_NAME } from './change-stream.constants.js';
import type { ChangeStreamEventListener } from './change-stream.events.js';
import type { ResolvedChangeStreamOptions } from './options/module-options.js';
import { ChangeStreamRuntime } from './change-stream.runtime.js';
import type { ChangeStreamStatus } from './interfaces/change-stream-status.interface.js';

/** The running streams of this application; inject it to inspect their state or follow their events. */
@Injectable()
export class ChangeStreamRegistry {
  /** @internal Created by Nest's injector. */
  constructor(
    private readonly runtime: ChangeStreamRuntime,
    @Inject(CHANGE_STREAM_RESOLVED_OPTIONS) private readonly options: ResolvedChangeStreamOptions,
  ) {}

  /** Subscribe to state changes, history-lost and dead-letter events; returns the unsubscribe function. */
  onEvent(listener: ChangeStreamEventListener): () => void {
    return this.runtime.subscribe(listener);
  }

  /** A snapshot of every stream. */
  getStatuses(): ChangeStreamStatus[] {
    return this.runtime.streams.map((s) => s.status());
  }

  /** The stream of `collection` on `connectionName` (default: the module's `connectionName`, else the default connection). */
  getStatus(collection: string, connectionName?: string): ChangeStreamStatus | undefined {
    const connection = connectionName ?? this.options.connectionName ?? DEFAULT_CONNECTION_NAME;
    return this.getStatuses().find((s) => s.collection === collection && s.connectionName === connection);
  }
}
