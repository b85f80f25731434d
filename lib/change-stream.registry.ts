import { Injectable } from '@nestjs/common';
import type { ChangeStreamEvent, ChangeStreamEventListener } from './change-stream.events.js';
import type { ChangeStreamStatus } from './interfaces/change-stream-status.interface.js';
import type { CollectionStream } from './stream/collection-stream.js';

/** The running streams of this application; inject it to inspect their state. */
@Injectable()
export class ChangeStreamRegistry {
  private readonly streams: CollectionStream[] = [];
  private readonly listeners = new Set<ChangeStreamEventListener>();

  /** Subscribe to state changes, history-lost and dead-letter events; returns the unsubscribe function. */
  onEvent(listener: ChangeStreamEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** @internal */
  emit(event: ChangeStreamEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not break a stream.
      }
    }
  }

  /** @internal */
  add(stream: CollectionStream): void {
    this.streams.push(stream);
  }

  /** @internal */
  all(): readonly CollectionStream[] {
    return this.streams;
  }

  /** A snapshot of every stream. */
  getStatuses(): ChangeStreamStatus[] {
    return this.streams.map((s) => s.status());
  }

  /** The stream of `collection` on `connectionName` (the module's default connection when omitted). */
  getStatus(collection: string, connectionName?: string): ChangeStreamStatus | undefined {
    return this.getStatuses().find(
      (s) => s.collection === collection && (connectionName === undefined || s.connectionName === connectionName),
    );
  }
}
