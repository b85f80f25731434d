import type { mongo } from 'mongoose';
import type { StreamCoverage, StreamPosition } from '../interfaces/position-store.interface.js';
import { type KeyedRecord, oldestOf } from './replaced-position.js';
import { coveredUntil, timeOf, withoutCoverage } from './stream-coverage.js';

/** Where a stream starts by the stored records, and why (for the log). */
export interface StartDecision {
  /** Its own record as stored (`stored`), or a cluster time or token taken from the others' (`replaced`). */
  position: StreamPosition | null;
  from: 'stored' | 'replaced';
  /**
   * `covered`: it starts at `time`, the newest record of `collection` (under `key`), because that
   * is older than its own or it has none; `unordered`: the records carry no readable time, it
   * resumes after the first token (of `count`) as it is.
   */
  reason?:
    | {
        kind: 'covered';
        key: string;
        collection: string;
        /** Null: a token whose time cannot be read, taken as it is (the only record). */
        time: mongo.Timestamp | null;
        hadOwn: boolean;
      }
    | { kind: 'unordered'; key: string; count: number };
  /** A database record (under this key) that does not say which collections it covers: the rule before coverage was recorded decided. */
  coverageMissing?: string;
  /** Collections whose newest position fell off the oplog (older than `oplogOldest`): they did not hold the start back. */
  fellOff?: FellOffCollection[];
  oplogOldest?: mongo.Timestamp;
}

const own = (position: StreamPosition | null): StartDecision => ({ position, from: 'stored' });

/** A record that says which collections it covers. */
type Covering = StreamPosition & { coverage: StreamCoverage };
const covering = (p: StreamPosition | null): p is Covering => p?.coverage !== undefined;

/**
 * A collection stream: start from the newer of its own record and the time up to which its
 * database stream's record covers its collection (`startAtOperationTime` there, inclusive); never
 * from a database record that did not serve it (its events after that record's time would be
 * skipped). Equal times: its own (exact) token.
 */
export function collectionStreamStart(
  ownRecord: StreamPosition | null,
  collection: string,
  database: KeyedRecord,
): StartDecision {
  const record = database.position;
  if (record === null) return own(ownRecord);
  const others = [{ ...database, collection }];
  if (!covering(record))
    return {
      ...previousRule(ownRecord, others),
      ...(ownRecord && { coverageMissing: database.key }),
    };
  const covered = coveredUntil(record, collection);
  if (covered === 'none') return own(ownRecord);
  const ownTime = ownRecord && timeOf(ownRecord);
  if (covered === 'untimed' || (ownRecord && ownTime === null))
    return previousRule(ownRecord, others);
  if (ownTime && ownTime.compare(covered) >= 0) return own(ownRecord);
  return {
    position: { operationTime: covered },
    from: 'replaced',
    reason: { kind: 'covered', key: database.key, collection, time: covered, hadOwn: !!ownRecord },
  };
}

/** One collection of a database stream, with its own stream's record. */
export interface CollectionRecord extends KeyedRecord {
  collection: string;
}

/** A collection whose newest covering position is older than the oplog's oldest entry: its history is lost, the stream's need not be. */
export interface FellOffCollection {
  collection: string;
  /** The key of the record that held that position. */
  key: string;
  /** That position: a stored token, or the cluster time a database stream covered it up to. */
  position: StreamPosition;
  time: mongo.Timestamp;
  /** The database stream's own record covers it too (older): deleting `key` would not make it new. */
  streamCovers: boolean;
}

/** The newest position that covers one collection (under `key`); `exact`: the database stream's own token, which serves it. */
interface Covered {
  collection: string;
  time: mongo.Timestamp;
  key: string;
  exact: boolean;
  position: StreamPosition;
  streamCovers: boolean;
}

/**
 * The cluster times of the newest position of each of a database stream's collections that has
 * one; null when the records cannot be ordered (the rule from before coverage decides).
 */
export function coveringTimes(
  ownKey: string,
  ownRecord: StreamPosition | null,
  collections: readonly CollectionRecord[],
): mongo.Timestamp[] | null {
  const covered = newestPerCollection(ownKey, ownRecord, collections);
  return covered && covered.map((c) => c.time);
}

