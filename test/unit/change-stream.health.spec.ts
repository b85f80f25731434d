import { describe, expect, it } from '@jest/globals';
import type { ModuleRef } from '@nestjs/core';
import {
  type ChangeStreamHealthOptions,
  ChangeStreamHealthIndicator,
  type ChangeStreamRegistry,
  type ChangeStreamStatus,
} from '../../lib/index.js';

/** One stream's status: open, caught up, leases off; `overrides` changes what a case needs. */
const status = (
  collection: string,
  overrides: Partial<ChangeStreamStatus> = {},
): ChangeStreamStatus => ({
  key: `cs:{svc:shop:${collection}}`,
  connectionName: 'default',
  database: 'shop',
  collection,
  collections: [collection],
  state: 'open',
  role: null,
  instanceId: null,
  holder: null,
  fence: null,
  handlers: ['Listener.on'],
  eventsHandled: 3,
  lastEventAt: null,
  lastCheckpointAt: null,
  lastInvalidatedAt: null,
  unsavedEvents: 0,
  lagMs: 0,
  lastCheckpointAgeMs: null,
  inFlightEvents: 0,
  inFlightForMs: null,
  lastError: null,
  consecutiveFailures: 0,
  historyHeadroomMs: null,
  oplogWindowMs: null,
  historyHeadroomUnknown: 'the oplog has not been sampled yet',
  backfill: null,
  ...overrides,
});

/** The indicator over a registry that shows `statuses`; no Terminus module registered (it makes its own service). */
function indicator(
  statuses: ChangeStreamStatus[],
  moduleRef: Partial<ModuleRef> = {
    get: () => {
      throw new Error('not registered');
    },
  },
) {
  const registry = { getStatuses: () => statuses } as unknown as ChangeStreamRegistry;
  return new ChangeStreamHealthIndicator(registry, moduleRef as ModuleRef);
}

const statusOf = async (statuses: ChangeStreamStatus[], options?: ChangeStreamHealthOptions) =>
  (await indicator(statuses).isHealthy('changeStreams', options)).changeStreams.status;

