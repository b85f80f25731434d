import type { ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';

/** A gauge read from each stream's status at collection time (null: nothing to report for that stream). */
export interface StreamGauge {
  name: string;
  description: string;
  unit: string;
  read: (s: ChangeStreamStatus) => number | null;
}

/** What `ChangeStreamTelemetry.observe` reports of each stream: lag, in flight, unsaved, headroom, role, pause. */
export const STREAM_GAUGES: readonly StreamGauge[] = [
  {
    name: 'change_stream.lag',
    description: 'How far behind the newest change each stream is',
    unit: 's',
    read: (s) => (s.lagMs === null ? null : s.lagMs / 1000),
  },
  {
    name: 'change_stream.in_flight',
    description: 'Events handed to handlers and not finished',
    unit: '{event}',
    read: (s) => s.inFlightEvents,
  },
  {
    name: 'change_stream.unsaved',
    description: 'Handled events whose position is not stored yet',
    unit: '{event}',
    read: (s) => s.unsavedEvents,
  },
  {
    name: 'change_stream.history_headroom',
    description: "Time until each stream's position falls off the oplog (negative: it did)",
    unit: 's',
    read: (s) => (s.historyHeadroomMs === null ? null : s.historyHeadroomMs / 1000),
  },
  {
    name: 'change_stream.oplog_window',
    description:
      'Time between the oldest and the newest oplog entry, on the node each stream reads',
    unit: 's',
    read: (s) => (s.oplogWindowMs === null ? null : s.oplogWindowMs / 1000),
  },
  {
    name: 'change_stream.active',
    description: 'With leases: 1 where this instance is the active consumer, 0 on standby',
    unit: '1',
    read: (s) => (s.role === null ? null : s.role === 'active' ? 1 : 0),
  },
  {
    name: 'change_stream.paused',
    description: '1 while the stream is paused on this instance (here or fleet-wide), else 0',
    unit: '1',
    read: (s) => (s.state === 'paused' ? 1 : 0),
  },
];
