import type { DeadLetterRetention } from '../interfaces/dead-letter.interface.js';
import { DEAD_LETTER_RETENTION_DEFAULTS } from './defaults.js';
import { intOption } from './integer-option.js';
import type { ResolvedChangeStreamOptions } from './resolved-options.js';

export const DEAD_LETTER_RETENTION_OPTIONS = {
  maxLetters: true,
  maxAgeMs: true,
} as const satisfies Record<keyof DeadLetterRetention, true>;

/** 0 is no limit (Infinity). */
export function deadLetterRetentionOptions(
  value: DeadLetterRetention | undefined,
): ResolvedChangeStreamOptions['deadLetterRetention'] {
  return {
    maxLetters:
      intOption(
        'deadLetterRetention.maxLetters',
        value?.maxLetters,
        DEAD_LETTER_RETENTION_DEFAULTS.maxLetters,
        0,
      ) || Infinity,
    maxAgeMs:
      intOption(
        'deadLetterRetention.maxAgeMs',
        value?.maxAgeMs,
        DEAD_LETTER_RETENTION_DEFAULTS.maxAgeMs,
        0,
      ) || Infinity,
  };
}