describe('ChangeStreamHealthIndicator', () => {
  it('is up with no streams, and with open and standby streams', async () => {
    expect(await statusOf([])).toBe('up');
    expect(
      await statusOf([
        status('orders'),
        status('payments', { state: 'standby', role: 'standby', holder: 'B', fence: 4 }),
      ]),
    ).toBe('up');
  });

  it('is up while a stream is paused or disabled (stopped on purpose), and says who paused it and what is disabled', async () => {
    const since = new Date('2026-01-02T03:04:05.000Z');
    const statuses = [
      status('orders', {
        state: 'paused',
        role: 'standby',
        paused: { scope: 'fleet', by: 'ops', reason: 'incident 7', since },
      }),
      status('payments', { state: 'disabled', disabledHandlers: ['Listener.onPayment'] }),
    ];
    const result = (await indicator(statuses).isHealthy()).changeStreams;
    expect(result.status).toBe('up');
    expect(result.streams['default/shop.orders'].paused).toEqual({
      scope: 'fleet',
      by: 'ops',
      reason: 'incident 7',
      since: '2026-01-02T03:04:05.000Z',
    });
    expect(result.streams['default/shop.payments']).toMatchObject({
      state: 'disabled',
      disabledHandlers: ['Listener.onPayment'],
    });
  });

  it.each(['failed', 'closed'] as const)('is down when any stream is %s', async (state) => {
    expect(await statusOf([status('orders'), status('payments', { state })])).toBe('down');
  });

  it.each(['starting', 'reconnecting', 'degraded'] as const)(
    'is degraded while a stream is %s',
    async (state) => {
      expect(await statusOf([status('orders'), status('payments', { state })])).toBe('degraded');
    },
  );

  it('a failed stream outweighs a degraded one', async () => {
    expect(
      await statusOf([
        status('orders', { state: 'degraded' }),
        status('payments', { state: 'failed' }),
      ]),
    ).toBe('down');
  });

  it("options.degraded says what a degraded stream reports: 'up', or 'down' for a readiness probe", async () => {
    const streams = [status('orders', { state: 'reconnecting' })];
    expect(await statusOf(streams, { degraded: 'up' })).toBe('up');
    expect(await statusOf(streams, { degraded: 'down' })).toBe('down');
    expect(await statusOf(streams, { degraded: 'degraded' })).toBe('degraded');
  });

  it('judges lag only against the thresholds given: maxLagMs degrades, downLagMs downs', async () => {
    const streams = [status('orders', { lagMs: 5000 })];
    expect(await statusOf(streams)).toBe('up');
    expect(await statusOf(streams, { maxLagMs: 5000 })).toBe('up'); // not more than the limit
    expect(await statusOf(streams, { maxLagMs: 4999 })).toBe('degraded');
    expect(await statusOf(streams, { maxLagMs: 1000, downLagMs: 4999 })).toBe('down');
    expect(await statusOf([status('orders', { lagMs: null })], { maxLagMs: 0, downLagMs: 0 })).toBe(
      'up',
    ); // unknown lag is no verdict
  });

  it('on Terminus 11 (no degraded status), a degraded stream reports up unless options.degraded is down', async () => {
    const session = (key: string) => ({
      up: (data: object) => ({ [key]: { ...data, status: 'up' } }),
      down: (data: object) => ({ [key]: { ...data, status: 'down' } }),
    });
    const terminus11 = { get: () => ({ check: session }) } as unknown as ModuleRef;
    const streams = [status('orders', { state: 'degraded' })];
    expect((await indicator(streams, terminus11).isHealthy()).changeStreams.status).toBe('up');
    expect(
      (await indicator(streams, terminus11).isHealthy('changeStreams', { degraded: 'down' }))
        .changeStreams.status,
    ).toBe('down');
  });

  it('shows history headroom and the oplog window once sampled, and why they are unknown', async () => {
    const result = await indicator([
      status('orders'),
      status('ledger', {
        historyHeadroomMs: 5_400_000,
        oplogWindowMs: 7_200_000,
        historyHeadroomUnknown: null,
      }),
      status('payments', { historyHeadroomUnknown: 'not authorized to read local.oplog.rs (…)' }),
    ]).isHealthy();
    const { streams } = result.changeStreams;
    expect(streams['default/shop.orders']).not.toHaveProperty('historyHeadroomMs');
    expect(streams['default/shop.ledger']).toMatchObject({
      historyHeadroomMs: 5_400_000,
      oplogWindowMs: 7_200_000,
    });
    expect(streams['default/shop.ledger']).not.toHaveProperty('historyHeadroomUnknown');
    expect(streams['default/shop.payments']).toMatchObject({
      historyHeadroomMs: null,
      oplogWindowMs: null,
      historyHeadroomUnknown: 'not authorized to read local.oplog.rs (…)',
    });
    expect(result.changeStreams.status).toBe('up'); // unknown headroom is no verdict
  });

  it('lists each stream under <connection>/<database>.<collection>, dates as ISO strings, lease fields only with leases', async () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    const result = await indicator([
      status('orders', {
        lastEventAt: at,
        lastCheckpointAt: at,
        unsavedEvents: 2,
        lagMs: 15,
        lastCheckpointAgeMs: 40,
        inFlightEvents: 1,
        inFlightForMs: 7,
      }),
      status('payments', {
        connectionName: 'billing',
        state: 'degraded',
        role: 'active',
        instanceId: 'A',
        holder: 'A',
        fence: 3,
        lastInvalidatedAt: at,
        lastError: 'store down',
      }),
    ]).isHealthy('streams');
    expect(result).toEqual({
      streams: {
        status: 'degraded',
        streams: {
          'default/shop.orders': {
            state: 'open',
            eventsHandled: 3,
            lastEventAt: '2026-01-02T03:04:05.678Z',
            lastCheckpointAt: '2026-01-02T03:04:05.678Z',
            unsavedEvents: 2,
            lagMs: 15,
            lastCheckpointAgeMs: 40,
            inFlightEvents: 1,
            inFlightForMs: 7,
          },
          'billing/shop.payments': {
            state: 'degraded',
            role: 'active',
            holder: 'A',
            fence: 3,
            eventsHandled: 3,
            lastEventAt: null,
            lastCheckpointAt: null,
            unsavedEvents: 0,
            lagMs: 0,
            lastCheckpointAgeMs: null,
            inFlightEvents: 0,
            inFlightForMs: null,
            lastInvalidatedAt: '2026-01-02T03:04:05.678Z',
            lastError: 'store down',
          },
        },
      },
    });
  });

  it('shows a backfill in progress in the stream details (startedAt as ISO string), nothing when none runs', async () => {
    const startedAt = new Date('2026-01-02T03:04:05.678Z');
    const backfill = {
      run: 'r1',
      handlers: ['L.on'],
      done: 40,
      total: 100,
      rate: 20,
      etaMs: 3000,
      startedAt,
    };
    const result = await indicator([status('orders', { backfill }), status('payments')]).isHealthy(
      'streams',
    );
    const streams = result.streams.streams as Record<string, { backfill?: unknown }>;
    expect(streams['default/shop.orders'].backfill).toEqual({
      ...backfill,
      startedAt: '2026-01-02T03:04:05.678Z',
    });
    expect('backfill' in streams['default/shop.payments']).toBe(false);
  });
});
