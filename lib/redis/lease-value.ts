import type { StreamLease } from '../interfaces/lease-store.interface.js';

/** The lease key's value. */
export function leaseValue(lease: StreamLease): string {
  return `${lease.fence} ${lease.holder}`;
}

/** Reads a lease key's value back; `null` for a value this module did not write. */
export function parseLeaseValue(value: string): StreamLease | null {
  const space = value.indexOf(' ');
  const fence = Number(value.slice(0, space));
  const holder = value.slice(space + 1);
  return space > 0 && Number.isSafeInteger(fence) && fence > 0 && holder !== ''
    ? { fence, holder }
    : null;
}
