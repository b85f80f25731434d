import type { StreamPause } from '../interfaces/change-stream-status.interface.js';

// The value of a stream's fleet-wide pause key (`pausedKey`): JSON written by `ChangeStreamControl`,
// or any text an operator SETs with redis-cli, which is then the reason.

/** The pause key's value for `pause` (scope is implied: the key is fleet-wide). */
export function encodePauseFlag(pause: Omit<StreamPause, 'scope'>): string {
  return JSON.stringify({
    by: pause.by,
    reason: pause.reason,
    since: pause.since?.toISOString() ?? null,
  });
}

/** What a pause key's value says; plain text (or JSON of another shape) is the reason. */
export function decodePauseFlag(value: string): StreamPause {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { scope: 'fleet', by: null, reason: value.trim() || null, since: null };
  const { by, reason, since } = parsed as Record<string, unknown>;
  const date = typeof since === 'string' ? new Date(since) : null;
  return {
    scope: 'fleet',
    by: typeof by === 'string' ? by : null,
    reason: typeof reason === 'string' ? reason : null,
    since: date && !Number.isNaN(date.getTime()) ? date : null,
  };
}
