import type { StreamPause } from '../interfaces/change-stream-status.interface.js';

/** Run-time control: enabled, pause and resume. */
export const controlMessages = {
  moduleDisabled: (handlers: number, streams: string[]) =>
    `ChangeStreamModule is disabled (enabled: false): ${handlers} handler(s) validated; no stream opened, no lease taken on this instance` +
    (streams.length > 0 ? ` (would run: ${streams.join(', ')}).` : '.'),
  handlersDisabled: (handlers: string[], streamsNotOpened: string[]) =>
    `Handler(s) disabled (enabled: false), not called: ${handlers.join(', ')}` +
    (streamsNotOpened.length > 0
      ? `; stream(s) not opened, every handler disabled: ${streamsNotOpened.join(', ')}.`
      : '.'),
  streamPaused: (
    key: string,
    pause: StreamPause,
    holding: 'lease' | 'no lease' | 'leases off' = 'lease',
  ) =>
    `Stream ${key} paused ${pause.scope === 'fleet' ? 'fleet-wide' : 'on this instance'}${pause.by ? ` by ${pause.by}` : ''}${pause.reason ? ` (${pause.reason})` : ''}: ` +
    (holding === 'lease'
      ? `it stops reading, drains, saves its position and releases its lease until resumed.`
      : holding === 'leases off'
        ? `it stops reading, drains and saves its position until resumed.`
        : `it holds no lease (waiting for one), so there is nothing to drain, save or release; it takes no lease until resumed.`),
  streamPauseDeferred: (key: string) =>
    `Stream ${key} has no position to resume from yet (the server gave none at open and no event was handled): the pause takes effect after the first handled event, so nothing written during the pause is skipped.`,
  streamPauseDrained: (key: string, saved: boolean, released: boolean) =>
    `Stream ${key} is paused: drained${saved ? ', position saved' : '; its last position could not be saved, so a few events are delivered again after resuming'}${released ? ', lease released' : ''}.`,
  streamResumed: (key: string, scope: 'local' | 'fleet') =>
    `Stream ${key} resumed ${scope === 'fleet' ? 'fleet-wide (pause key gone)' : 'on this instance'}.`,
  fleetPauseUnsupported: (key: string) =>
    `Stream ${key}: a fleet-wide pause needs leases (the Redis store, or a tokenStore whose leases implement writePause and renewReadingPause); paused on this instance only.`,
  controlUnknownStream: (stream: string, known: string[]) =>
    `ChangeStreamControl: no stream "${stream}" in this application. Name it by collection (with { connectionName } for another connection) or by key; streams: ${known.join(', ') || '(none)'}.`,
  controlDisabled: (key: string) =>
    `ChangeStreamControl: stream ${key} is disabled on this instance (enabled: false), so it cannot be paused or resumed here except fleet-wide ({ fleet: true }).`,
  fleetPauseOfDisabled: (key: string, resumed: boolean) =>
    `Stream ${key} is disabled on this instance (enabled: false): the fleet-wide pause key was ${resumed ? 'deleted; the instances where the stream is enabled may take it again' : 'written; the instances where the stream is enabled stop reading it within one lease renewal'}. Nothing runs here to ${resumed ? 'resume' : 'pause'}.`,
  fleetPauseUnsupportedDisabled: (key: string) =>
    `ChangeStreamControl: stream ${key} is disabled on this instance (enabled: false), and a fleet-wide pause needs leases (the Redis store, or a tokenStore whose leases implement writePause and renewReadingPause): nothing was paused or resumed. Call it on an instance where the stream is enabled.`,
};
