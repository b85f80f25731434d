import type { Logger } from '@nestjs/common';
import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { StreamsOption } from '../interfaces/change-stream-module-options.interface.js';
import { STREAM_MODES, type StreamMode } from '../common/stream-names.js';

function mode(path: string, value: unknown): StreamMode {
  if (STREAM_MODES.includes(value as StreamMode)) return value as StreamMode;
  throw new ChangeStreamConfigError(messages.streamsOptionInvalid(path, value));
}

/** The `streams` option, resolved: each connection's mode, else `default`. */
export interface ResolvedStreams {
  default: StreamMode;
  connections: Record<string, StreamMode>;
}

/** The mode of a connection's streams. */
export function streamModeOf(streams: ResolvedStreams): (connectionName: string) => StreamMode {
  return (connectionName) => streams.connections[connectionName] ?? streams.default;
}

/** Validates the `streams` option (default: one stream per collection). */
export function streamsOption(given: StreamsOption | undefined): ResolvedStreams {
  if (given === undefined) return { default: 'collection', connections: {} };
  if (typeof given === 'string') return { default: mode('streams', given), connections: {} };
  if (typeof given !== 'object' || given === null || Array.isArray(given))
    throw new ChangeStreamConfigError(messages.streamsOptionInvalid('streams', given));
  const unknown = Object.keys(given).filter((k) => k !== 'default' && k !== 'connections');
  if (unknown.length > 0)
    throw new ChangeStreamConfigError(
      messages.streamsOptionInvalid(`streams.${unknown[0]}`, given),
    );
  const fallback =
    given.default === undefined ? 'collection' : mode('streams.default', given.default);
  const connections = given.connections ?? {};
  if (typeof connections !== 'object' || connections === null || Array.isArray(connections))
    throw new ChangeStreamConfigError(
      messages.streamsOptionInvalid('streams.connections', connections),
    );
  const byConnection = Object.fromEntries(
    Object.entries(connections).map(([name, value]) => [
      name,
      mode(`streams.connections.${name}`, value),
    ]),
  );
  return { default: fallback, connections: byConnection };
}

/** A `streams.connections` entry that no handler's connection has is most likely a typo: say so, never fail. */
export function warnUnknownStreamConnections(
  streams: ResolvedStreams,
  handlers: ReadonlyArray<{ connectionName: string }>,
  logger: Pick<Logger, 'warn'>,
): void {
  const used = [...new Set(handlers.map((h) => h.connectionName))].sort();
  const unknown = Object.keys(streams.connections).filter((name) => !used.includes(name));
  if (unknown.length > 0) logger.warn(messages.streamsConnectionUnknown(unknown, used));
}
