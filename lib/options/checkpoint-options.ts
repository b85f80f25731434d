import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { CheckpointOptions } from '../interfaces/change-stream-module-options.interface.js';
import { CHECKPOINT_DEFAULTS } from './defaults.js';
import { intOption } from './integer-option.js';
import type { ResolvedChangeStreamOptions } from './resolved-options.js';

export const CHECKPOINT_OPTIONS = {
  maxEvents: true,
  intervalMs: true,
  maxUnsavedEvents: true,
} as const satisfies Record<keyof CheckpointOptions, true>;

export function checkpointOptions(
  value: CheckpointOptions | undefined,
): ResolvedChangeStreamOptions['checkpoint'] {
  const maxEvents = intOption(
    'checkpoint.maxEvents',
    value?.maxEvents,
    CHECKPOINT_DEFAULTS.maxEvents,
    1,
  );
  const intervalMs = intOption(
    'checkpoint.intervalMs',
    value?.intervalMs,
    CHECKPOINT_DEFAULTS.intervalMs,
    1,
  );
  const maxUnsavedEvents = intOption(
    'checkpoint.maxUnsavedEvents',
    value?.maxUnsavedEvents,
    CHECKPOINT_DEFAULTS.maxUnsavedEvents(maxEvents),
    1,
  );
  if (maxUnsavedEvents < 2 * maxEvents) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid(
        'checkpoint.maxUnsavedEvents',
        maxUnsavedEvents,
        `at least 2 × checkpoint.maxEvents (${2 * maxEvents}): while saves succeed that many may already be unsaved`,
      ),
    );
  }
  return { maxEvents, intervalMs, maxUnsavedEvents };
}
