// Stream modes and the names that stand for a multi-collection stream in its key: read by options, redis and stream.

/** How a connection's handlers (without a database pattern) are grouped into streams: one per collection, or one per database. */
export type StreamMode = 'collection' | 'database';

/** The stream modes, as the `streams` option accepts them. */
export const STREAM_MODES: readonly StreamMode[] = ['collection', 'database'];

/**
 * The `plan.collection` of a deployment stream (handlers with a database pattern), and the
 * database part of its key `<prefix>:{<consumer>:$deployment:<connectionName>}`: no database is
 * named `$deployment` (MongoDB forbids `$`), so no other stream's key can be the same.
 */
export const DEPLOYMENT_STREAM = '$deployment';

/**
 * The `plan.collection` of a database stream, so its position key is
 * `<prefix>:{<consumer>:<db>:$database}`: no collection is named `$database` (MongoDB forbids `$`).
 */
export const DATABASE_STREAM = '$database';
