import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { metrics, trace } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import {
  type ChangeContext,
  type ChangeOf,
  ChangeStreamHealthIndicator,
  ChangeStreamRegistry,
  OnChange,
} from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';

/** Collects on demand, like a Prometheus scrape. */
class PullReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

interface Shipment {
  _id: string;
  flaky?: boolean;
  secret?: string;
}

/** Fails the first attempt of documents with `flaky: true`; waits `slowMs` per event when set. */
let slowMs = 0;
@Injectable()
class ShipmentListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('shipments', { operationTypes: ['insert', 'update'] })
  async onShipment(change: ChangeOf<Shipment, 'insert' | 'update'>, context: ChangeContext) {
    if (change.fullDocument?.flaky && context.attempt === 1) throw new Error('flaky shipment');
    if (slowMs) await new Promise((resolve) => setTimeout(resolve, slowMs));
    this.log.record('shipment', change, context.attempt);
  }
}

type Point = { attributes: Record<string, unknown>; value: unknown };

function points(collected: ResourceMetrics, name: string): Point[] {
  return collected.scopeMetrics
    .flatMap((s) => s.metrics)
    .filter((m) => m.descriptor.name === name)
    .flatMap((m) => m.dataPoints as Point[]);
}

describe('metrics, traces and lag (real MongoDB and Redis, OpenTelemetry SDK in memory)', () => {
  const reader = new PullReader();
  const spans = new InMemorySpanExporter();
  const scope = new TestScope();

  beforeAll(() => {
    // Registered before any app starts, as a user's main.ts would.
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
    );
  });
  afterAll(() => {
    metrics.disable();
    trace.disable();
  });
  afterEach(async () => {
    slowMs = 0;
    spans.reset();
    await scope.closeAll();
  });

  it('counts events by handler and operation, errors, retries and position writes; times handlers; gauges lag, in flight and role', async () => {
    const dbName = uniqueName('otel');
    const app = await scope.app({
      dbName,
      consumer: uniqueName('svc'),
      providers: [ShipmentListener],
    });
    const probe = await scope.probe(dbName);
    await probe
      .collection('shipments')
      .insertMany([{ _id: 's1' as never }, { _id: 's2' as never, flaky: true }]);
    await probe.collection('shipments').updateOne({ _id: 's1' as never }, { $set: { n: 1 } });
    await eventually('three events handled', () => app.events.of('shipment').length === 3);
    await eventually(
      'position stored',
      async () => (await probe.storedToken(app.spec.consumer, 'shipments')) !== null,
    );

    const { resourceMetrics } = await reader.collect();
    const ofThisDb = (ps: Point[]) => ps.filter((p) => p.attributes['db.namespace'] === dbName);
    const events = ofThisDb(points(resourceMetrics, 'change_stream.events'));
    expect(
      events
        .map((p) => [
          p.attributes['change_stream.handler'],
          p.attributes['change_stream.operation_type'],
          p.value,
        ])
        .sort(),
    ).toEqual([
      ['ShipmentListener.onShipment', 'insert', 2],
      ['ShipmentListener.onShipment', 'update', 1],
    ]);
    expect(
      ofThisDb(points(resourceMetrics, 'change_stream.handler.errors')).map((p) => p.value),
    ).toEqual([1]);
    expect(
      ofThisDb(points(resourceMetrics, 'change_stream.handler.retries')).map((p) => p.value),
    ).toEqual([1]);
    const writes = ofThisDb(points(resourceMetrics, 'change_stream.position.writes'));
    expect(
      writes.find((p) => p.attributes['change_stream.outcome'] === 'stored')?.value,
    ).toBeGreaterThanOrEqual(1);
    const durations = ofThisDb(points(resourceMetrics, 'change_stream.handler.duration')) as Array<
      Point & { value: { count: number } }
    >;
    expect(durations.reduce((sum, p) => sum + p.value.count, 0)).toBe(4); // 3 successes + 1 failed attempt
    const gauge = (name: string) => ofThisDb(points(resourceMetrics, name)).map((p) => p.value);
    expect(gauge('change_stream.in_flight')).toEqual([0]);
    expect(gauge('change_stream.active')).toEqual([1]);
    expect(gauge('change_stream.lag')).toHaveLength(1);
  });

  it('traces each handler call with the stream, operation type and event id, never the document', async () => {
    const dbName = uniqueName('otel');
    const app = await scope.app({
      dbName,
      consumer: uniqueName('svc'),
      providers: [ShipmentListener],
    });
    const probe = await scope.probe(dbName);
    await probe
      .collection('shipments')
      .insertOne({ _id: 't1' as never, flaky: true, secret: 'do-not-export' });
    await eventually('handled', () => app.events.of('shipment').length === 1);
    const mine = spans.getFinishedSpans().filter((s) => s.attributes['db.namespace'] === dbName);
    expect(mine.map((s) => [s.name, s.status.code, s.attributes['change_stream.attempt']])).toEqual(
      [
        ['change_stream shipments insert', 2, 1], // the failed first attempt (status ERROR)
        ['change_stream shipments insert', 0, 2],
      ],
    );
    expect(mine[1].attributes).toMatchObject({
      'db.system': 'mongodb',
      'db.collection.name': 'shipments',
      'change_stream.handler': 'ShipmentListener.onShipment',
      'change_stream.operation_type': 'insert',
      'change_stream.event_id': (app.events.of('shipment')[0].token as { _data: string })._data,
    });
    expect(JSON.stringify(mine.map((s) => s.attributes))).not.toContain('do-not-export');
  });

  it('reports lag while a slow handler holds a stream back, and health turns degraded, then down, past its thresholds', async () => {
    const dbName = uniqueName('lag');
    slowMs = 400;
    const app = await scope.app({
      dbName,
      consumer: uniqueName('svc'),
      providers: [ShipmentListener],
      imports: [TerminusModule],
    });
    const probe = await scope.probe(dbName);
    await probe
      .collection('shipments')
      .insertMany(Array.from({ length: 12 }, (_, i) => ({ _id: `l${i}` as never })));
    const registry = app.get(ChangeStreamRegistry);
    await eventually(
      'more than a second behind',
      () => (registry.getStatus('shipments')?.lagMs ?? 0) > 1500,
      15_000,
    );
    const health = app.get(ChangeStreamHealthIndicator);
    expect((await health.isHealthy('changeStreams', { maxLagMs: 1000 })).changeStreams.status).toBe(
      'degraded',
    );
    expect(
      (await health.isHealthy('changeStreams', { maxLagMs: 1000, downLagMs: 1200 })).changeStreams
        .status,
    ).toBe('down');
    expect((await health.isHealthy()).changeStreams.status).toBe('up'); // no threshold, no verdict on lag
    slowMs = 0;
    await eventually('all handled', () => app.events.of('shipment').length === 12, 15_000);
    await eventually(
      'caught up: lag 0',
      () => registry.getStatus('shipments')?.lagMs === 0,
      10_000,
    );
  });
});
