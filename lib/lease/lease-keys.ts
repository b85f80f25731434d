import type { StreamLease } from '../interfaces/lease-store.interface.js';

// Every key here extends the position key `<prefix>:{<consumer>:<db>:<collection>}`, so its hash
// tag puts them in the position's Redis Cluster slot and one script may touch them together.

/** The lease of the stream stored under `positionKey`: `"<fence> <holder>"`, expiring (PX). */
export function leaseKey(positionKey: string): string {
  return `${positionKey}:lease`;
}

/** The stream's fencing counter (INCR): never expires and is never reset. */
export function fenceKey(positionKey: string): string {
  return `${positionKey}:fence`;
}

/**
 * The live instances that can consume the stream stored under `positionKey`, for
 * `LeaseStore.heartbeat`/`leave`: a sorted set of member → expiry (ms, Redis clock).
 */
export function candidatesKey(positionKey: string): string {
  return `${positionKey}:candidates`;
}

/** Each live candidate's handler set (a hash member → set), beside `group` (a `candidatesKey`) and expiring with it. */
export function handlerSetsKey(group: string): string {
  return `${group}:handlers`;
}

/** Where an instance that lost its lease when Redis lost the stream's data leaves its position (expiring). */
export function orphanKey(positionKey: string): string {
  return `${positionKey}:orphan`;
}

/** The lease key's value. */
export function leaseValue(lease: StreamLease): string {
  return `${lease.fence} ${lease.holder}`;
}

/** Reads a lease key's value back; `null` for a value this module did not write. */
export function parseLeaseValue(value: string): StreamLease | null {
  const space = value.indexOf(' ');
  const fence = Number(value.slice(0, space));
  const holder = value.slice(space + 1);
  return space > 0 && Number.isSafeInteger(fence) && fence > 0 && holder !== '' ? { fence, holder } : null;
}
