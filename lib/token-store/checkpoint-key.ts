/** `<keyPrefix>:<consumer>:<database>:<collection>`: one position per consumer and collection. */
export function checkpointKey(keyPrefix: string, consumer: string, database: string, collection: string): string {
  return `${keyPrefix}:${consumer}:${database}:${collection}`;
}
