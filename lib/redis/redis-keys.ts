import { LEFT_POSITION_TTL_MS } from '../options/defaults.js';
import { DEPLOYMENT_STREAM } from '../common/stream-names.js';
// Every Redis key the module writes. A stream's keys extend its position key
// `<prefix>:{<consumer>:<db>:<collection>}` (a database stream's: `<collection>` is `$database`; a
// deployment stream's: `{<consumer>:$deployment:<connectionName>}`), whose braces are a Redis Cluster hash tag: they all
// land in the position's slot, so one script may touch them together. A consumer's dead-letter
// keys share the tag `{<consumer>}` in the same way.

/** How long a left position (and the marker left once it was used) is kept: long enough for any holder to see it. */
export const LEFT_POSITION_TTL_SECONDS = LEFT_POSITION_TTL_MS / 1000;

/** `<keyPrefix>:{<consumer>:<database>:<collection>}`: one position per consumer and collection. */
export function positionKey(
  keyPrefix: string,
  consumer: string,
  database: string,
  collection: string,
): string {
  return `${keyPrefix}:{${consumer}:${database}:${collection}}`;
}

/**
 * `<keyPrefix>:{<consumer>:$deployment:<connectionName>}`: the one deployment stream of a
 * connection (the handlers declared with a database pattern). No database is named `$deployment`,
 * so it never equals a collection or database stream's key.
 */
export function deploymentKey(keyPrefix: string, consumer: string, connectionName: string): string {
  return positionKey(keyPrefix, consumer, DEPLOYMENT_STREAM, connectionName);
}

/**
 * The position key of version 0.1 (`prefix:consumer:db:collection`, no hash tag) for a current
 * one, or null: read once when the current key does not exist yet, and left for a rollback.
 */
export function legacyPositionKey(key: string): string | null {
  const open = key.indexOf(':{');
  return open > 0 && key.endsWith('}') ? `${key.slice(0, open)}:${key.slice(open + 2, -1)}` : null;
}

/** The lease of the stream stored under `positionKey`: `"<fence> <holder>"`, expiring (PX). */
export function leaseKey(positionKey: string): string {
  return `${positionKey}:lease`;
}

/** The stream's fencing counter (INCR): never expires and is never reset. */
export function fenceKey(positionKey: string): string {
  return `${positionKey}:fence`;
}

/**
 * The fleet-wide pause of the stream stored under `positionKey`: while it exists no instance of
 * the consumer acquires the stream's lease, and the holder drains, saves and releases it at its
 * next renewal. Its value says who paused it and why: JSON `{"by","reason","since"}` when written by
 * `ChangeStreamControl.pause(…, { fleet: true })`, or any text an operator SETs with redis-cli
 * (taken as the reason). Deleting it resumes the stream. It never expires by itself.
 */
export function pausedKey(positionKey: string): string {
  return `${positionKey}:paused`;
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

/**
 * Where an instance that lost its lease when Redis lost the stream's data leaves its position
 * (expiring after `LEFT_POSITION_TTL_SECONDS`); see `left-position.ts`.
 */
export function leftPositionKey(positionKey: string): string {
  return `${positionKey}:orphan`;
}

/**
 * The hash of a consumer's dead letters (by id): `<keyPrefix>:<consumer>:dead-letters`. No hash
 * tag: every command touches this hash or its index alone, so it works on a Cluster as it is,
 * and a tag would move the key where 0.1 kept its letters (a move that races between instances).
 */
export function deadLetterKey(keyPrefix: string, consumer: string): string {
  return `${keyPrefix}:${consumer}:dead-letters`;
}

/** The sorted set of dead-letter ids by `failedAt` (ms) beside the hash `hashKey`. */
export function deadLetterIndexKey(hashKey: string): string {
  return `${hashKey}:by-time`;
}

/** @deprecated use `positionKey`; removed in 1.0 */
export const checkpointKey = positionKey;
