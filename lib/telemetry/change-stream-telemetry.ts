import type * as Otel from '@opentelemetry/api';
import type { ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';
import { STREAM_GAUGES } from './stream-gauges.js';
import {
  callAttributes,
  COUNTERS,
  type CounterName,
  type HandlerCall,
  labelsOf,
  type PositionWriteOutcome,
  spanAttributes,
  streamAttributes,
  type StreamLabels,
} from './telemetry-attributes.js';

type Api = typeof Otel;

/**
 * Metrics and traces through the OpenTelemetry API (`@opentelemetry/api`, an optional peer):
 * a no-op without it, or without an SDK registered before the application starts. Counters are
 * kept as plain numbers and reported by observable instruments, and callers skip building labels
 * unless `metering`; a span is started per handler call only when a tracer is registered.
 */
export class ChangeStreamTelemetry {
  static readonly off = new ChangeStreamTelemetry(undefined);

  private readonly counters = new Map<
    string,
    { name: CounterName; attributes: Otel.Attributes; value: number }
  >();
  private readonly tracer: Otel.Tracer | undefined;
  private readonly noopTracerProvider: Otel.TracerProvider | undefined;
  private readonly handlerDuration: Otel.Histogram | undefined;
  private readonly writeDuration: Otel.Histogram | undefined;
  private readonly batchSize: Otel.Histogram | undefined;
  /** A meter provider was registered (before the application started): metrics are collected. */
  readonly metering: boolean = false;
  /** Observable instruments and their callbacks, removed at shutdown (a closed app must not be read). */
  private readonly observers: Array<{
    instrument: Otel.Observable;
    callback: Otel.ObservableCallback;
  }> = [];

  private constructor(private readonly api: Api | undefined) {
    if (!api) return;
    const meter = api.metrics.getMeter('nestjs-change-streams');
    this.metering = meter !== api.createNoopMeter();
    this.tracer = api.trace.getTracer('nestjs-change-streams');
    this.noopTracerProvider = new api.ProxyTracerProvider().getDelegate();
    // Seconds, from half a millisecond to a minute: the SDK's default buckets (0, 5, 10, … 10000) suit milliseconds.
    const advice = {
      explicitBucketBoundaries: [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
      ],
    };
    this.handlerDuration = meter.createHistogram('change_stream.handler.duration', {
      unit: 's',
      description: 'Duration of each handler call (attempt)',
      advice,
    });
    this.writeDuration = meter.createHistogram('change_stream.position.write.duration', {
      unit: 's',
      description: 'Latency of position writes',
      advice,
    });
    this.batchSize = meter.createHistogram('change_stream.batch.size', {
      unit: '{event}',
      description: 'Events per @OnChangeBatch call (attempt)',
      advice: { explicitBucketBoundaries: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] },
    });
    if (!this.metering) return;
    for (const [name, description] of Object.entries(COUNTERS) as Array<[CounterName, string]>) {
      this.observeWith(meter.createObservableCounter(name, { description }), (result) => {
        for (const counter of this.counters.values())
          if (counter.name === name) result.observe(counter.value, counter.attributes);
      });
    }
  }

  /** Loads `@opentelemetry/api` when installed (and `enabled`); else telemetry is off. */
  static async load(enabled: boolean): Promise<ChangeStreamTelemetry> {
    if (!enabled) return ChangeStreamTelemetry.off;
    try {
      return new ChangeStreamTelemetry(await import('@opentelemetry/api'));
    } catch {
      return ChangeStreamTelemetry.off;
    }
  }

  /** Gauges read from the streams' statuses at collection time (`STREAM_GAUGES`). */
  observe(consumer: string, statuses: () => ChangeStreamStatus[]): void {
    if (!this.metering || !this.api) return;
    const meter = this.api.metrics.getMeter('nestjs-change-streams');
    for (const { name, description, unit, read } of STREAM_GAUGES)
      this.observeWith(meter.createObservableGauge(name, { description, unit }), (result) => {
        for (const status of statuses()) {
          const value = read(status);
          if (value !== null) result.observe(value, streamAttributes(consumer, status));
        }
      });
  }

  /** Stops reporting (application shutdown): the callbacks would otherwise keep the closed app alive and readable. */
  dispose(): void {
    this.observers
      .splice(0)
      .forEach(({ instrument, callback }) => instrument.removeCallback(callback));
  }

  private observeWith(instrument: Otel.Observable, callback: Otel.ObservableCallback): void {
    instrument.addCallback(callback);
    this.observers.push({ instrument, callback });
  }

  /** Something collects: a meter provider was registered, or a tracer provider is now. Callers skip building `HandlerCall`s otherwise. */
  get active(): boolean {
    return this.metering || (this.api !== undefined && this.tracing());
  }

  /** Runs one handler call in a span (when a tracer is registered) and records its duration and outcome. */
  async handlerCall<T>(call: HandlerCall, run: () => T | Promise<T>): Promise<T> {
    if (!this.api) return run();
    const started = performance.now();
    // Runs the call and records its duration and outcome; `onError` sees a failure first.
    const measured = async (onError?: (error: unknown) => void): Promise<T> => {
      let outcome: 'ok' | 'error' = 'error';
      try {
        const result = await run();
        outcome = 'ok';
        return result;
      } catch (error) {
        onError?.(error);
        throw error;
      } finally {
        if (this.metering)
          this.handlerDuration!.record((performance.now() - started) / 1000, {
            ...callAttributes(call),
            'change_stream.outcome': outcome,
          });
      }
    };
    if (!this.tracing()) return measured();
    const { SpanKind, SpanStatusCode } = this.api;
    return this.tracer!.startActiveSpan(
      `change_stream ${call.collection} ${call.operationType}`,
      { kind: SpanKind.CONSUMER, attributes: spanAttributes(call) },
      async (span) => {
        try {
          return await measured((error) => {
            span.recordException(error as Error);
            span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
          });
        } finally {
          span.end();
        }
      },
    );
  }

  /** A handler finished an event (its failure recorded per policy counts too). */
  handled(call: Omit<HandlerCall, 'eventId' | 'attempt'>): void {
    this.count('change_stream.events', call);
  }

  /** An `@OnChangeBatch` call (attempt) with `size` events: its size, and one more batch call. */
  batchCalled(
    call: Omit<HandlerCall, 'eventId' | 'attempt' | 'operationType'>,
    size: number,
  ): void {
    if (!this.metering) return;
    // By handler only: a batch mixes operation types.
    const { consumer, database, collection, handler } = call;
    const labels = { consumer, database, collection, handler };
    this.count('change_stream.batches', labels);
    this.batchSize!.record(size, labelsOf(labels));
  }

  handlerFailed(call: Omit<HandlerCall, 'eventId' | 'attempt'>): void {
    this.count('change_stream.handler.errors', call);
  }

  retried(call: Omit<HandlerCall, 'eventId' | 'attempt'>): void {
    this.count('change_stream.handler.retries', call);
  }

  deadLettered(call: Omit<HandlerCall, 'eventId' | 'attempt'>): void {
    this.count('change_stream.dead_letters', call);
  }

  /** A dead letter dropped for the store's retention (its event is gone for good). */
  deadLetterDropped(letter: StreamLabels & { handler: string }): void {
    this.count('change_stream.dead_letters.dropped', letter);
  }

  /** Documents a backfill covered (its chunks were acknowledged). */
  backfilled(stream: StreamLabels, documents: number): void {
    this.count('change_stream.backfill.documents', stream, documents);
  }

  reconnected(stream: StreamLabels): void {
    this.count('change_stream.reconnects', stream);
  }

  positionWritten(stream: StreamLabels, outcome: PositionWriteOutcome, ms: number): void {
    if (!this.metering) return;
    this.count('change_stream.position.writes', { ...stream, outcome });
    this.writeDuration!.record(ms / 1000, labelsOf({ ...stream, outcome }));
  }

  private tracing(): boolean {
    const provider = this.api!.trace.getTracerProvider() as Otel.ProxyTracerProvider;
    return (
      typeof provider.getDelegate !== 'function' ||
      provider.getDelegate() !== this.noopTracerProvider
    );
  }

  private count(
    name: CounterName,
    labels: StreamLabels & { handler?: string; operationType?: string; outcome?: string },
    by = 1,
  ): void {
    if (!this.metering) return;
    const id = `${name}|${labels.consumer}|${labels.database}|${labels.collection}|${labels.handler ?? ''}|${labels.operationType ?? ''}|${labels.outcome ?? ''}`;
    const counter = this.counters.get(id);
    if (counter) counter.value += by;
    else this.counters.set(id, { name, attributes: labelsOf(labels), value: by });
  }
}
