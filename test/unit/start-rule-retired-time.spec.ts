import { describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import type { StreamCoverage, StreamPosition } from '../../lib/index.js';
import { databaseStreamStart } from '../../lib/checkpoint/start-rule.js';
import { coverageForTerm } from '../../lib/checkpoint/stream-coverage.js';

const ts = (t: number) => new mongoose.mongo.Timestamp({ t, i: 1 });
/** A mongod resume token at cluster time (t, 1); `op` tells tokens of one transaction apart. */
const tokenAt = (t: number, op = '2B022C0100296E5A1004') => ({
  _data: `82${t.toString(16).padStart(8, '0')}00000001` + op,
});
const DB = 'cs:{svc:db:$database}';
const key = (c: string) => `cs:{svc:db:${c}}`;

describe('start rule: a retired time equal to its own token time (one transaction)', () => {
  it('term 1 served orders+users and stopped mid-transaction at T; term 2 (users only) moved inside the same transaction; term 3 serves orders again: must start at T inclusive', () => {
    // Term 1: serves orders and users, last save at e1 of a transaction at T=100.
    const term1: StreamPosition = {
      token: tokenAt(100, '01'),
      coverage: { serves: ['orders', 'users'] },
    };
    // Term 2 serves users only: orders retired at T=100 (term 1's token time).
    const coverage2: StreamCoverage = coverageForTerm(term1, ['users']);
    expect(coverage2).toEqual({ serves: ['users'], retired: { orders: ts(100) } });
    // Term 2 reads the rest of that transaction (e2 on orders is not served; e3 on users is), saves e3's token, still at T=100.
    const term2: StreamPosition = { token: tokenAt(100, '03'), coverage: coverage2 };
    // Term 3 serves orders again; orders has no stream of its own.
    const decision = databaseStreamStart(DB, term2, [
      { collection: 'orders', key: key('orders'), position: null },
      { collection: 'users', key: key('users'), position: null },
    ]);
    // Resuming after e3's token skips e2 (orders, in the same transaction, handled by no stream).
    expect(decision.position).toEqual({ operationTime: ts(100) });
  });

  it('base an operationTime T (nothing at T handled yet), the next term (users only) stores an idle post-batch token at T: orders’ event at T must come', () => {
    const term1: StreamPosition = {
      operationTime: ts(100),
      coverage: { serves: ['orders', 'users'] },
    };
    const term2: StreamPosition = {
      token: tokenAt(100, '05'),
      coverage: coverageForTerm(term1, ['users']),
    };
    const decision = databaseStreamStart(DB, term2, [
      { collection: 'orders', key: key('orders'), position: null },
      { collection: 'users', key: key('users'), position: null },
    ]);
    expect(decision.position).toEqual({ operationTime: ts(100) });
  });
});
