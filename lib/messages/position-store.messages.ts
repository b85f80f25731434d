import { plural } from './plural.js';

/** Redis and the position store: connecting, saving, mirroring. */
export const positionStoreMessages = {
  inMemoryStore: () =>
    'No "redis" option: resume tokens are kept in memory and will NOT survive a restart. ' +
    'Events written while the app is down will be missed. Set "redis" in production.',
  inMemoryDeadLetters: () =>
    'Handlers may dead-letter but there is no Redis: dead letters are kept in memory and are lost on restart. ' +
    'Set "redis" or "deadLetterStore".',
  storeUnreachable: (where: string, error: string) =>
    `Position store unreachable: ${where} (${error}). Streams wait for it and start from their stored positions once it answers.`,
  redisCommandFailed: (where: string, connectionError: string) =>
    `${where} unreachable (${connectionError})`,
  redisAuthMissing: (where: string, error: string) =>
    `ChangeStreamModule: ${where} requires a password and the "redis" option gave none (${error}). ` +
    `Add it to the URL (redis://:password@host:6379, or redis://user:password@host:6379) or set password (and username) in the ioredis options.`,
  redisAuthFailed: (where: string, error: string) =>
    `ChangeStreamModule: ${where} rejected the credentials (${error}). Check the username and password in the "redis" option.`,
  waitingForStore: (error: string) => `waiting for the position store: ${error}`,
  cannotSave: (error: string) => `cannot save the position: ${error}`,
  positionMissingResumingFromMemory: (key: string) =>
    `Stream ${key}: no position is stored any more (did Redis lose its data?); resuming from the last position this instance handled instead of from now.`,
  saveStalled: (ms: number) => `the position store has not answered a save for ${ms / 1000} s`,
  saveRecovered: (key: string, attempts: number) =>
    `Saving the position of ${key} works again (after ${attempts} failed attempt(s)).`,
  readingPaused: (key: string, unsaved: number) =>
    `Stream ${key}: ${unsaved} handled ${plural(unsaved, 'event')} ${plural(unsaved, 'is', 'are')} not stored yet (store unreachable); reading paused until a save succeeds.`,
  checkpointFailed: (key: string, error: string) =>
    `Saving the position of ${key} failed (${error}); retrying with backoff (further failures are logged at debug level). Handled events are kept in memory until then.`,
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
  invalidStoredToken: (key: string, reason: string) =>
    `Stored position under "${key}" is not a valid resume token (${reason}). ` +
    `It was left in place for inspection. To start from now instead, delete the key ` +
    `(events written since the lost position will not be delivered).`,
  redisConnectionError: (where: string, error: string) =>
    `${where}: connection error (${error}); ioredis keeps retrying.`,
  redisConnectionRestored: (where: string) => `${where}: connection restored.`,
};
