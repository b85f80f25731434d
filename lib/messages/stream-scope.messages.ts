import { quotedDatabase } from './database-name.js';

// The `streams` option's texts (database streams), spread into `messages` (change-stream.messages.ts).
export const streamScopeMessages = {
  streamsOptionInvalid: (path: string, value: unknown) =>
    `ChangeStreamModule: option "${path}" is ${JSON.stringify(value)}; expected 'collection' or 'database', ` +
    `or { default?: 'collection' | 'database', connections?: { [connectionName]: 'collection' | 'database' } }.`,
  databaseStreamOptionConflict: (
    connectionName: string,
    first: string,
    second: string,
    option: string,
    firstValue: unknown,
    secondValue: unknown,
  ) =>
    `streams: 'database' on connection '${connectionName}': ${first} and ${second} would share one database stream but set ` +
    `different "${option}" (${JSON.stringify(firstValue)} vs ${secondValue === undefined ? 'unset' : JSON.stringify(secondValue)}), which shapes every event of it. ` +
    `Give them the same value, or use streams: { connections: { '${connectionName}': 'collection' } } for that connection.`,
  startingFromReplacedPosition: (
    key: string,
    from: string,
    collection: string,
    at: string,
    hadOwn: boolean,
  ) =>
    `Stream ${key} starts at ${at}, not ${hadOwn ? 'at its own stored position' : 'now (it has no stored position yet)'}: ` +
    `${from} holds the newest stored position for collection '${collection}' there, and a stream starts at the oldest ` +
    `of its collections' newest positions. Events after it that were already handled come again (at-least-once); ` +
    `none is skipped. The other keys are left for a roll-back.`,
  positionCoverageMissing: (key: string, recordKey: string) =>
    `Stream ${key}: the database stream position stored under ${recordKey} does not say which collections it covers ` +
    `(the "coverage" that encodePosition writes; a custom position store that keeps only some fields drops it), ` +
    `so it cannot tell which stored position is newest for each collection: it starts as before coverage was recorded, ` +
    `from its own position when it has one. A collection that joined or left a database stream may then miss or replay events: ` +
    `store the encoded value whole.`,
  startingFromUnorderedPosition: (key: string, from: string, others: number) =>
    `Stream ${key} has no stored position yet, and the ${others} stored positions of the other stream mode's streams ` +
    `for its collections carry no cluster time it can read (not a mongod server), so it cannot tell the oldest: ` +
    `it starts after the first one (${from}). Events written before that position and not yet handled by the other ` +
    `streams are not delivered: on such a server, switch modes only when nothing is left unhandled.`,
  streamsConnectionUnknown: (names: string[], known: string[]) =>
    `ChangeStreamModule: option "streams.connections" names ${names.map((n) => `'${n}'`).join(', ')}, which no handler ` +
    `of this module uses (connections with handlers: ${known.map((n) => `'${n}'`).join(', ') || 'none'}): ` +
    `a typo leaves those connections in the default mode.`,
  databasePatternInvalid: (
    where: string,
    collection: string,
    database: string | RegExp,
    rule: string,
  ) =>
    `@OnChange({ collection: '${collection}', database: ${quotedDatabase(database)} }) on ${where}: the database pattern is invalid: ${rule}.`,
  tenantStreamBackfill: (
    decorator: string,
    collection: string,
    database: string | RegExp,
    handlers: string[],
  ) =>
    `${decorator}({ collection: '${collection}', database: ${quotedDatabase(database)} }) on ${handlers.join(', ')} asks for backfill, which a ` +
    `deployment stream (a database pattern) does not offer: a backfill reads one collection of one database. ` +
    `Remove backfill, or backfill each database from a handler of its own: one Mongoose connection per database ` +
    `(MongooseModule.forRoot(uri, { connectionName: 'tenant_a', dbName: 'tenant_a' })) and ${decorator}('${collection}', { connectionName: 'tenant_a', backfill }).`,
  deploymentStreamOptionConflict: (
    connectionName: string,
    first: string,
    second: string,
    option: string,
    firstValue: unknown,
    secondValue: unknown,
  ) =>
    `The deployment stream of connection '${connectionName}' (handlers with a database pattern): ${first} and ${second} set ` +
    `different "${option}" (${JSON.stringify(firstValue)} vs ${JSON.stringify(secondValue)}), which shapes every event of it. ` +
    `Give them the same value (a handler that leaves it unset takes the stream's).`,
};
