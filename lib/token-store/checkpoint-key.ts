/**
 * `<keyPrefix>:{<consumer>:<database>:<collection>}`: one position per consumer and collection.
 * The braces are a Redis Cluster hash tag: every key of one stream (position, lease) lands in
 * the same slot, so one script can touch them together.
 */
export function checkpointKey(keyPrefix: string, consumer: string, database: string, collection: string): string {
  return `${keyPrefix}:{${consumer}:${database}:${collection}}`;
}

/** The key of versions before 0.2, read once when the current key does not exist yet. */
export function legacyCheckpointKey(keyPrefix: string, consumer: string, database: string, collection: string): string {
  return `${keyPrefix}:${consumer}:${database}:${collection}`;
}
