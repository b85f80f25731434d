import { describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { collectionStreamStart, databaseStreamStart } from '../../lib/checkpoint/start-rule.js';
import { coverageForTerm } from '../../lib/checkpoint/stream-coverage.js';

const ts = (t: number) => new mongoose.mongo.Timestamp({ t, i: 1 });
const tokenAt = (t: number) => ({
  _data: `82${t.toString(16).padStart(8, '0')}00000001` + '2B022C0100296E5A1004',
});
const DB = 'cs:{svc:db:$database}';

describe('start rule: collection names that are Object.prototype members', () => {
  const record = {
    token: tokenAt(300),
    coverage: { serves: ['users'], retired: { orders: ts(100) } },
  };
  it('a collection stream of "constructor" beside a database record with a retirement', () => {
    expect(() =>
      collectionStreamStart({ token: tokenAt(10) }, 'constructor', { key: DB, position: record }),
    ).not.toThrow();
    expect(
      collectionStreamStart({ token: tokenAt(10) }, 'constructor', { key: DB, position: record })
        .position,
    ).toEqual({ token: tokenAt(10) });
  });
  it('a new collection stream of "constructor" (no record of its own) starts now', () => {
    expect(
      collectionStreamStart(null, 'constructor', { key: DB, position: record }).position,
    ).toBeNull();
  });
  it('a database stream that starts serving "toString" (never served before) resumes from its own token', () => {
    expect(
      databaseStreamStart(DB, record, [
        { collection: 'toString', key: 'k1', position: null },
        { collection: 'users', key: 'k2', position: null },
      ]).position,
    ).toEqual(record);
  });
  it('a database stream that starts serving "toString" does not throw', () => {
    expect(() =>
      databaseStreamStart(DB, record, [
        { collection: 'toString', key: 'k1', position: null },
        { collection: 'users', key: 'k2', position: null },
      ]),
    ).not.toThrow();
  });
  it('retiring "__proto__" keeps it', () => {
    const base = { token: tokenAt(300), coverage: { serves: ['__proto__', 'users'] } };
    expect(Object.keys(coverageForTerm(base, ['users']).retired ?? {})).toEqual(['__proto__']);
  });
});
