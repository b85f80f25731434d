import { afterEach, describe, expect, it } from '@jest/globals';
import { metrics, trace } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { ChangeStreamStatus } from '../../lib/index.js';
import { ChangeStreamTelemetry } from '../../lib/telemetry/change-stream-telemetry.js';
import type { HandlerCall } from '../../lib/telemetry/telemetry-attributes.js';

/** Collects on demand, like a Prometheus scrape. */
class PullReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

type Point = { attributes: Record<string, unknown>; value: unknown };
const points = (collected: ResourceMetrics, name: string): Point[] =>
  collected.scopeMetrics
    .flatMap((s) => s.metrics)
    .filter((m) => m.descriptor.name === name)
    .flatMap((m) => m.dataPoints as Point[]);

const stream = { consumer: 'svc', database: 'shop', collection: 'orders' };
const labels = { ...stream, handler: 'Listener.onOrder', operationType: 'insert' };
const call: HandlerCall = { ...labels, eventId: '8263A1', attempt: 2 };
const streamLabels = {
  'change_stream.consumer': 'svc',
  'db.namespace': 'shop',
  'db.collection.name': 'orders',
};

/** A meter provider registered before the telemetry loads, as a user's main.ts registers its SDK. */
function withMeter() {
  const reader = new PullReader();
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  return async () => (await reader.collect()).resourceMetrics;
}

function withTracer() {
  const spans = new InMemorySpanExporter();
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
  );
  return spans;
}

afterEach(() => {
  metrics.disable();
  trace.disable();
});

