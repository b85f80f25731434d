import { describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { resolveOptions } from '../../lib/options/module-options.js';
import { ChangeStreamConfigError } from '../../lib/index.js';
import type { ChangeStreamModuleOptions } from '../../lib/index.js';

describe('resolveOptions', () => {
  it.each([
    'redis://127.0.0.1:6379',
    'rediss://user:pw@cache.example:6380/2',
    'unix:///var/run/redis.sock',
    '/var/run/redis.sock',
    '127.0.0.1:6379',
  ])('accepts redis %s', (redis) => {
    expect(resolveOptions({ consumer: 'c', redis }).redis).toBe(redis);
  });

  it('writes an uppercase REDISS:// as rediss://, so that ioredis uses TLS', () => {
    const { redis } = resolveOptions({
      consumer: 'c',
      redis: 'REDISS://user:pw@cache.example:6380/2',
    });
    expect(redis).toBe('rediss://user:pw@cache.example:6380/2');
    const client = new Redis(redis as string, { lazyConnect: true });
    expect(client.options.tls).toBeDefined();
    client.disconnect();
  });

  it.each<[string, ChangeStreamModuleOptions]>([
    [
      'at half the lease TTL',
      { consumer: 'c', redis: 'redis://x', onHandlerTimeout: 'abort', handlerTimeoutMs: 5000 },
    ],
    [
      'with leases off',
      { consumer: 'c', redis: 'redis://x', leases: false, onHandlerTimeout: 'abort' },
    ],
    ['without a lease store (positions in memory)', { consumer: 'c', onHandlerTimeout: 'abort' }],
    ["with 'warn'", { consumer: 'c', redis: 'redis://x', handlerTimeoutMs: 600_000 }],
    [
      'with the timeout off',
      { consumer: 'c', redis: 'redis://x', onHandlerTimeout: 'abort', handlerTimeoutMs: 0 },
    ],
  ])("accepts an 'abort' handler timeout %s", (_case, options) => {
    expect(() => resolveOptions(options)).not.toThrow();
  });

  it('fills in documented defaults', () => {
    const resolved = resolveOptions({ consumer: 'billing' });
    expect(resolved.leases).toEqual({
      ttlMs: 10_000,
      renewIntervalMs: 3000,
      pollIntervalMs: 1000,
      instanceId: expect.stringMatching(/^.+:\d+:[0-9a-f]{4}$/),
      explicit: false,
    });
    expect({ ...resolved, leases: undefined }).toEqual({
      leases: undefined,
      consumer: 'billing',
      redis: undefined,
      deadLetterRetention: { maxLetters: 10_000, maxAgeMs: Infinity },
      tokenStore: undefined,
      deadLetterStore: undefined,
      onHandlerFailure: 'stop',
      onHistoryLost: 'fail',
      keyPrefix: 'change-stream',
      connectionName: undefined,
      checkpoint: { maxEvents: 1000, intervalMs: 1000, maxUnsavedEvents: 10000 },
      handlerRetry: { retries: 3, initialDelayMs: 200, maxDelayMs: 5000 },
      reconnect: { initialDelayMs: 500, maxDelayMs: 30000 },
      shutdownTimeoutMs: 10000,
      startupTimeoutMs: 10000,
      streams: { default: 'collection', connections: {} },
      maxAwaitTimeMS: 1000,
      handlerTimeoutMs: 60000,
      onHandlerTimeout: 'warn',
      concurrency: 1,
      telemetry: true,
      batchSize: undefined,
      positionMirror: false,
      historyHeadroom: { warnMs: 3_600_000, intervalMs: 60_000 },
      enabled: true,
    });
  });

  it('historyHeadroom: on by default; false turns sampling off; true or a partial object takes the defaults', () => {
    expect(resolveOptions({ consumer: 'c', historyHeadroom: false }).historyHeadroom).toBe(false);
    expect(resolveOptions({ consumer: 'c', historyHeadroom: true }).historyHeadroom).toEqual({
      warnMs: 3_600_000,
      intervalMs: 60_000,
    });
    expect(
      resolveOptions({ consumer: 'c', historyHeadroom: { warnMs: 0 } }).historyHeadroom,
    ).toEqual({ warnMs: 0, intervalMs: 60_000 });
  });

  it("positionMirror: off unless asked for; true takes the defaults, on the module's connection", () => {
    expect(resolveOptions({ consumer: 'c', positionMirror: false }).positionMirror).toBe(false);
    expect(resolveOptions({ consumer: 'c', positionMirror: true }).positionMirror).toEqual({
      collection: 'change_stream_positions',
      intervalMs: 5000,
      connectionName: undefined,
    });
    expect(
      resolveOptions({
        consumer: 'c',
        connectionName: 'main',
        positionMirror: { intervalMs: 2000 },
      }).positionMirror,
    ).toEqual({
      collection: 'change_stream_positions',
      intervalMs: 2000,
      connectionName: 'main',
    });
    expect(
      resolveOptions({
        consumer: 'c',
        connectionName: 'main',
        positionMirror: { collection: 'positions', connectionName: 'other' },
      }).positionMirror,
    ).toMatchObject({
      collection: 'positions',
      connectionName: 'other',
    });
  });

  it.each<[string, unknown, RegExp]>([
    ['no options', undefined, /option "consumer" is required/],
    ['no consumer', {}, /option "consumer" is required/],
    ['a blank consumer', { consumer: ' ' }, /option "consumer" is required/],
    [
      'a consumer with ":"',
      { consumer: 'a:b' },
      /option "consumer" is "a:b"; expected a name without ":"/,
    ],
    [
      'redis and tokenStore',
      { consumer: 'c', redis: 'redis://x', tokenStore: {} },
      /either "redis" or "tokenStore"/,
    ],
    [
      'a zero batch size',
      { consumer: 'c', checkpoint: { maxEvents: 0 } },
      /"checkpoint.maxEvents" is 0; expected an integer >= 1/,
    ],
    [
      'a fractional interval',
      { consumer: 'c', checkpoint: { intervalMs: 1.5 } },
      /"checkpoint.intervalMs" is 1.5/,
    ],
    [
      'negative retries',
      { consumer: 'c', handlerRetry: { retries: -1 } },
      /"handlerRetry.retries" is -1/,
    ],
    [
      'a max delay below the initial one',
      { consumer: 'c', reconnect: { initialDelayMs: 100, maxDelayMs: 10 } },
      /"reconnect.maxDelayMs" is 10; expected an integer >= 100/,
    ],
    ['an empty key prefix', { consumer: 'c', keyPrefix: '' }, /"keyPrefix" is ""/],
    [
      'a key prefix with a brace',
      { consumer: 'c', keyPrefix: 'a{b' },
      /"keyPrefix" is "a\{b"; expected a non-empty string without "\{" or "\}"/,
    ],
    ['a consumer with a brace', { consumer: 'a}b' }, /"consumer" is "a\}b"/],
    [
      'an unknown handler timeout action',
      { consumer: 'c', onHandlerTimeout: 'kill' },
      /"onHandlerTimeout" is "kill"; expected "warn" or "abort"/,
    ],
    [
      'a negative handler timeout',
      { consumer: 'c', handlerTimeoutMs: -1 },
      /"handlerTimeoutMs" is -1/,
    ],
    [
      'a renew interval over half the lease TTL',
      { consumer: 'c', leases: { ttlMs: 1000, renewIntervalMs: 600 } },
      /"leases.renewIntervalMs" is 600; expected at most half of leases.ttlMs \(500\)/,
    ],
    [
      'a poll interval over the renew interval',
      { consumer: 'c', leases: { renewIntervalMs: 500, pollIntervalMs: 600 } },
      /"leases.pollIntervalMs" is 600; expected at most leases.renewIntervalMs \(500\)/,
    ],
    [
      'an empty instance id',
      { consumer: 'c', leases: { instanceId: ' ' } },
      /"leases.instanceId" is " "/,
    ],
    [
      'leases set to true',
      { consumer: 'c', leases: true },
      /"leases" is true; expected false or an object/,
    ],
    [
      'a misspelled option',
      { consumer: 'c', reddis: 'redis://x' },
      /unknown option\(s\) "reddis"\. Known options: consumer, redis,/,
    ],
    [
      'a misspelled checkpoint option',
      { consumer: 'c', checkpoint: { maxEvent: 10 } },
      /unknown option\(s\) "checkpoint\.maxEvent"\. Known in "checkpoint": maxEvents, intervalMs, maxUnsavedEvents\./,
    ],
    [
      'a misspelled retry option',
      { consumer: 'c', handlerRetry: { retry: 5 } },
      /unknown option\(s\) "handlerRetry\.retry"/,
    ],
    [
      'a misspelled reconnect option',
      { consumer: 'c', reconnect: { initialDelay: 5 } },
      /unknown option\(s\) "reconnect\.initialDelay"/,
    ],
    [
      'a misspelled lease option',
      { consumer: 'c', leases: { ttl: 5000 } },
      /unknown option\(s\) "leases\.ttl"\. Known in "leases": ttlMs, renewIntervalMs, pollIntervalMs, instanceId\./,
    ],
    [
      'a group that is not an object',
      { consumer: 'c', checkpoint: 100 },
      /"checkpoint" is 100; expected an object with maxEvents, intervalMs, maxUnsavedEvents/,
    ],
    [
      'redis present but undefined (an unset variable)',
      { consumer: 'c', redis: undefined },
      /option "redis" is present but undefined \(an unset environment variable\?\)/,
    ],
    [
      'redis null',
      { consumer: 'c', redis: null },
      /option "redis" is null \(an unset environment variable\?\)/,
    ],
    [
      'redis an empty string (REDIS_URL=)',
      { consumer: 'c', redis: '' },
      /option "redis" is an empty string \(an unset environment variable\?\)/,
    ],
    [
      'redis an http URL, without showing its password',
      { consumer: 'c', redis: 'http://:secret@127.0.0.1:6379' },
      /^ChangeStreamModule: option "redis" is a "http:" URL; expected redis:\/\/host:port, rediss:\/\/host:port \(TLS\) or unix:\/\/\/path\/to\/socket\.$/,
    ],
    [
      'a run-ahead bound below twice the batch',
      { consumer: 'c', checkpoint: { maxEvents: 500, maxUnsavedEvents: 100 } },
      /"checkpoint.maxUnsavedEvents" is 100; expected at least 2 × checkpoint.maxEvents \(1000\)/,
    ],
    [
      'an unknown failure policy',
      { consumer: 'c', onHandlerFailure: 'skip' },
      /"onHandlerFailure" is "skip"; expected "stop", "dead-letter" or a function/,
    ],
    [
      'an unknown history policy',
      { consumer: 'c', onHistoryLost: 'ignore' },
      /"onHistoryLost" is "ignore"; expected "fail", "restart-from-now" or a function/,
    ],
    [
      'a mirror interval under 100 ms',
      { consumer: 'c', positionMirror: { intervalMs: 10 } },
      /"positionMirror.intervalMs" is 10; expected an integer >= 100/,
    ],
    [
      'a mirror collection with "$"',
      { consumer: 'c', positionMirror: { collection: 'a$b' } },
      /"positionMirror.collection" is "a\$b"; expected a collection name/,
    ],
    [
      'a misspelled mirror option',
      { consumer: 'c', positionMirror: { interval: 1000 } },
      /unknown option\(s\) "positionMirror\.interval"\. Known in "positionMirror": collection, intervalMs, connectionName\./,
    ],
    [
      'a mirror given as a string',
      { consumer: 'c', positionMirror: 'yes' },
      /"positionMirror" is "yes"; expected an object with collection, intervalMs, connectionName/,
    ],
    [
      'a negative headroom warning',
      { consumer: 'c', historyHeadroom: { warnMs: -1 } },
      /"historyHeadroom.warnMs" is -1; expected an integer >= 0/,
    ],
    [
      'a headroom sample interval under 100 ms',
      { consumer: 'c', historyHeadroom: { intervalMs: 10 } },
      /"historyHeadroom.intervalMs" is 10; expected an integer >= 100/,
    ],
    [
      'a misspelled headroom option',
      { consumer: 'c', historyHeadroom: { warnAfterMs: 1000 } },
      /unknown option\(s\) "historyHeadroom\.warnAfterMs"\. Known in "historyHeadroom": warnMs, intervalMs\./,
    ],
    [
      'historyHeadroom given as a number',
      { consumer: 'c', historyHeadroom: 3600000 },
      /"historyHeadroom" is 3600000; expected true, false or \{ warnMs, intervalMs \}/,
    ],
    [
      "an 'abort' handler timeout over half the lease TTL (leases with Redis)",
      { consumer: 'c', redis: 'redis://x', onHandlerTimeout: 'abort', handlerTimeoutMs: 6000 },
      /^ChangeStreamModule: handlerTimeoutMs \(6000\) with onHandlerTimeout: 'abort' must be at most half of leases.ttlMs \(leases.ttlMs is 10000 ms, so at most 5000 ms\).*raise leases.ttlMs to at least 12000/,
    ],
    [
      "an 'abort' with the default 60 s handler timeout and the default lease TTL",
      { consumer: 'c', redis: 'redis://x', onHandlerTimeout: 'abort' },
      /handlerTimeoutMs \(60000\) with onHandlerTimeout: 'abort'/,
    ],
    [
      "an 'abort' handler timeout over half of an explicit lease TTL",
      { consumer: 'c', leases: { ttlMs: 1000 }, onHandlerTimeout: 'abort', handlerTimeoutMs: 501 },
      /at most half of leases.ttlMs \(leases.ttlMs is 1000 ms, so at most 500 ms\)/,
    ],
  ])('rejects %s', (_case, options, message) => {
    expect(() => resolveOptions(options as ChangeStreamModuleOptions)).toThrow(
      ChangeStreamConfigError,
    );
    expect(() => resolveOptions(options as ChangeStreamModuleOptions)).toThrow(message);
  });
});
