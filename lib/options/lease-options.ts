import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { LeaseOptions } from '../interfaces/change-stream-module-options.interface.js';
import { LEASE_DEFAULTS } from './defaults.js';
import { intOption } from './integer-option.js';
import type { ResolvedChangeStreamOptions } from './resolved-options.js';

export const LEASE_OPTIONS = {
  ttlMs: true,
  renewIntervalMs: true,
  pollIntervalMs: true,
  instanceId: true,
} as const satisfies Record<keyof LeaseOptions, true>;

export function leaseOptions(
  value: LeaseOptions | false | undefined,
): ResolvedChangeStreamOptions['leases'] {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid('leases', value, 'false or an object'),
    );
  }
  const ttlMs = intOption('leases.ttlMs', value?.ttlMs, LEASE_DEFAULTS.ttlMs, 100);
  const renewIntervalMs = intOption(
    'leases.renewIntervalMs',
    value?.renewIntervalMs,
    LEASE_DEFAULTS.renewIntervalMs(ttlMs),
    10,
  );
  if (renewIntervalMs > ttlMs / 2) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid(
        'leases.renewIntervalMs',
        renewIntervalMs,
        `at most half of leases.ttlMs (${ttlMs / 2})`,
      ),
    );
  }
  const pollIntervalMs = intOption(
    'leases.pollIntervalMs',
    value?.pollIntervalMs,
    LEASE_DEFAULTS.pollIntervalMs(renewIntervalMs),
    10,
  );
  if (pollIntervalMs > renewIntervalMs) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid(
        'leases.pollIntervalMs',
        pollIntervalMs,
        `at most leases.renewIntervalMs (${renewIntervalMs})`,
      ),
    );
  }
  const instanceId = value?.instanceId ?? LEASE_DEFAULTS.instanceId();
  if (typeof instanceId !== 'string' || instanceId.trim() === '') {
    throw new ChangeStreamConfigError(
      messages.optionInvalid('leases.instanceId', instanceId, 'a non-empty string'),
    );
  }
  return { ttlMs, renewIntervalMs, pollIntervalMs, instanceId, explicit: value !== undefined };
}
