import { Logger } from '@nestjs/common';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import { settlesWithin } from '../common/backoff.js';
import { errorText } from '../common/errors.js';

// The Redis client the module uses: given by the application, or created (and closed) by it.

const logger = new Logger('ChangeStreamModule');

/**
 * For clients the module creates: fail a command fast while Redis is down (ioredis would
 * otherwise hold it ~10 s), so the checkpointer's own retry and the `degraded` state take over.
 */
const CLIENT_DEFAULTS: RedisOptions = { maxRetriesPerRequest: 1 };

export type RedisClient = Redis | Cluster;

export interface RedisConnection {
  client: RedisClient;
  where: string;
  owned: boolean;
  /** The client's last connection error (clients the module created), to say why it does not answer. */
  lastError(): string | undefined;
}

/** The `redis` option (a client, a URL or ioredis options) as a connection. */
export function connectRedis(
  redis: string | RedisOptions | RedisClient,
  { lazy = false }: { lazy?: boolean } = {},
): RedisConnection {
  if (isRedisClient(redis))
    return { client: redis, where: describeRedis(redis), owned: false, lastError: () => undefined };
  // Without a scheme ioredis takes everything after the host as a unix socket path: an app that never connects.
  if (typeof redis === 'string' && !/^[a-z][a-z0-9+.-]*:\/\//i.test(redis))
    throw new ChangeStreamConfigError(messages.redisUrlWithoutScheme());
  // Lazy (a disabled module): connects on its first command, if any (the dead-letter service).
  const defaults: RedisOptions = lazy ? { ...CLIENT_DEFAULTS, lazyConnect: true } : CLIENT_DEFAULTS;
  const client =
    typeof redis === 'string'
      ? new Redis(redis, defaults)
      : new Redis({ ...defaults, ...(redis as RedisOptions) });
  const where = describeRedis(client);
  const lastError = followOutages(client, where);
  nameConnectionErrors(client, where, lastError);
  return { client, where, owned: true, lastError };
}

/** Ends a client the module created, within `timeoutMs`; leaves the application's own alone. */
export async function closeRedis(
  { client, owned }: RedisConnection,
  timeoutMs: number,
): Promise<void> {
  if (!owned || ended(client)) return;
  // Never connected (lazy, unused): quit would connect first, just to say goodbye.
  if (client.status === 'wait') return client.disconnect();
  // quit waits for Redis. If it is down, quit fails or hangs while ioredis goes on reconnecting
  // (and keeps the process alive): end the connection for good in every case.
  await settlesWithin(
    client.quit().catch(() => undefined),
    timeoutMs,
  );
  if (!ended(client)) client.disconnect();
}

/** A function, not an inline check: TypeScript would keep the status narrowed across the `await`. */
const ended = (client: RedisClient): boolean => client.status === 'end';

/**
 * ioredis fails a command it could not send with "Reached the max retries per request limit",
 * which says nothing of why. Give it the connection's own error (with its code: ECONNREFUSED,
 * ENOTFOUND, …), so the streams' `lastError` in status and health names the cause.
 */
const NOT_SENT = 'RedisUnreachableError';

function nameConnectionErrors(
  client: Redis,
  where: string,
  lastError: () => string | undefined,
): void {
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command, stream) => {
    const reject = command.reject;
    command.reject = (error: Error) => {
      const cause = error?.name === 'MaxRetriesPerRequestError' ? lastError() : undefined;
      reject(
        cause === undefined
          ? error
          : Object.assign(new Error(messages.redisCommandFailed(where, cause), { cause: error }), {
              name: NOT_SENT,
            }),
      );
    };
    return send(command, stream);
  };
}

const AUTH_ERROR = /^(WRONGPASS|NOAUTH)|invalid password|invalid username-password/i;

/** PING with a deadline: WRONGPASS / NOAUTH is a configuration error, anything else an outage the streams wait out. */
export async function verifyRedis(
  { client, where, owned, lastError }: RedisConnection,
  timeoutMs: number,
): Promise<void> {
  let failure: unknown;
  const answered = await settlesWithin(
    client.ping().catch((error: unknown) => (failure = error)),
    timeoutMs,
  );
  if (answered && failure === undefined) return;
  const text = failure === undefined ? `no answer within ${timeoutMs} ms` : errorText(failure);
  if (AUTH_ERROR.test(text)) {
    // Retrying cannot fix credentials: a client the module created stops here, even if the app is never closed.
    if (owned) client.disconnect();
    const reply = text.split('.')[0];
    // NOAUTH with no password configured: none was sent. With one, it was refused (WRONGPASS, or AUTH itself failed on Redis 5).
    throw new ChangeStreamConfigError(
      /^NOAUTH/i.test(text) && !hasPassword(client)
        ? messages.redisAuthMissing(where, reply)
        : messages.redisAuthFailed(where, reply),
    );
  }
  // ioredis reports its own retry limit ("maxRetriesPerRequest"); the connection error says more.
  const notSent = ['MaxRetriesPerRequestError', NOT_SENT].includes(
    (failure as Error | undefined)?.name ?? '',
  );
  const reason = notSent ? (lastError() ?? `not connected (${client.status})`) : text;
  logger.warn(messages.storeUnreachable(where, reason));
}

function hasPassword(client: RedisClient): boolean {
  const options =
    client instanceof Cluster ? (client.options.redisOptions ?? {}) : (client as Redis).options;
  return Boolean(options.password);
}

/** Where a client points, for messages: never its password. */
export function describeRedis(client: RedisClient): string {
  if (client instanceof Cluster) {
    const nodes =
      (
        client as unknown as {
          startupNodes?: Array<{ host?: string; port?: number } | string | number>;
        }
      ).startupNodes ?? [];
    return `Redis Cluster (${nodes.map((n) => (typeof n === 'object' ? `${n.host ?? '127.0.0.1'}:${n.port ?? 6379}` : String(n))).join(', ')})`;
  }
  const { host, port, path, sentinels, name, db } = (client as Redis).options;
  if (sentinels?.length)
    return `Redis Sentinel "${name}" via ${sentinels.map((s) => `${s.host}:${s.port}`).join(', ')}`;
  return path
    ? `Redis at ${path}`
    : `Redis at ${host ?? 'localhost'}:${port ?? 6379}${db ? `/${db}` : ''}`;
}

function isRedisClient(value: unknown): value is RedisClient {
  return (
    value instanceof Redis ||
    value instanceof Cluster ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as Redis).sendCommand === 'function')
  );
}

/**
 * ioredis retries by itself and reports every attempt; log an outage once, and only after the
 * client had connected (an outage at startup is reported by `verify`). Returns the last error.
 */
function followOutages(client: Redis, where: string): () => string | undefined {
  let connected = false;
  let reported = false;
  let last: string | undefined;
  client.on('error', (error: Error & { code?: string }) => {
    last =
      error.code && !error.message.includes(error.code)
        ? `${error.code}: ${error.message}`
        : error.message;
    if (connected && !reported) logger.warn(messages.redisConnectionError(where, error.message));
    reported = true;
  });
  client.on('ready', () => {
    if (connected && reported) logger.log(messages.redisConnectionRestored(where));
    connected = true;
    reported = false;
    last = undefined;
  });
  return () => last;
}
