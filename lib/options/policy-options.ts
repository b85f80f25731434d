import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type {
  HandlerFailurePolicy,
  HistoryLostPolicy,
} from '../interfaces/failure-policies.interface.js';
import { MODULE_DEFAULTS } from './defaults.js';
import { isHandlerFailurePolicy } from './handler-options.js';

export function handlerFailurePolicy(
  name: string,
  value: HandlerFailurePolicy | undefined,
): HandlerFailurePolicy {
  if (value === undefined) return MODULE_DEFAULTS.onHandlerFailure;
  if (isHandlerFailurePolicy(value)) return value;
  throw new ChangeStreamConfigError(
    messages.optionInvalid(name, value, '"stop", "dead-letter" or a function'),
  );
}

export function historyLostPolicy(value: HistoryLostPolicy | undefined): HistoryLostPolicy {
  if (value === undefined) return MODULE_DEFAULTS.onHistoryLost;
  if (value === 'fail' || value === 'restart-from-now' || typeof value === 'function') return value;
  throw new ChangeStreamConfigError(
    messages.optionInvalid('onHistoryLost', value, '"fail", "restart-from-now" or a function'),
  );
}
