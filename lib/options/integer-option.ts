import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';

/** `fallback` when the option is not given; an integer below `min` (or no integer) is an error. */
export function intOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new ChangeStreamConfigError(messages.optionInvalid(name, value, `an integer >= ${min}`));
  }
  return value;
}
