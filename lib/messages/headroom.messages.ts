import { duration } from './duration.js';

/** History headroom: the oplog window and each stream's distance to its end. */
export const headroomMessages = {
  headroomNotSampled: () => 'the oplog has not been sampled yet',
  headroomOff: () => 'history headroom sampling is off (historyHeadroom: false)',
  headroomNoPosition: () =>
    "the stream's position is unknown: none is stored yet (no event handled and saved, and the server gave no start position)",
  headroomPositionUnreadable: (error: string) => `the stored position cannot be read (${error})`,
  headroomPositionWithoutTime: () =>
    "the cluster time of the stream's position is unknown: its resume token carries no time this module can read (not a mongod token)",
  oplogMissing: () =>
    'local.oplog.rs is missing or empty on the node this connection reads (not a replica set member?)',
  oplogUnauthorized: (error: string) =>
    `not authorized to read local.oplog.rs (${error}); grant "find" on local.oplog.rs (clusterMonitor, or read on local, includes it)`,
  oplogThroughMongos: (error: string) =>
    `the connection goes through mongos, which has no oplog of its own (${error}); each shard's oplog must be watched on the shard`,
  oplogRefused: (error: string) =>
    `the server refuses to show local.oplog.rs (${error}); some hosted tiers (Atlas Flex clusters, for one) do not allow it`,
  oplogUnreadable: (error: string) => `the oplog could not be read this time (${error})`,
  oplogStartUnreadable: (error: string) =>
    `the oplog's oldest entry could not be read for where the database stream starts (${error}); the start is retried with backoff rather than decided without it (a collection whose position fell off the oplog would hold the whole stream back)`,
  oplogStartGivenUp: (key: string, attempts: number, error: string) =>
    `Stream ${key}: the oplog's oldest entry could not be read in ${attempts} attempts at its start (last: ${error}); it starts without it: a collection whose position fell off the oplog holds the whole stream back, and the server's answer and onHistoryLost decide for all its collections. If this server never answers that read, set historyHeadroom: false.`,
  headroomUnavailable: (connectionName: string, keys: string[], reason: string) =>
    `History headroom of connection "${connectionName}" (${keys.join(', ')}) is unknown: ${reason}. ` +
    `Streams keep working; only the early warning before history is lost is missing.`,
  historyHeadroomLow: (key: string, headroomMs: number, windowMs: number, warnMs: number) =>
    headroomMs < 0
      ? `Stream ${key}: its position is ${duration(-headroomMs)} older than the oldest oplog entry (oplog window ${duration(windowMs)}): history is lost, and the next reopen applies onHistoryLost.`
      : `Stream ${key}: history headroom ${duration(headroomMs)} (oplog window ${duration(windowMs)}) is below historyHeadroom.warnMs (${duration(warnMs)}): ` +
        (windowMs < warnMs
          ? 'the whole oplog window is shorter than that; enlarge the oplog (replSetResizeOplog, oplogMinRetentionHours) or lower warnMs.'
          : 'the consumer is falling behind or stopped; once its position falls off the oplog, onHistoryLost applies.'),
  historyHeadroomLowReason: (headroomMs: number, windowMs: number) =>
    `history headroom ${headroomMs < 0 ? `lost (${duration(-headroomMs)} past the oldest oplog entry)` : duration(headroomMs)}, oplog window ${duration(windowMs)}`,
  historyHeadroomRecovered: (key: string, headroomMs: number, windowMs: number) =>
    `Stream ${key}: history headroom is ${duration(headroomMs)} again (oplog window ${duration(windowMs)}).`,
};
