import type { Cluster, Redis } from 'ioredis';

/**
 * One Lua script, declared once: its KEYS and ARGV by name (their count and order are the calling
 * convention), what it replies, and its body. `header` turns the first three into the `--[[ ]]`
 * comment the script carries; `register` gives the typed call.
 */
export interface RedisScript<K extends readonly string[], A extends readonly string[], R> {
  /** The ioredis command name: namespaced, since `defineCommand` adds it to what may be the application's own client. */
  readonly name: string;
  readonly keys: K;
  readonly argv: A;
  /** What it returns, in words. */
  readonly replies: string;
  /** The body, `header` included. */
  readonly lua: string;
  /** Only carries the reply type. */
  readonly reply?: R;
}

/** A call of a script: its keys, then its arguments, in declared order. */
export type ScriptCall<K extends readonly string[], A extends readonly string[], R> = (
  ...args: [...{ [I in keyof K]: string }, ...{ [I in keyof A]: string | number }]
) => Promise<R>;

/** Declares a script replying `R`; its Lua text starts with a header built from the declaration. */
export function redisScript<R>() {
  return <const K extends readonly string[], const A extends readonly string[]>(script: {
    name: string;
    keys: K;
    argv: A;
    replies: string;
    lua: string;
  }): RedisScript<K, A, R> => ({ ...script, lua: `${header(script)}\n${script.lua.trim()}\n` });
}

function header({
  name,
  keys,
  argv,
  replies,
}: {
  name: string;
  keys: readonly string[];
  argv: readonly string[];
  replies: string;
}): string {
  const list = (names: readonly string[]) =>
    names.map((n, i) => `[${i + 1}] ${n}`).join(', ') || 'none';
  return `--[[ ${name}\n  KEYS: ${list(keys)}\n  ARGV: ${list(argv)}\n  Replies: ${replies}\n]]`;
}

/**
 * Registers `script` on `client` (a `Redis` or a `Cluster`: ioredis routes each call by its first
 * key's slot) and returns its typed call, sent as EVALSHA.
 */
export function registerScript<K extends readonly string[], A extends readonly string[], R>(
  client: Redis | Cluster,
  script: RedisScript<K, A, R>,
): ScriptCall<K, A, R> {
  client.defineCommand(script.name, { lua: script.lua, numberOfKeys: script.keys.length });
  const methods = client as unknown as Record<
    string,
    (...args: Array<string | number>) => Promise<R>
  >;
  return ((...args: Array<string | number>) => methods[script.name]!(...args)) as ScriptCall<
    K,
    A,
    R
  >;
}
