import { Injectable } from '@nestjs/common';
import type { ChangeStreamEvent, ChangeStreamEventListener } from './change-stream.events.js';
import type { CollectionStream } from './stream/collection-stream.js';

/** Internal: the streams this application runs and the event fan-out. Not exported from the package. */
@Injectable()
export class ChangeStreamRuntime {
  readonly streams: CollectionStream[] = [];
  private readonly listeners = new Set<ChangeStreamEventListener>();

  subscribe(listener: ChangeStreamEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: ChangeStreamEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not break a stream.
      }
    }
  }
}
