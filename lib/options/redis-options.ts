import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { ChangeStreamModuleOptions } from '../interfaces/change-stream-module-options.interface.js';

/** The `redis` option checked (given, not empty, a Redis URL scheme), its scheme in lowercase. */
export function redisOption(
  options: ChangeStreamModuleOptions,
): ChangeStreamModuleOptions['redis'] {
  if ('redis' in options && options.redis === undefined) {
    // Usually config.get('REDIS_URL') of an unset variable: without this check positions would quietly live in memory.
    throw new ChangeStreamConfigError(messages.redisUndefined());
  }
  if (options.redis === null || options.redis === '') {
    // ioredis would quietly connect to localhost:6379 instead.
    throw new ChangeStreamConfigError(messages.redisEmpty(options.redis));
  }
  const url = typeof options.redis === 'string' ? options.redis : undefined;
  const scheme = url === undefined ? undefined : /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme !== undefined && !/^(rediss?|unix)$/i.test(scheme)) {
    // Only the scheme is shown: the URL may hold a password.
    throw new ChangeStreamConfigError(messages.redisUrlScheme(scheme));
  }
  // ioredis turns TLS on only for a lowercase "rediss://": REDISS:// would send the password in the clear.
  const redis =
    scheme === undefined ? options.redis : scheme.toLowerCase() + url!.slice(scheme.length);
  if (options.redis !== undefined && options.tokenStore !== undefined) {
    throw new ChangeStreamConfigError(messages.redisAndTokenStore());
  }
  return redis;
}
