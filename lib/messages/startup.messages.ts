import { DEFAULT_CONNECTION_NAME } from '../change-stream.constants.js';

/** Startup: module options, connections, handler discovery. */
export const startupMessages = {
  optionRequired: (name: string, hint: string) =>
    `ChangeStreamModule: option "${name}" is required. ${hint}`,
  optionInvalid: (name: string, value: unknown, expected: string) =>
    `ChangeStreamModule: option "${name}" is ${JSON.stringify(value)}; expected ${expected}.`,
  durabilityMismatch: (handlers: string[], positionsDurable: boolean) =>
    positionsDurable
      ? `ChangeStreamModule: ${handlers.join(', ')} may dead-letter events, but dead letters would be kept in memory while ` +
        `positions are stored durably: a restart would lose those events for good. Set "deadLetterStore" to a durable store ` +
        `(or pass "redis" instead of "tokenStore", which stores both in Redis).`
      : `ChangeStreamModule: ${handlers.join(', ')} may dead-letter events into a durable store while positions are kept ` +
        `in memory. Store positions durably too: set "redis" or a durable "tokenStore".`,
  missingConnection: (connectionName: string, handlers: string[]) =>
    `ChangeStreamModule: no mongoose connection named "${connectionName}" for ${handlers.join(', ')}. ` +
    `Import MongooseModule.forRoot(uri${connectionName === DEFAULT_CONNECTION_NAME ? '' : `, { connectionName: '${connectionName}' }`}) in the same application.`,
  connectionWithoutDatabase: (connectionName: string, collection: string) =>
    `ChangeStreamModule: mongoose connection "${connectionName}" has no database after connecting, so the stream of "${collection}" has no key. Name the database in the URI or in { dbName }.`,
  keyClash: (key: string, namespace: string, first: string, second: string) =>
    `ChangeStreamModule: connections "${first}" and "${second}" both watch ${namespace}, so their ` +
    `positions would share the key "${key}". Watch them from separate services (each with its own consumer name), or use different database names.`,
  requestScoped: (className: string, cause: string) =>
    `${className} is request-scoped (${cause}); its @OnChange handlers are skipped (a stream needs a single, long-lived instance). ` +
    `Move the handlers to a singleton provider, or inject the request-scoped dependency elsewhere.`,
  redisUrlWithoutScheme: () =>
    'ChangeStreamModule: option "redis" is a string without a "scheme://" (a typo such as "redis//host:6379" or "redis:/host:6379"?); ' +
    'ioredis would read it as a unix socket path and never connect. Expected redis://host:port, rediss://host:port (TLS) or unix:///path/to/socket.',
  notOpenAtStartup: (keys: string[], timeoutMs: number) =>
    `Streams not open ${timeoutMs} ms after bootstrap, still trying in the background: ${keys.join(', ')}.`,
  collectionMissing: (database: string, collection: string, handlers: string[]) =>
    `ChangeStreamModule: ${database}.${collection} does not exist (yet) but ${handlers.join(', ')} watch${handlers.length === 1 ? 'es' : ''} it: a typo in the collection or database name? ` +
    dottedCollectionHint(collection) +
    `The stream opens anyway and sees the collection's events once it is created.`,
  noHandlers: () =>
    'ChangeStreamModule: no @OnChange handlers found, so no stream is opened. Handlers must be methods of singleton providers listed in a module\'s "providers".',
  handlerOnController: (className: string) =>
    `${className} is a controller: its @OnChange handlers are not run. Move them to a provider (listed in "providers").`,
  terminusMissing: () =>
    'ChangeStreamHealthIndicator needs @nestjs/terminus: npm install @nestjs/terminus',
  abortTimeoutTooLong: (handlerTimeoutMs: number, ttlMs: number) =>
    `ChangeStreamModule: handlerTimeoutMs (${handlerTimeoutMs}) with onHandlerTimeout: 'abort' must be at most half of leases.ttlMs ` +
    `(leases.ttlMs is ${ttlMs} ms, so at most ${Math.floor(ttlMs / 2)} ms), so that a call that stops on its signal ends well within the time another instance waits before it takes the stream over. ` +
    `Lower handlerTimeoutMs, raise leases.ttlMs to at least ${2 * handlerTimeoutMs}, or use onHandlerTimeout: 'warn'.`,
  unknownOptions: (unknown: string[], known: readonly string[], group?: string) =>
    group === undefined
      ? `ChangeStreamModule: unknown option(s) ${unknown.map((name) => `"${name}"`).join(', ')}. Known options: ${known.join(', ')}.`
      : `ChangeStreamModule: unknown option(s) ${unknown.map((name) => `"${group}.${name}"`).join(', ')}. Known in "${group}": ${known.join(', ')}.`,
  redisUndefined: () =>
    'ChangeStreamModule: option "redis" is present but undefined (an unset environment variable?). Set it, or leave the option out to keep positions in memory on purpose.',
  redisEmpty: (value: null | '') =>
    `ChangeStreamModule: option "redis" is ${value === null ? 'null' : 'an empty string'} (an unset environment variable?). Pass a redis:// URL, ioredis options or a client, or leave the option out to keep positions in memory on purpose.`,
  redisUrlScheme: (scheme: string) =>
    `ChangeStreamModule: option "redis" is a "${scheme}:" URL; expected redis://host:port, rediss://host:port (TLS) or unix:///path/to/socket.`,
  redisAndTokenStore: () => 'ChangeStreamModule: set either "redis" or "tokenStore", not both.',
};

/** `'shop.orders'` is one collection name; a database is named with the object form. */
function dottedCollectionHint(collection: string): string {
  const dot = collection.indexOf('.');
  if (dot <= 0) return '';
  const [database, name] = [collection.slice(0, dot), collection.slice(dot + 1)];
  return `'${collection}' is taken as one collection name, in the connection's database; to watch ${name} in database ${database}, write @OnChange({ collection: '${name}', database: '${database}' }). `;
}
