import { DEFAULT_CONNECTION_NAME } from './change-stream.constants.js';
import { CATCH_UP_REPORT_EVERY_MS } from './options/defaults.js';
import type { StreamPause } from './interfaces/change-stream-status.interface.js';
import { leftPositionKey } from './redis/redis-keys.js';
import { streamScopeMessages } from './stream-scope.messages.js';

/** Log and error texts in one place, so they stay consistent and greppable. */
export const messages = {
  ...streamScopeMessages,
  optionRequired: (name: string, hint: string) =>
    `ChangeStreamModule: option "${name}" is required. ${hint}`,
  optionInvalid: (name: string, value: unknown, expected: string) =>
    `ChangeStreamModule: option "${name}" is ${JSON.stringify(value)}; expected ${expected}.`,
  inMemoryStore: () =>
    'No "redis" option: resume tokens are kept in memory and will NOT survive a restart. ' +
    'Events written while the app is down will be missed. Set "redis" in production.',
  inMemoryDeadLetters: () =>
    'Handlers may dead-letter but there is no Redis: dead letters are kept in memory and are lost on restart. ' +
    'Set "redis" or "deadLetterStore".',
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
  storeUnreachable: (where: string, error: string) =>
    `Position store unreachable: ${where} (${error}). Streams wait for it and start from their stored positions once it answers.`,
  redisUrlWithoutScheme: () =>
    'ChangeStreamModule: option "redis" is a string without a "scheme://" (a typo such as "redis//host:6379" or "redis:/host:6379"?); ' +
    'ioredis would read it as a unix socket path and never connect. Expected redis://host:port, rediss://host:port (TLS) or unix:///path/to/socket.',
  redisCommandFailed: (where: string, connectionError: string) =>
    `${where} unreachable (${connectionError})`,
  redisAuthMissing: (where: string, error: string) =>
    `ChangeStreamModule: ${where} requires a password and the "redis" option gave none (${error}). ` +
    `Add it to the URL (redis://:password@host:6379, or redis://user:password@host:6379) or set password (and username) in the ioredis options.`,
  redisAuthFailed: (where: string, error: string) =>
    `ChangeStreamModule: ${where} rejected the credentials (${error}). Check the username and password in the "redis" option.`,
  waitingForStore: (error: string) => `waiting for the position store: ${error}`,
  leaseStoreSilent: (ttlMs: number) =>
    `no answer from Redis for more than the lease TTL (${ttlMs} ms), so no live holder of the stream is known`,
  waitingForLease: (error: string) =>
    `waiting for the position store to ask for the lease: ${error}`,
  cannotSave: (error: string) => `cannot save the position: ${error}`,
  positionMissingResumingFromMemory: (key: string) =>
    `Stream ${key}: no position is stored any more (did Redis lose its data?); resuming from the last position this instance handled instead of from now.`,
  saveStalled: (ms: number) => `the position store has not answered a save for ${ms / 1000} s`,
  saveRecovered: (key: string, attempts: number) =>
    `Saving the position of ${key} works again (after ${attempts} failed attempt(s)).`,
  finalSaveFailed: (key: string, unsaved: number, restoreCommand: string | null) =>
    `Stream ${key}: the final position could not be stored (the save failed or the shutdown timeout ran out). If the store still holds its stored position, up to ${unsaved} handled event(s) after it will be delivered again on the next start${restoreCommand ? `; if it lost it (Redis restarted without persistence), the next start begins from now and skips everything after it, unless the position this instance reached is restored first: ${restoreCommand}` : ''}.`,
  shutdownWaiting: (key: string, what: string, leftMs: number) =>
    `Stream ${key}: shutdown is waiting for ${what} (${leftMs} ms left of shutdownTimeoutMs).`,
  handlerFailedDuringShutdown: (handler: string, key: string, eventId: string, error: string) =>
    `Handler ${handler} failed on ${eventId} of ${key} during shutdown (${error}); the event is not acknowledged and will be delivered again on the next start.`,
  handlerStuck: (
    handlers: string[],
    key: string,
    eventId: string,
    ms: number,
    action: 'warn' | 'abort',
  ) =>
    `Handler ${handlers.join(', ') || '(none)'} has been running for ${Math.round(ms / 1000)} s on ${eventId} of ${key}` +
    (action === 'abort'
      ? '; its context.signal was aborted.'
      : '; the stream is degraded until it finishes.'),
  streamOpened: (key: string, from: 'token' | 'time' | 'invalidate' | 'now') =>
    ({
      token: `Stream ${key} opened, resuming after the stored token.`,
      time: `Stream ${key} opened, resuming from the stored cluster time (a start point stored before any event was acknowledged; there is no token yet).`,
      invalidate: `Stream ${key} opened, starting after the invalidate event (the collection was dropped or renamed).`,
      now: `Stream ${key} opened with no stored token: starting from now.`,
    })[from],
  streamReconnecting: (key: string, attempt: number, delayMs: number, error: string) =>
    `Stream ${key} broke (${error}); reopening from the last checkpoint in ${delayMs} ms (attempt ${attempt}).`,
  streamClosedByServer: () => 'the server closed the cursor without an error',
  historyLost: (key: string, detail: string) =>
    `the stored position of ${key} cannot be resumed from (${detail}): the oplog no longer holds it, or the server rejected the token. ` +
    `With the "fail" policy the stored value is kept: resync the data, then delete the key to start from now.`,
  handlerFailed: (handler: string, key: string, eventId: string, attempts: number, error: string) =>
    `Handler ${handler} failed on ${eventId} of ${key} after ${attempts} attempt(s): ${error}. ` +
    `The stream is stopped before this event; it will be delivered again after a restart. To get past an event that can never ` +
    `succeed, use onFailure: 'dead-letter' or a callback for this handler.`,
  handlerAttemptFailed: (
    handler: string,
    eventId: string,
    attempt: number,
    delayMs: number,
    error: string,
  ) =>
    `Handler ${handler} threw on ${eventId} (attempt ${attempt}: ${error}); retrying in ${delayMs} ms.`,
  deadLettersDropped: (ids: string[], limit: string) =>
    `Dropped ${ids.length} dead letter(s), the oldest, to keep the store within deadLetterRetention (${limit}): ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', …' : ''}. ` +
    `Their events are gone for good; replay or discard dead letters sooner, or raise the limit.`,
  replayRefused: (key: string, state: string, holder: string | null) =>
    `Dead letter replay refused: this instance is not consuming stream ${key} (${holder ? `it is held by ${holder}` : `state ${state}`}). ` +
    `A replay runs under the stream's lease and in its document's order: replay it on ${holder ?? 'the instance that holds the stream'}, or once this one holds it.`,
  deadLettered: (handler: string, key: string, eventId: string, id: string) =>
    `Handler ${handler} gave up on ${eventId} of ${key}: stored as dead letter ${id}; the stream goes on.`,
  deadLetterSaveFailed: (key: string, error: string, delayMs: number) =>
    `Storing a dead letter of ${key} failed (${error}); retrying in ${delayMs} ms. The stream waits: the event is not acknowledged until it is recorded.`,
  failureCallbackThrew: (handler: string, eventId: string, error: string) =>
    `The onFailure callback for ${handler} threw on ${eventId} (${error}); the stream stops before this event.`,
  historyLostRestart: (key: string, reason: string) =>
    `DATA LOSS on ${key}: ${reason}. Policy "restart-from-now": reading goes on from now; changes since the lost position are NOT delivered.`,
  invalidated: (key: string) =>
    `Stream ${key} was invalidated (collection dropped or renamed); reopening after the invalidate event.`,
  readingPaused: (key: string, unsaved: number) =>
    `Stream ${key}: ${unsaved} handled events are not stored yet (store unreachable); reading paused until a save succeeds.`,
  checkpointFailed: (key: string, error: string) =>
    `Saving the position of ${key} failed (${error}); retrying with backoff (further failures are logged at debug level). Handled events are kept in memory until then.`,
  drainTimedOut: (key: string, timeoutMs: number) =>
    `Stream ${key}: in-flight handlers did not finish within ${timeoutMs} ms (shutdownTimeoutMs); their context.signal was aborted, and their events are not acknowledged: they come again once this instance's lease expires (leases.ttlMs after its last renewal), on whichever instance takes the stream (without leases: on the next start).`,
  notOpenAtStartup: (keys: string[], timeoutMs: number) =>
    `Streams not open ${timeoutMs} ms after bootstrap, still trying in the background: ${keys.join(', ')}.`,
  leaseAcquired: (key: string, instance: string, fence: number) =>
    `Stream ${key}: ${instance} is now the active consumer (lease fence ${fence}).`,
  leaseReload: (key: string) =>
    `Stream ${key}: an instance left its last position when the store lost this stream's data; resuming from it (events after it are delivered again).`,
  orphanLeft: (key: string, instance: string) =>
    `Stream ${key}: the store lost this stream's data (position, lease or fence counter) while ${instance} was reading; ${instance} left the position it reached at ${leftPositionKey(key)} for the next holder, which resumes from it.`,
  orphanNotLeftYet: (key: string, error: string) =>
    `Stream ${key}: could not check for lost data after losing the lease (${error}); retrying with backoff.`,
  orphanNotLeft: (key: string, restoreCommand: string, error: string) =>
    `Stream ${key}: could not check for lost data after losing the lease (${error}) before this instance stopped. If Redis lost its data, the holder of the stream started without the position this instance reached; to make it resume from there (within a renew interval, or at the next start), run: ${restoreCommand}`,
  leaseFenceMissing: (key: string, instance: string, waitMs: number) =>
    `Stream ${key}: ${instance} took the lease, but its fence counter was missing on a Redis that started less than a lease TTL ago (it restarted empty), and another instance was seen holding or announcing the stream; waiting ${waitMs} ms before reading, until any lease handed out before the restart has expired.`,
  handlerSetsDiffer: (key: string, instance: string, mine: string, other: string, theirs: string) =>
    `Stream ${key}: instances of this consumer run different handlers for it: ${instance} (this instance) runs ${mine}; ${other} runs ${theirs}. Whichever holds the lease handles each event with its own handlers only, so the others' handlers miss those events. Expected while a deploy that changes the handlers rolls out; otherwise two apps share one consumer name: give each its own consumer name.`,
  leaseStandby: (key: string, instance: string, holder: string | null) =>
    `Stream ${key}: ${instance} stands by${holder ? `; ${holder} is active` : ''}.`,
  leaseLost: (key: string, instance: string, reason: string) =>
    `Stream ${key}: ${instance} lost its lease (${reason}); it stopped reading, does not acknowledge events in flight, and stands by.`,
  leaseHandedOver: (key: string, instance: string, why: string, saved: boolean) =>
    `Stream ${key}: ${instance} handed the stream over (${why}) after draining${saved ? ' and saving its position' : '; its last position could not be saved, so the next holder repeats a few events'}.`,
  leaseRenewRefused: () => 'another instance holds it now',
  leaseUnconfirmed: (ttlMs: number) =>
    `no renewal confirmed within the ${ttlMs} ms lease TTL; Redis may be unreachable`,
  leaseAttemptFailed: (key: string, error: string) =>
    `Stream ${key}: could not ask for the lease (${error}); retrying with backoff.`,
  leaseReleaseFailed: (key: string, error: string) =>
    `Stream ${key}: releasing the lease failed (${error}); a standby takes over when it expires.`,
  writeRefused: (key: string, detail: string) =>
    `Stream ${key}: position write refused (${detail}).`,
  leaseShed: (key: string, instance: string, held: number, share: number) =>
    `${instance} holds ${held} streams, more than its fair share of ${share}: handing ${key} over to another instance that can take it.`,
  heartbeatFailed: (instance: string, error: string) =>
    `${instance} could not announce itself to the other instances (${error}); its share of streams is computed from the last known count.`,
  leasesUnsupported: () =>
    'ChangeStreamModule: option "leases" is set, but the tokenStore has no "leases" (LeaseStore) implementation. Use the Redis store, implement LeaseStore, or set leases: false.',
  leasesOff: (why: string) =>
    `Leases are off (${why}): run a single instance of this consumer, or two would handle events twice.`,
  collectionMissing: (namespace: string, handlers: string[]) =>
    `ChangeStreamModule: ${namespace} does not exist (yet) but ${handlers.join(', ')} watch${handlers.length === 1 ? 'es' : ''} it: a typo in the collection or database name? ` +
    `The stream opens anyway and sees the collection's events once it is created.`,
  noHandlers: () =>
    'ChangeStreamModule: no @OnChange handlers found, so no stream is opened. Handlers must be methods of singleton providers listed in a module\'s "providers".',
  handlerOnController: (className: string) =>
    `${className} is a controller: its @OnChange handlers are not run. Move them to a provider (listed in "providers").`,
  shutdownHooksOff: () =>
    'No SIGTERM handler is installed: call app.enableShutdownHooks() in main.ts, or a SIGTERM kills the process without draining the streams (their last events are then delivered again).',
  streamClosed: (key: string, saved: boolean, holding: boolean, positioned = true) =>
    `Stream ${key} ${!holding ? 'closed (it was on standby here)' : !positioned ? 'closed; it has no position yet (no event handled, and the server gave no start position)' : saved ? 'drained and closed; its position is stored' : 'closed'}.`,
  catchingUp: (
    key: string,
    handled: number,
    lagMs: number,
    perSecond: number,
    headroomMs: number | null = null,
  ) =>
    `${key}: ${handled.toLocaleString('en-US')} events handled, ${duration(lagMs)} behind, catching up at ${Math.round(perSecond).toLocaleString('en-US')}/s` +
    (headroomMs === null ? '.' : `, history headroom ${duration(Math.max(0, headroomMs))}.`),
  fallingBehind: (
    key: string,
    handled: number,
    lagMs: number,
    inFlightMs: number,
    headroomMs: number | null = null,
  ) =>
    `${key}: ${handled.toLocaleString('en-US')} events handled, ${duration(lagMs)} behind, and no event finished in the last ${CATCH_UP_REPORT_EVERY_MS / 1000} s: the current one has been running for ${duration(inFlightMs)} (a stuck handler? see handlerStuck)` +
    (headroomMs === null ? '.' : `; history headroom ${duration(Math.max(0, headroomMs))}.`),
  tokenNotFoundResumingAtTime: (key: string, time: { t: number; i: number }, error: string) =>
    `Stream ${key}: the server did not find the stored resume token (${error}); its server-side filter changed since (a handler with other operationTypes or pipeline?). ` +
    `Resuming at the token's cluster time Timestamp({ t: ${time.t}, i: ${time.i} }) instead: events at that time are delivered again.`,
  eventTooLarge: (key: string, error: string) =>
    `Stream ${key} cannot pass an event larger than 16 MB (${error}). Set "splitLargeEvents: true" in the @OnChange options of a handler of this collection ` +
    `(MongoDB 7.0+ or 6.0.9+), or leave out pre- and post-images ("fullDocument", "fullDocumentBeforeChange") that make events this large.`,
  eventTooLargeEvenSplit: (key: string, error: string) =>
    `Stream ${key} cannot pass an event larger than 16 MB although "splitLargeEvents" is set (${error}): a single field of the event (a document in ` +
    `"fullDocument" or "fullDocumentBeforeChange", or "updateDescription") is over 16 MB by itself, which the server cannot split. Leave out the pre- or post-image that holds it.`,
  splitUnsupported: (key: string, error: string) =>
    `Stream ${key}: the server refused "splitLargeEvents" ($changeStreamSplitLargeEvent needs MongoDB 7.0+ or 6.0.9+): ${error}. Remove the option or upgrade the server.`,
  splitEventIncomplete: (key: string, detail: string) =>
    `Stream ${key}: a split event's fragments did not arrive in order (${detail}); reopening from the last acknowledged event.`,
  driverTooOld: (version: string) =>
    `ChangeStreamModule: mongoose uses the MongoDB driver ${version}, whose tryNext() does not cache resume tokens (NODE-4763/NODE-7042, fixed in mongodb 6.20.0): ` +
    `after a network error or a primary step-down the driver resumes from an older token and events are delivered again, many under load. Upgrade mongoose to 8.19+ or 9.x.`,
  terminusMissing: () =>
    'ChangeStreamHealthIndicator needs @nestjs/terminus: npm install @nestjs/terminus',
  positionFromMirror: (
    key: string,
    namespace: string,
    savedAt: Date | null,
    holder: string | null,
  ) =>
    `Stream ${key}: Redis holds no position (did it lose its data?); resuming from the copy in MongoDB (${namespace}, saved ${savedAt ? savedAt.toISOString() : 'at an unknown time'}${holder ? ` by ${holder}` : ''}). Events handled after that copy was written are delivered again.`,
  mirrorWriteFailed: (namespace: string, error: string) =>
    `Copying positions to MongoDB (${namespace}) failed (${error}); positions are still stored in Redis, and the copy is retried with the next save.`,
  mirrorWriteRecovered: (namespace: string, failures: number) =>
    `Copying positions to MongoDB (${namespace}) works again (after ${failures} failed write(s) in all).`,
  mirrorWriteRefused: (
    key: string,
    namespace: string,
    lease: { holder: string; fence: number },
    stored: { generation: number; fence: number } | null,
  ) =>
    `Stream ${key}: the copy of its position in MongoDB (${namespace}) was not replaced: ${stored ? `it was written under fence ${stored.fence} (generation ${stored.generation})` : 'another write came first'}, newer than this instance's lease (${lease.holder}, fence ${lease.fence}). Another instance holds the stream now, or did after this lease.`,
  streamFailed: (key: string, reason: string) => `Stream ${key} failed: ${reason}`,
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
  onChangeNotMethod: (collection: string, where: string) =>
    `@OnChange('${collection}') on ${where}: it decorates methods only.`,
  onChangeNoCollection: (where: string) =>
    `@OnChange on ${where}: the collection name must be a non-empty string.`,
  onChangeUnknownOptions: (
    collection: string,
    where: string,
    unknown: string[],
    known: readonly string[],
  ) =>
    `@OnChange('${collection}') on ${where}: unknown option(s) ${unknown.map((key) => `"${key}"`).join(', ')}. Known options: ${known.join(', ')}.`,
  onChangeOptionInvalid: (collection: string, handler: string, option: string, rule: string) =>
    `@OnChange('${collection}') on ${handler}: "${option}" ${rule}.`,
  streamOptionConflict: (
    collection: string,
    first: string,
    second: string,
    option: string,
    firstValue: unknown,
    secondValue: unknown,
  ) =>
    `@OnChange('${collection}'): ${first} and ${second} share one stream but set ` +
    `different "${option}" (${JSON.stringify(firstValue)} vs ${JSON.stringify(secondValue)}). ` +
    `Stream-level options must agree; move the difference into the handler, or give them the same value.`,
  testingOptionsNotObject: () => 'ChangeStreamTestingModule: options must be an object.',
  testingUnknownOptions: (unknown: string[], known: readonly string[]) =>
    `ChangeStreamTestingModule: unknown option(s) ${unknown.map((n) => `"${n}"`).join(', ')}. Known options: ${known.join(', ')}. ` +
    `Stores, Redis, leases and timeouts do not apply: nothing is connected.`,
  testingOptionInvalid: (name: string, value: unknown, expected: string) =>
    `ChangeStreamTestingModule: option "${name}" is ${JSON.stringify(value)}; expected ${expected}.`,
  invalidStoredToken: (key: string, reason: string) =>
    `Stored position under "${key}" is not a valid resume token (${reason}). ` +
    `It was left in place for inspection. To start from now instead, delete the key ` +
    `(events written since the lost position will not be delivered).`,
  fencedWrite: (key: string, holder: string, fence: number, detail: string) =>
    `Position write to "${key}" refused for ${holder} (fence ${fence}): ${detail}.`,
  redisConnectionError: (where: string, error: string) =>
    `${where}: connection error (${error}); ioredis keeps retrying.`,
  redisConnectionRestored: (where: string) => `${where}: connection restored.`,
  headroomNotSampled: () => 'the oplog has not been sampled yet',
  headroomOff: () => 'history headroom sampling is off (historyHeadroom: false)',
  headroomNoPosition: () => 'no position is stored for this stream yet',
  headroomPositionUnreadable: (error: string) => `the stored position cannot be read (${error})`,
  headroomPositionWithoutTime: () =>
    'the position does not carry its cluster time (a resume token that is not a mongod token)',
  oplogMissing: () =>
    'local.oplog.rs is missing or empty on the node this connection reads (not a replica set member?)',
  oplogUnauthorized: (error: string) =>
    `not authorized to read local.oplog.rs (${error}); grant "find" on local.oplog.rs (clusterMonitor, or read on local, includes it)`,
  oplogThroughMongos: (error: string) =>
    `the connection goes through mongos, which has no oplog of its own (${error}); each shard's oplog must be watched on the shard`,
  oplogRefused: (error: string) =>
    `the server refuses to show local.oplog.rs (${error}); some hosted tiers (Atlas Flex clusters, for one) do not allow it`,
  oplogUnreadable: (error: string) => `the oplog could not be read this time (${error})`,
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
  moduleDisabled: (handlers: number, streams: string[]) =>
    `ChangeStreamModule is disabled (enabled: false): ${handlers} handler(s) validated; no stream opened, no lease taken on this instance` +
    (streams.length > 0 ? ` (would run: ${streams.join(', ')}).` : '.'),
  handlersDisabled: (handlers: string[], streamsNotOpened: string[]) =>
    `Handler(s) disabled (enabled: false), not called: ${handlers.join(', ')}` +
    (streamsNotOpened.length > 0
      ? `; stream(s) not opened, every handler disabled: ${streamsNotOpened.join(', ')}.`
      : '.'),
  streamPaused: (
    key: string,
    pause: StreamPause,
    holding: 'lease' | 'no lease' | 'leases off' = 'lease',
  ) =>
    `Stream ${key} paused ${pause.scope === 'fleet' ? 'fleet-wide' : 'on this instance'}${pause.by ? ` by ${pause.by}` : ''}${pause.reason ? ` (${pause.reason})` : ''}: ` +
    (holding === 'lease'
      ? `it stops reading, drains, saves its position and releases its lease until resumed.`
      : holding === 'leases off'
        ? `it stops reading, drains and saves its position until resumed.`
        : `it holds no lease (waiting for one), so there is nothing to drain, save or release; it takes no lease until resumed.`),
  streamPauseDeferred: (key: string) =>
    `Stream ${key} has no position to resume from yet (the server gave none at open and no event was handled): the pause takes effect after the first handled event, so nothing written during the pause is skipped.`,
  streamPauseDrained: (key: string, saved: boolean, released: boolean) =>
    `Stream ${key} is paused: drained${saved ? ', position saved' : '; its last position could not be saved, so a few events are delivered again after resuming'}${released ? ', lease released' : ''}.`,
  streamResumed: (key: string, scope: 'local' | 'fleet') =>
    `Stream ${key} resumed ${scope === 'fleet' ? 'fleet-wide (pause key gone)' : 'on this instance'}.`,
  fleetPauseUnsupported: (key: string) =>
    `Stream ${key}: a fleet-wide pause needs leases (the Redis store, or a tokenStore whose leases implement writePause and renewReadingPause); paused on this instance only.`,
  controlUnknownStream: (stream: string, known: string[]) =>
    `ChangeStreamControl: no stream "${stream}" in this application. Name it by collection (with { connectionName } for another connection) or by key; streams: ${known.join(', ') || '(none)'}.`,
  controlDisabled: (key: string) =>
    `ChangeStreamControl: stream ${key} is disabled on this instance (enabled: false), so it cannot be paused or resumed here except fleet-wide ({ fleet: true }).`,
  fleetPauseOfDisabled: (key: string, resumed: boolean) =>
    `Stream ${key} is disabled on this instance (enabled: false): the fleet-wide pause key was ${resumed ? 'deleted; the instances where the stream is enabled may take it again' : 'written; the instances where the stream is enabled stop reading it within one lease renewal'}. Nothing runs here to ${resumed ? 'resume' : 'pause'}.`,
  fleetPauseUnsupportedDisabled: (key: string) =>
    `ChangeStreamControl: stream ${key} is disabled on this instance (enabled: false), and a fleet-wide pause needs leases (the Redis store, or a tokenStore whose leases implement writePause and renewReadingPause): nothing was paused or resumed. Call it on an instance where the stream is enabled.`,
  onChangeBadSource: (where: string, given: string) =>
    `@OnChange on ${where}: the first argument is ${given}; expected a collection name ('orders'), ` +
    `a typed name (collection<Order>('orders')), a @nestjs/mongoose @Schema() class or a Mongoose model.`,
  onChangeModelUnresolved: (
    className: string,
    connectionName: string,
    handlers: string[],
    reason: string,
  ) =>
    `@OnChange(${className}) on ${handlers.join(', ')}: cannot tell which collection ${className} is stored in: ${reason}. ` +
    `Decorate the class with @Schema() from @nestjs/mongoose (its collection is then named as Mongoose names it), ` +
    `register its model on connection "${connectionName}" under the class name (MongooseModule.forFeature([{ name: ${className}.name, schema }])), ` +
    `or name the collection: @OnChange(collection<${className}>('<name>')).`,
  onChangeBatchUnknownOptions: (
    collection: string,
    where: string,
    unknown: string[],
    known: readonly string[],
  ) =>
    `@OnChangeBatch('${collection}') on ${where}: unknown option(s) ${unknown.map((key) => `"${key}"`).join(', ')}. Known options: ${known.join(', ')}.`,
  onChangeBatchOptionInvalid: (collection: string, handler: string, option: string, rule: string) =>
    `@OnChangeBatch('${collection}') on ${handler}: "${option}" ${rule}.`,
  batchBisected: (handler: string, batch: string, firstHalf: number, error: string) =>
    `${handler} failed on ${batch} after its retries (${error}); calling it with the first ${firstHalf} and the rest apart, to find the failing events.`,
  batchLargerThanCheckpoint: (
    collection: string,
    handler: string,
    maxSize: number,
    maxEvents: number,
  ) =>
    `@OnChangeBatch('${collection}') on ${handler}: maxSize ${maxSize} is larger than checkpoint.maxEvents ${maxEvents}. ` +
    `Reading stops 2 × checkpoint.maxEvents (${2 * maxEvents}) events past the stored position, the bound on what a crash delivers again, so while one batch runs the next could not fill up. ` +
    `Lower maxSize to at most ${maxEvents}, or raise checkpoint.maxEvents to at least ${maxSize}.`,
  backfillNeedsFullDocument: (collection: string, handlers: string[], fullDocument: string) =>
    `@OnChange('${collection}'): ${handlers.join(', ')} ask${handlers.length === 1 ? 's' : ''} for a backfill, but the stream's fullDocument is "${fullDocument}". ` +
    `A backfill needs update events with the whole document: set fullDocument: 'updateLookup' (or 'required' with post-images enabled) on a handler of '${collection}'.`,
  backfillNeedsDocumentEvents: (collection: string, handler: string, missing: string[]) =>
    `@OnChange('${collection}') on ${handler}: a backfill handler must receive every change of a document, but its operationTypes leave out ${missing.join(', ')}. ` +
    `A chunk's copy of a document changed while the chunk is read is dropped in favour of that change, so the handler would get neither. Add ${missing.join(', ')} to operationTypes (or leave operationTypes out).`,
  backfillStarted: (key: string, run: string, handlers: string[], resumed: boolean) =>
    `Backfill ${run} of ${key} ${resumed ? 'resumed' : 'started'} for ${handlers.join(', ')}.`,
  backfillProgress: (
    key: string,
    run: string,
    done: number,
    total: number | null,
    rate: number | null,
    etaMs: number | null,
  ) =>
    `Backfill ${run} of ${key}: ${done}${total === null ? '' : ` of about ${total}`} documents done` +
    `${rate === null ? '' : `, ${Math.round(rate)}/s`}${etaMs === null ? '' : `, about ${duration(etaMs)} left`}.`,
  backfillFinished: (key: string, run: string, delivered: number, read: number) =>
    `Backfill ${run} of ${key} finished: ${delivered} documents delivered to the handlers` +
    (read === delivered
      ? '.'
      : ` (${read} read; ${read - delivered} not delivered: the stream delivered a change of them while their chunk was read).`),
  backfillCancelled: (key: string, run: string, done: number) =>
    `Backfill ${run} of ${key} cancelled after ${done} documents.`,
  backfillRefused: (key: string, state: string, holder: string | null) =>
    `Backfill request refused: this instance is not consuming stream ${key} (${holder ? `it is held by ${holder}` : `state ${state}`}). ` +
    `A backfill runs under the stream's lease: ask ${holder ?? 'the instance that holds the stream'}.`,
  backfillNoStream: (collection: string, connectionName: string) =>
    `ChangeStreamBackfill: no stream of collection '${collection}' on connection '${connectionName}'.`,
  backfillNoHandler: (key: string, handler: string | undefined, asking: string[]) =>
    `ChangeStreamBackfill: ${handler ? `handler ${handler} of ${key} is not declared with backfill` : `no handler of ${key} is declared with backfill`}` +
    `${asking.length ? ` (those that are: ${asking.join(', ')})` : ''}.`,
  backfillDisabled: (
    key: string,
    handler: string | undefined,
    why: 'handler' | 'stream' | 'module',
  ) =>
    `ChangeStreamBackfill: ${handler ? `handler ${handler} of ${key}` : `stream ${key}`} cannot be backfilled on this instance: ` +
    (why === 'module'
      ? 'the module is disabled here (enabled: false), so no stream runs'
      : why === 'stream'
        ? 'every handler of the stream is disabled here (enabled: false), so the stream does not run'
        : 'the handler is disabled here (enabled: false), so it is not called') +
    `. Start the backfill on an instance where ${handler ? 'it' : 'they'} ${handler ? 'is' : 'are'} enabled and that holds the stream.`,
  backfillRunning: (key: string, run: string) =>
    `ChangeStreamBackfill: backfill ${run} of ${key} is still running; cancel it first.`,
};

/** `3 m 10 s`, `12 s`, `1 h 2 m`: for humans reading logs. */
function duration(ms: number): string {
  if (ms >= 86_400_000)
    return `${Math.floor(ms / 86_400_000)} d ${Math.floor(ms / 3_600_000) % 24} h`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} m ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} m`;
}
