import type { mongo } from 'mongoose';
import type { StreamCoverage, StreamPosition } from '../interfaces/position-store.interface.js';
import { clusterTimeOfToken } from '../position/resume-token-time.js';

/** A position's cluster time: its token's (mongod's `_data`), or its `operationTime`; null when it cannot be read. */
export function timeOf(position: StreamPosition): mongo.Timestamp | null {
  return 'token' in position ? clusterTimeOfToken(position.token) : position.operationTime;
}

/**
 * Up to which cluster time a database stream's record covers `collection`: its position's time
 * if it serves it, the time it stopped serving it if it retired it; `'none'` if it covers it not,
 * `'untimed'` if it serves it at a position whose time cannot be read.
 */
export function coveredUntil(
  record: StreamPosition & { coverage: StreamCoverage },
  collection: string,
): mongo.Timestamp | 'none' | 'untimed' {
  if (record.coverage.serves.includes(collection)) return timeOf(record) ?? 'untimed';
  const retired = record.coverage.retired ?? {};
  // Own entries only: a collection may be named like an Object.prototype member ('constructor').
  return Object.hasOwn(retired, collection) ? retired[collection] : 'none';
}

/**
 * The coverage a database stream stores with every position of a lease term that serves
 * `collections`, given the record it resumed from (`base`): collections that record served and
 * this term does not are retired at its position's time; earlier retirements are kept until the
 * collection is served again.
 */
export function coverageForTerm(
  base: StreamPosition | null,
  collections: readonly string[],
): StreamCoverage {
  const serves = [...collections].sort();
  // A Map, so that a collection named '__proto__' is an entry like any other.
  const retired = new Map<string, mongo.Timestamp>();
  const before = base?.coverage;
  for (const [collection, time] of Object.entries(before?.retired ?? {}))
    if (!serves.includes(collection)) retired.set(collection, time);
  const baseTime = base && timeOf(base);
  if (before && baseTime)
    for (const collection of before.serves)
      if (!serves.includes(collection)) retired.set(collection, baseTime);
  return retired.size > 0 ? { serves, retired: Object.fromEntries(retired) } : { serves };
}

/** The position without its coverage: where a stream resumes (the coverage of its term is set apart). */
export function withoutCoverage(position: StreamPosition): StreamPosition {
  const { coverage: _coverage, ...rest } = position;
  return rest as StreamPosition;
}