describe('ChangeStreamTelemetry', () => {
  it('is off when disabled, and collects nothing without an SDK; handler calls still run and return their result', async () => {
    for (const telemetry of [
      await ChangeStreamTelemetry.load(false),
      await ChangeStreamTelemetry.load(true),
    ]) {
      expect({ metering: telemetry.metering, active: telemetry.active }).toEqual({
        metering: false,
        active: false,
      });
      expect(await telemetry.handlerCall(call, () => 'result')).toBe('result');
      await expect(
        telemetry.handlerCall(call, () => Promise.reject(new Error('boom'))),
      ).rejects.toThrow('boom');
    }
    expect(await ChangeStreamTelemetry.load(false)).toBe(ChangeStreamTelemetry.off);
  });

  it('counts events, failures, retries, dead letters, reconnects and position writes, by stream, handler, operation and outcome', async () => {
    const collect = withMeter();
    const telemetry = await ChangeStreamTelemetry.load(true);
    expect({ metering: telemetry.metering, active: telemetry.active }).toEqual({
      metering: true,
      active: true,
    });
    telemetry.handled(labels);
    telemetry.handled(labels);
    telemetry.handled({ ...labels, operationType: 'update' });
    telemetry.handlerFailed(labels);
    telemetry.retried(labels);
    telemetry.deadLettered(labels);
    telemetry.reconnected(stream);
    telemetry.positionWritten(stream, 'stored', 4);
    telemetry.positionWritten(stream, 'stored', 6);
    telemetry.positionWritten(stream, 'refused', 1);
    const collected = await collect();
    const values = (name: string) => points(collected, name).map((p) => [p.attributes, p.value]);
    const handlerLabels = { ...streamLabels, 'change_stream.handler': 'Listener.onOrder' };
    expect(values('change_stream.events')).toEqual([
      [{ ...handlerLabels, 'change_stream.operation_type': 'insert' }, 2],
      [{ ...handlerLabels, 'change_stream.operation_type': 'update' }, 1],
    ]);
    expect(values('change_stream.handler.errors')).toEqual([
      [{ ...handlerLabels, 'change_stream.operation_type': 'insert' }, 1],
    ]);
    expect(values('change_stream.handler.retries')).toEqual([
      [{ ...handlerLabels, 'change_stream.operation_type': 'insert' }, 1],
    ]);
    expect(values('change_stream.dead_letters')).toEqual([
      [{ ...handlerLabels, 'change_stream.operation_type': 'insert' }, 1],
    ]);
    expect(values('change_stream.reconnects')).toEqual([[streamLabels, 1]]);
    expect(values('change_stream.position.writes')).toEqual([
      [{ ...streamLabels, 'change_stream.outcome': 'stored' }, 2],
      [{ ...streamLabels, 'change_stream.outcome': 'refused' }, 1],
    ]);
    const writeDurations = points(collected, 'change_stream.position.write.duration') as Array<
      Point & { value: { count: number; sum: number } }
    >;
    expect(
      writeDurations.map((p) => [
        p.attributes['change_stream.outcome'],
        p.value.count,
        p.value.sum,
      ]),
    ).toEqual([
      ['stored', 2, 0.01],
      ['refused', 1, 0.001],
    ]);
  });

  it('counts batch handler calls and records their sizes, by handler', async () => {
    const collect = withMeter();
    const telemetry = await ChangeStreamTelemetry.load(true);
    telemetry.batchCalled(labels, 500);
    telemetry.batchCalled({ ...labels, operationType: 'update' } as never, 20);
    const collected = await collect();
    const handlerLabels = { ...streamLabels, 'change_stream.handler': 'Listener.onOrder' };
    expect(points(collected, 'change_stream.batches').map((p) => [p.attributes, p.value])).toEqual([
      [handlerLabels, 2],
    ]);
    const sizes = points(collected, 'change_stream.batch.size') as Array<
      Point & { value: { count: number; sum: number } }
    >;
    expect(sizes.map((p) => [p.attributes, p.value.count, p.value.sum])).toEqual([
      [handlerLabels, 2, 520],
    ]);
  });

  it('times each handler call in seconds, by outcome', async () => {
    const collect = withMeter();
    const telemetry = await ChangeStreamTelemetry.load(true);
    await telemetry.handlerCall(call, () => undefined);
    await expect(
      telemetry.handlerCall(call, () => Promise.reject(new Error('boom'))),
    ).rejects.toThrow('boom');
    await telemetry.handlerCall(call, async () => undefined);
    const durations = points(await collect(), 'change_stream.handler.duration') as Array<
      Point & { value: { count: number } }
    >;
    expect(
      durations.map((p) => [p.attributes['change_stream.outcome'], p.value.count]).sort(),
    ).toEqual([
      ['error', 1],
      ['ok', 2],
    ]);
  });

  it("gauges each stream's lag (seconds), events in flight and unsaved, and role, reading them no more once disposed", async () => {
    const collect = withMeter();
    const telemetry = await ChangeStreamTelemetry.load(true);
    const status = {
      connectionName: 'default',
      database: 'shop',
      collection: 'orders',
      lagMs: 1500,
      inFlightEvents: 3,
      unsavedEvents: 7,
      role: 'standby',
      state: 'paused',
    } as ChangeStreamStatus;
    const unknown = {
      ...status,
      collection: 'payments',
      lagMs: null,
      role: null,
      state: 'open',
    } as ChangeStreamStatus;
    let reads = 0;
    telemetry.observe('svc', () => (reads++, [status, unknown]));
    const gauges = async () => {
      const collected = await collect();
      return Object.fromEntries(
        [
          'change_stream.lag',
          'change_stream.in_flight',
          'change_stream.unsaved',
          'change_stream.active',
          'change_stream.paused',
        ].map((name) => [
          name,
          points(collected, name).map((p) => [p.attributes['db.collection.name'], p.value]),
        ]),
      );
    };
    expect(await gauges()).toEqual({
      'change_stream.lag': [['orders', 1.5]],
      'change_stream.in_flight': [
        ['orders', 3],
        ['payments', 3],
      ],
      'change_stream.unsaved': [
        ['orders', 7],
        ['payments', 7],
      ],
      'change_stream.active': [['orders', 0]],
      'change_stream.paused': [
        ['orders', 1],
        ['payments', 0],
      ],
    });
    expect(points(await collect(), 'change_stream.lag')[0].attributes).toEqual({
      ...streamLabels,
      'change_stream.connection': 'default',
    });
    const readsBefore = reads;
    expect(readsBefore).toBeGreaterThan(0);
    telemetry.dispose();
    await collect();
    expect(reads).toBe(readsBefore); // a closed app's streams are no longer read
  });

  it("gauges each stream's history headroom and oplog window (seconds), and nothing while they are unknown", async () => {
    const collect = withMeter();
    const telemetry = await ChangeStreamTelemetry.load(true);
    const known = {
      connectionName: 'default',
      database: 'shop',
      collection: 'orders',
      historyHeadroomMs: 5_400_000,
      oplogWindowMs: 7_200_000,
    } as ChangeStreamStatus;
    const lost = {
      ...known,
      collection: 'ledger',
      historyHeadroomMs: -600_000,
    } as ChangeStreamStatus;
    const unknown = {
      ...known,
      collection: 'payments',
      historyHeadroomMs: null,
      oplogWindowMs: null,
    } as ChangeStreamStatus;
    telemetry.observe('svc', () => [known, lost, unknown]);
    const collected = await collect();
    const values = (name: string) =>
      points(collected, name).map((p) => [p.attributes['db.collection.name'], p.value]);
    expect(values('change_stream.history_headroom')).toEqual([
      ['orders', 5400],
      ['ledger', -600],
    ]);
    expect(values('change_stream.oplog_window')).toEqual([
      ['orders', 7200],
      ['ledger', 7200],
    ]);
    telemetry.dispose();
  });

  it('traces a handler call once a tracer provider is registered (even after it loaded): a consumer span per attempt, errors marked, no document', async () => {
    const telemetry = await ChangeStreamTelemetry.load(true);
    expect(telemetry.active).toBe(false);
    const spans = withTracer();
    expect(telemetry.active).toBe(true);
    await expect(
      telemetry.handlerCall(call, () => Promise.reject(new Error('flaky'))),
    ).rejects.toThrow('flaky');
    expect(await telemetry.handlerCall({ ...call, attempt: 3 }, () => 'ok')).toBe('ok');
    const finished = spans.getFinishedSpans();
    expect(
      finished.map((s) => [
        s.name,
        s.kind,
        s.status.code,
        s.status.message,
        s.attributes['change_stream.attempt'],
      ]),
    ).toEqual([
      ['change_stream orders insert', 4, 2, 'flaky', 2], // SpanKind.CONSUMER, SpanStatusCode.ERROR
      ['change_stream orders insert', 4, 0, undefined, 3],
    ]);
    expect(finished[0].events.map((e) => e.name)).toEqual(['exception']);
    expect(finished[1].attributes).toEqual({
      ...streamLabels,
      'change_stream.handler': 'Listener.onOrder',
      'change_stream.operation_type': 'insert',
      'db.system': 'mongodb',
      'change_stream.event_id': '8263A1',
      'change_stream.attempt': 3,
    });
  });
});