function newestPerCollection(
  ownKey: string,
  ownRecord: StreamPosition | null,
  collections: readonly CollectionRecord[],
): Covered[] | null {
  if (ownRecord && !covering(ownRecord)) return null;
  if (
    (ownRecord && timeOf(ownRecord) === null) ||
    collections.some((c) => c.position && timeOf(c.position) === null)
  )
    return null;
  const found: Covered[] = [];
  for (const { collection, key, position } of collections) {
    const mine = ownRecord ? coveredUntil(ownRecord as Covering, collection) : 'none';
    const theirs = position && timeOf(position);
    // `exact`: its own token is where that collection's handling stopped (it serves it). A retired
    // time is only a cluster time: events of that collection at it may follow its own token.
    const exact = !!ownRecord && (ownRecord as Covering).coverage.serves.includes(collection);
    let newest: Covered | null =
      mine === 'none' || mine === 'untimed'
        ? null
        : {
            collection,
            time: mine,
            key: ownKey,
            exact,
            position: exact ? bare(ownRecord!) : { operationTime: mine },
            streamCovers: true,
          };
    if (theirs && (!newest || theirs.greaterThan(newest.time)))
      newest = {
        collection,
        time: theirs,
        key,
        exact: false,
        position: position!,
        streamCovers: newest !== null,
      };
    if (newest) found.push(newest);
  }
  return found;
}

/** A position as a public event may show it: without what is stored beside it (`coverage`, `backfill`). */
function bare(position: StreamPosition): StreamPosition {
  const { backfill: _backfill, ...rest } = withoutCoverage(position);
  return rest as StreamPosition;
}

/**
 * A database stream: for each collection the newer of its own record's coverage and the
 * collection stream's record is authoritative; it starts at the oldest of those (collections with
 * neither are new and hold nothing back). That is its own position: its own token, exactly;
 * otherwise that cluster time (`startAtOperationTime`, inclusive), also when another stream's
 * record has the same time as its own. With `oplogOldest` (the oplog's oldest entry now), a
 * collection whose newest position is older than that holds nothing back while another's is still
 * in the oplog: it is listed in `fellOff` (its history is lost), and the stream starts at the
 * oldest of the others. When all fell off, the server's answer decides, as without it.
 */
export function databaseStreamStart(
  ownKey: string,
  ownRecord: StreamPosition | null,
  collections: readonly CollectionRecord[],
  oplogOldest: mongo.Timestamp | null = null,
): StartDecision {
  const others = collections.filter((c) => c.position !== null);
  const covered = newestPerCollection(ownKey, ownRecord, collections);
  if (covered === null)
    return ownRecord && !covering(ownRecord) && others.length === 0
      ? own(ownRecord)
      : {
          ...previousRule(ownRecord, others),
          ...(ownRecord && !covering(ownRecord) && { coverageMissing: ownKey }),
        };
  const fellOff = oplogOldest ? covered.filter((c) => c.time.lessThan(oplogOldest)) : [];
  // All fell off: the oldest still holds the start back, and the server's answer decides for the stream.
  const inside =
    fellOff.length > 0 && fellOff.length < covered.length
      ? covered.filter((c) => !fellOff.includes(c))
      : covered;
  let oldest: Covered | null = null;
  // At equal times an inexact start wins: another stream's token may point earlier into one transaction's events than ours.
  for (const newest of inside)
    if (
      !oldest ||
      newest.time.lessThan(oldest.time) ||
      (newest.time.equals(oldest.time) && oldest.exact)
    )
      oldest = newest;
  const lost: Pick<StartDecision, 'fellOff' | 'oplogOldest'> =
    inside === covered
      ? {}
      : {
          fellOff: fellOff.map(({ collection, key, position, time, streamCovers }) => ({
            collection,
            key,
            position,
            time,
            streamCovers,
          })),
          oplogOldest: oplogOldest!,
        };
  if (oldest === null || (oldest.exact && timeOf(ownRecord!)!.equals(oldest.time)))
    return { ...own(ownRecord), ...lost };
  return {
    position: { operationTime: oldest.time },
    from: 'replaced',
    reason: {
      kind: 'covered',
      key: oldest.key,
      collection: oldest.collection,
      time: oldest.time,
      hadOwn: !!ownRecord,
    },
    ...lost,
  };
}

/**
 * The rule for records whose order or coverage cannot be told (tokens without a readable cluster
 * time, a database record without coverage): its own record when it has one, else the oldest of
 * the others.
 */
function previousRule(
  ownRecord: StreamPosition | null,
  others: readonly CollectionRecord[],
): StartDecision {
  if (ownRecord) return own(ownRecord);
  const oldest = oldestOf(others);
  if (!oldest) return own(null);
  const { from: key, position, unordered } = oldest;
  if (unordered !== undefined && unordered >= 2)
    return { position, from: 'replaced', reason: { kind: 'unordered', key, count: unordered } };
  const collection = others.find((c) => c.key === key)!.collection;
  return {
    position,
    from: 'replaced',
    reason: { kind: 'covered', key, collection, time: timeOf(position), hadOwn: false },
  };
}
