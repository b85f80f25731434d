import { Inject, Injectable } from '@nestjs/common';
import {
  CHANGE_STREAM_RESOLVED_OPTIONS,
  DEFAULT_CONNECTION_NAME,
} from './change-stream.constants.js';
import type { ChangeStreamEvent, ChangeStreamEventListener } from './change-stream.events.js';
import type { ResolvedChangeStreamOptions } from './options/module-options.js';
import type { ChangeStreamStatus } from './interfaces/change-stream-status.interface.js';
import type { DeadLetter } from './interfaces/dead-letter.interface.js';
import type { ChangeEvent } from './common/change-event.js';
import type { CollectionStream } from './stream/collection-stream.js';
import { deadLetterCall } from './stream/dead-letter-call.js';

/** The running streams of this application; inject it to inspect their state or follow their events. */
@Injectable()
export class ChangeStreamRegistry {
  /** @internal The streams this application runs (added by the orchestrator at startup). */
  readonly streams: CollectionStream[] = [];
  /** @internal Streams this instance does not open (`enabled: false`), as their status shows them. */
  readonly disabled: ChangeStreamStatus[] = [];
  /** @internal By stream key: handlers left out of an open stream (`enabled: false`). */
  readonly disabledHandlers = new Map<string, string[]>();
  private readonly listeners = new Set<ChangeStreamEventListener>();

  /** @internal Created by Nest's injector. */
  constructor(
    @Inject(CHANGE_STREAM_RESOLVED_OPTIONS) private readonly options: ResolvedChangeStreamOptions,
  ) {}

  /** Subscribe to state changes, history-lost and dead-letter events; returns the unsubscribe function. */
  onEvent(listener: ChangeStreamEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A snapshot of every stream. */
  getStatuses(): ChangeStreamStatus[] {
    return [
      ...this.streams.map((s) => {
        const disabledHandlers = this.disabledHandlers.get(s.key);
        return disabledHandlers ? { ...s.status(), disabledHandlers } : s.status();
      }),
      ...this.disabled,
    ];
  }

  /**
   * The stream of `collection` on `connectionName` (default: the module's `connectionName`, else
   * the default connection): in `streams: 'database'` mode, the database stream that serves it.
   * A stream's key finds it too (the only way to a deployment stream, whose collections are in
   * other databases).
   */
  getStatus(collection: string, connectionName?: string): ChangeStreamStatus | undefined {
    const connection = connectionName ?? this.options.connectionName ?? DEFAULT_CONNECTION_NAME;
    const statuses = this.getStatuses();
    return (
      statuses.find(
        (s) =>
          s.databases === undefined &&
          (s.collection === collection || s.collections.includes(collection)) &&
          s.connectionName === connection,
      ) ?? statuses.find((s) => s.key === collection)
    );
  }

  /** @internal Tells every listener; a listener's bug must not break a stream. */
  emit(event: ChangeStreamEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not break a stream.
      }
    }
  }

  /**
   * @internal A dead-letter replay: the call of the handler that failed on `letter`, under its
   * stream's lease and in its document's order among the live events (never beside a newer one);
   * undefined when this application has no such handler.
   */
  replayOf(letter: DeadLetter): (() => Promise<unknown>) | undefined {
    const stream = this.streams.find((s) => s.key === letter.streamKey);
    const handler = stream?.plan.handlers.find((h) => h.name === letter.handler);
    if (!stream || !handler) return undefined;
    const call = deadLetterCall(handler, letter, this.options.consumer);
    return () => stream.replayInOrder(letter.change as ChangeEvent, call);
  }
}
