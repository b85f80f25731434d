import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import type { ChangeOf } from '../decorators/on-change.decorator.js';
import type { DeadLetter } from '../interfaces/dead-letter.interface.js';
import { type ChangeInput, completeChange } from './change-events.js';
import type { ChangeOutcome } from './change-outcome.js';
import { TestingStreams } from './testing-streams.js';

export interface EmitOptions {
  /** The stream's connection name (default: the testing module's `connectionName`, else the default connection). */
  connectionName?: string;
}

/**
 * Pushes change events to the application's `@OnChange` handlers as production does (same
 * discovery, routing, retries and failure policies), without MongoDB or Redis, and reports what
 * happened to each. Get it from a testing module that imports `ChangeStreamTestingModule`.
 */
@Injectable()
export class ChangeStreamTester {
  constructor(private readonly streams: TestingStreams) {}

  /**
   * Delivers `change` to the stream of `collection` and resolves once every interested handler
   * is done (retries included). Events of one stream are handled one at a time in the order they
   * were emitted, awaited or not; streams are independent. `change` is a full event (see
   * `changeEvents`) or the part of one your handler reads (see `ChangeInput`). Rejects when no
   * handler watches `collection`, or when the event is incomplete or of another namespace.
   */
  async emit<T extends mongo.Document = any>(
    collection: string,
    change: ChangeInput<T>,
    options: EmitOptions = {},
  ): Promise<ChangeOutcome<ChangeOf<T>>> {
    const stream = this.streams.find(collection, options.connectionName);
    return this.streams.deliver(
      stream,
      completeChange(change, stream.database, collection) as ChangeOf<T>,
    );
  }

  /**
   * `emit` for each event in order; validates all of them before delivering any. `@OnChangeBatch`
   * handlers get these events in batches (cut at their `maxSize` and around an event without a
   * document), as if the stream had read them together; `emit` gives them a batch of one.
   */
  async emitMany<T extends mongo.Document = any>(
    collection: string,
    changes: ReadonlyArray<ChangeInput<T>>,
    options: EmitOptions = {},
  ): Promise<Array<ChangeOutcome<ChangeOf<T>>>> {
    const stream = this.streams.find(collection, options.connectionName);
    const events = changes.map(
      (change) => completeChange(change, stream.database, collection) as ChangeOf<T>,
    );
    return this.streams.deliverMany(stream, events);
  }

  /** The dead letters stored so far, oldest first, as `ChangeStreamDeadLetters.list()` returns them (EJSON round trip). */
  deadLetters(): Promise<DeadLetter[]> {
    return this.streams.deadLetterStore.list();
  }

  /**
   * Models a restart after a handler failed under `'stop'`: the stopped streams deliver again.
   * In production the event that stopped the stream comes first after a restart: emit it again.
   * Dead letters are kept, as they are in Redis.
   */
  restart(): void {
    this.streams.all().forEach((stream) => (stream.failure = null));
  }
}
