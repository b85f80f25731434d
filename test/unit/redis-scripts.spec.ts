import { describe, expect, it } from '@jest/globals';
import { LEASE_SCRIPTS } from '../../lib/redis/lease-scripts.js';

describe('Redis Lua scripts', () => {
  it.each(Object.entries(LEASE_SCRIPTS))(
    '%s carries a header naming its KEYS, ARGV and replies, as declared',
    (_, script) => {
      const header = script.lua.slice(0, script.lua.indexOf(']]') + 2);
      expect(header.startsWith(`--[[ ${script.name}\n`)).toBe(true);
      expect(header).toContain(`KEYS: ${script.keys.map((k, i) => `[${i + 1}] ${k}`).join(', ')}`);
      expect(header).toContain(
        `ARGV: ${script.argv.map((a, i) => `[${i + 1}] ${a}`).join(', ') || 'none'}`,
      );
      expect(header).toContain(`Replies: ${script.replies}`);
    },
  );

  it('uses no KEYS or ARGV index beyond what it declares', () => {
    for (const script of Object.values(LEASE_SCRIPTS)) {
      const body = script.lua.slice(script.lua.indexOf(']]') + 2);
      const highest = (name: string) =>
        Math.max(
          0,
          ...[...body.matchAll(new RegExp(`${name}\\[(\\d+)\\]`, 'g'))].map((m) => Number(m[1])),
        );
      expect([script.name, highest('KEYS'), highest('ARGV')]).toEqual([
        script.name,
        script.keys.length,
        script.argv.length,
      ]);
    }
  });

  it('have distinct, namespaced command names', () => {
    const names = Object.values(LEASE_SCRIPTS).map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^nestjsChangeStreams/);
  });
});
