import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import { keyNames, unknownKeys } from './known-keys.js';

/** A misspelled key inside a group (`checkpoint: { maxEvent: 10 }`) would silently keep the default. */
export function checkKeys(group: string, value: unknown, known: Record<string, true>): void {
  if (value === undefined) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid(group, value, `an object with ${keyNames(known).join(', ')}`),
    );
  }
  const unknown = unknownKeys(value, known);
  if (unknown.length > 0)
    throw new ChangeStreamConfigError(messages.unknownOptions(unknown, keyNames(known), group));
}
