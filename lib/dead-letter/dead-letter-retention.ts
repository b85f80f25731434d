import type { DeadLetter, DeadLetterStoreRetention } from '../interfaces/dead-letter.interface.js';

import { DEAD_LETTER_RETENTION_DEFAULTS } from '../options/defaults.js';

export const DEFAULT_MAX_DEAD_LETTERS = DEAD_LETTER_RETENTION_DEFAULTS.maxLetters;

/** A store's retention, resolved, with whom to tell about the letters it drops. */
export interface RetentionPolicy {
  maxLetters: number;
  maxAgeMs: number;
  /** Told once per dropped letter set (only letters this call actually removed). */
  onDropped: (letters: DeadLetter[], reason: 'count' | 'age') => void;
}

export function retentionPolicy({
  maxLetters,
  maxAgeMs,
  onDropped,
}: DeadLetterStoreRetention = {}): RetentionPolicy {
  const limit = (value: number | undefined, fallback: number) =>
    value === undefined ? fallback : value === 0 ? Infinity : value;
  return {
    maxLetters: limit(maxLetters, DEFAULT_MAX_DEAD_LETTERS),
    maxAgeMs: limit(maxAgeMs, Infinity),
    onDropped: onDropped ?? (() => undefined),
  };
}

/** Letters per page when the caller gives no `count`. */
export const PAGE_COUNT = 100;
