import type { ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';

/**
 * Metric and span attributes, as `@opentelemetry/api`'s `Attributes` take them. Declared here, not
 * imported: this file's declarations are part of the package's types, and the API is an optional
 * peer that an application without telemetry does not install.
 */
export type Attributes = Record<string, string | number>;

/** Identifies one handler call, for its span and metrics; never holds document bodies. */
export interface HandlerCall {
  consumer: string;
  database: string;
  collection: string;
  handler: string;
  operationType: string;
  /** The event's resume token `_data`. */
  eventId: string;
  attempt: number;
}

export type PositionWriteOutcome = 'stored' | 'failed' | 'refused';

export interface StreamLabels {
  consumer: string;
  database: string;
  collection: string;
}

export const COUNTERS = {
  'change_stream.events': 'Events handled, by handler and operation type',
  'change_stream.batches': 'Calls of @OnChangeBatch handlers (attempts), by handler',
  'change_stream.handler.errors': 'Handler calls that failed (before retries)',
  'change_stream.handler.retries': 'Handler retries',
  'change_stream.dead_letters': 'Events dead-lettered',
  'change_stream.dead_letters.dropped':
    'Dead letters dropped for the retention (count or age) of the dead-letter store',
  'change_stream.reconnects': 'Streams reopened after they broke',
  'change_stream.backfill.documents': 'Existing documents a backfill covered (acknowledged chunks)',
  'change_stream.position.writes': 'Position writes, by outcome (stored, failed, refused)',
} as const;
export type CounterName = keyof typeof COUNTERS;

export function labelsOf(
  labels: StreamLabels & { handler?: string; operationType?: string; outcome?: string },
): Attributes {
  return {
    'change_stream.consumer': labels.consumer,
    'db.namespace': labels.database,
    'db.collection.name': labels.collection,
    ...(labels.handler ? { 'change_stream.handler': labels.handler } : {}),
    ...(labels.operationType ? { 'change_stream.operation_type': labels.operationType } : {}),
    ...(labels.outcome ? { 'change_stream.outcome': labels.outcome } : {}),
  };
}

export function callAttributes(call: HandlerCall): Attributes {
  return labelsOf(call);
}

export function spanAttributes(call: HandlerCall): Attributes {
  return {
    ...labelsOf(call),
    'db.system': 'mongodb',
    'change_stream.event_id': call.eventId,
    'change_stream.attempt': call.attempt,
  };
}

export function streamAttributes(consumer: string, status: ChangeStreamStatus): Attributes {
  return {
    'change_stream.consumer': consumer,
    'db.namespace': status.database,
    'db.collection.name': status.collection,
    'change_stream.connection': status.connectionName,
  };
}
