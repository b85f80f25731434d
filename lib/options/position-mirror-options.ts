import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { PositionMirrorOptions } from '../interfaces/change-stream-module-options.interface.js';
import { POSITION_MIRROR_DEFAULTS } from './defaults.js';
import { checkKeys } from './group-keys.js';
import { intOption } from './integer-option.js';
import type { ResolvedChangeStreamOptions } from './resolved-options.js';

const POSITION_MIRROR_OPTIONS = {
  collection: true,
  intervalMs: true,
  connectionName: true,
} as const satisfies Record<keyof PositionMirrorOptions, true>;

export function positionMirrorOptions(
  value: boolean | PositionMirrorOptions | undefined,
  connectionName: string | undefined,
): ResolvedChangeStreamOptions['positionMirror'] {
  if (value === undefined || value === false) return false;
  if (value !== true) checkKeys('positionMirror', value, POSITION_MIRROR_OPTIONS);
  const given = value === true ? {} : value;
  const collection = given.collection ?? POSITION_MIRROR_DEFAULTS.collection;
  if (
    typeof collection !== 'string' ||
    collection === '' ||
    collection.includes('$') ||
    collection.startsWith('system.')
  ) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid(
        'positionMirror.collection',
        collection,
        'a collection name (not empty, no "$", not "system.…")',
      ),
    );
  }
  if (
    given.connectionName !== undefined &&
    (typeof given.connectionName !== 'string' || given.connectionName === '')
  ) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid(
        'positionMirror.connectionName',
        given.connectionName,
        'a mongoose connection name',
      ),
    );
  }
  return {
    collection,
    intervalMs: intOption(
      'positionMirror.intervalMs',
      given.intervalMs,
      POSITION_MIRROR_DEFAULTS.intervalMs,
      100,
    ),
    connectionName: given.connectionName ?? POSITION_MIRROR_DEFAULTS.connectionName(connectionName),
  };
}
