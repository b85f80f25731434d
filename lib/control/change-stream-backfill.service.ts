import { Inject, Injectable } from '@nestjs/common';
import {
  CHANGE_STREAM_RESOLVED_OPTIONS,
  DEFAULT_CONNECTION_NAME,
} from '../change-stream.constants.js';
import { messages } from '../change-stream.messages.js';
import { ChangeStreamRegistry } from '../change-stream.registry.js';
import type { BackfillStatus } from '../interfaces/backfill.interface.js';
import type { ResolvedChangeStreamOptions } from '../options/module-options.js';
import type { CollectionStream } from '../stream/collection-stream.js';
import { servesCollection } from '../stream/stream-scope.js';

/** Which stream (and handler) a backfill request is about. */
export interface BackfillTarget {
  /** `ClassName.methodName`; default: every handler of the stream declared with `backfill`. */
  handler?: string;
  /** Default: the module's `connectionName`, else the default connection. */
  connectionName?: string;
}

/**
 * Backfills on demand (a re-index after a mapping change): start one for a stream's handlers
 * declared with `backfill`, follow it, cancel it. It runs under the stream's lease, so only the
 * instance that holds the stream accepts a request; the others refuse with an error that names
 * the holder.
 */
@Injectable()
export class ChangeStreamBackfill {
  /** @internal Created by Nest's injector. */
  constructor(
    private readonly registry: ChangeStreamRegistry,
    @Inject(CHANGE_STREAM_RESOLVED_OPTIONS) private readonly options: ResolvedChangeStreamOptions,
  ) {}

  /**
   * Starts a backfill of `collection` for `target.handler` (or every handler declared with
   * `backfill`): they get every document again, as `BackfillEvent`s, next to the live changes.
   * Throws while another run is in progress, or when this instance does not hold the stream.
   */
  start(collection: string, target: BackfillTarget = {}): BackfillStatus {
    this.refuseDisabled(collection, target);
    return this.stream(collection, target).backfillAction((backfill) => {
      const asking = backfill.asking;
      const handlers = target.handler ? [target.handler] : asking;
      if (handlers.length === 0 || handlers.some((h) => !asking.includes(h)))
        throw new Error(
          messages.backfillNoHandler(this.keyOf(collection, target), target.handler, asking),
        );
      backfill.start(handlers);
      return backfill.status()!;
    });
  }

  /** Cancels the run in progress (its handlers then count as done); null when none runs. */
  cancel(collection: string, target: BackfillTarget = {}): BackfillStatus | null {
    return this.stream(collection, target).backfillAction((backfill) => {
      const status = backfill.status();
      return backfill.cancel() ? status : null;
    });
  }

  /** The run in progress on this instance (as `getStatus().backfill`), or null. */
  progress(collection: string, target: BackfillTarget = {}): BackfillStatus | null {
    return this.stream(collection, target).status().backfill;
  }

  private stream(collection: string, target: BackfillTarget): CollectionStream {
    const connection = this.connectionOf(target);
    const stream = this.registry.streams.find(
      (s) => servesCollection(s.plan, collection) && s.plan.connectionName === connection,
    );
    if (!stream) throw new Error(messages.backfillNoStream(collection, connection));
    return stream;
  }

  /** A handler (or stream) disabled on this instance (`enabled: false`) is refused saying so, not as undeclared or unknown. */
  private refuseDisabled(collection: string, target: BackfillTarget): void {
    const connection = this.connectionOf(target);
    const same = (s: { collection: string; connectionName: string }) =>
      s.collection === collection && s.connectionName === connection;
    const running = this.registry.streams.find((s) => same(s.plan));
    const { handler } = target;
    if (running) {
      if (handler && this.registry.disabledHandlers.get(running.key)?.includes(handler))
        throw new Error(messages.backfillDisabled(running.key, handler, 'handler'));
      return;
    }
    const idle = this.registry.disabled.find(same);
    if (!idle) return;
    const why = !this.options.enabled
      ? 'module'
      : handler && !idle.disabledHandlers?.includes(handler)
        ? null // not a handler of this stream: refused below as such
        : handler
          ? 'handler'
          : 'stream';
    if (why) throw new Error(messages.backfillDisabled(idle.key, handler, why));
  }

  private keyOf(collection: string, target: BackfillTarget): string {
    return this.stream(collection, target).key;
  }

  private connectionOf(target: BackfillTarget): string {
    return target.connectionName ?? this.options.connectionName ?? DEFAULT_CONNECTION_NAME;
  }
}
