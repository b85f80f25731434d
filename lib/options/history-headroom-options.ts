import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { HistoryHeadroomOptions } from '../interfaces/change-stream-module-options.interface.js';
import { HISTORY_HEADROOM_DEFAULTS } from './defaults.js';
import { checkKeys } from './group-keys.js';
import { intOption } from './integer-option.js';
import type { ResolvedChangeStreamOptions } from './resolved-options.js';

const HISTORY_HEADROOM_OPTIONS = {
  warnMs: true,
  intervalMs: true,
} as const satisfies Record<keyof HistoryHeadroomOptions, true>;

export function historyHeadroomOptions(
  value: boolean | HistoryHeadroomOptions | undefined,
): ResolvedChangeStreamOptions['historyHeadroom'] {
  if (value === false) return false;
  if (value !== undefined && value !== true && (typeof value !== 'object' || value === null))
    throw new ChangeStreamConfigError(
      messages.optionInvalid('historyHeadroom', value, 'true, false or { warnMs, intervalMs }'),
    );
  if (typeof value === 'object') checkKeys('historyHeadroom', value, HISTORY_HEADROOM_OPTIONS);
  const given = typeof value === 'object' ? value : {};
  return {
    warnMs: intOption('historyHeadroom.warnMs', given.warnMs, HISTORY_HEADROOM_DEFAULTS.warnMs, 0),
    intervalMs: intOption(
      'historyHeadroom.intervalMs',
      given.intervalMs,
      HISTORY_HEADROOM_DEFAULTS.intervalMs,
      100,
    ),
  };
}
