import { describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import type { StreamCoverage, StreamPosition } from '../../lib/index.js';
import { collectionStreamStart, databaseStreamStart } from '../../lib/checkpoint/start-rule.js';
import { coverageForTerm } from '../../lib/checkpoint/stream-coverage.js';

const ts = (t: number) => new mongoose.mongo.Timestamp({ t, i: 1 });
/** A mongod resume token taken at cluster time (t, 1). */
const tokenAt = (t: number) => ({
  _data: `82${t.toString(16).padStart(8, '0')}00000001` + '2B022C0100296E5A1004',
});
const at = (t: number, coverage?: StreamCoverage): StreamPosition => ({
  token: tokenAt(t),
  ...(coverage && { coverage }),
});
const untimed = (data: string): StreamPosition => ({ token: { _data: data } });
const serving = (serves: string[], retired: Record<string, number> = {}): StreamCoverage => ({
  serves,
  ...(Object.keys(retired).length > 0 && {
    retired: Object.fromEntries(Object.entries(retired).map(([c, t]) => [c, ts(t)])),
  }),
});

const DB = 'cs:{svc:db:$database}';
const key = (collection: string) => `cs:{svc:db:${collection}}`;
const startAt = (t: number) => ({ operationTime: ts(t) });

describe('collectionStreamStart: a collection stream and its database stream’s record', () => {
  const start = (own: StreamPosition | null, database: StreamPosition | null) =>
    collectionStreamStart(own, 'orders', { key: DB, position: database });

  it('rolled back after the database stream ran: starts where the database stream got to, not at its own pre-switch key (review defect 1)', () => {
    expect(start(at(10), at(100, serving(['orders', 'users'])))).toEqual({
      position: startAt(100),
      from: 'replaced',
      reason: { kind: 'covered', key: DB, collection: 'orders', time: ts(100), hadOwn: true },
    });
  });

  it('resumes from its own token when it is newer than the database record’s coverage, or equal', () => {
    expect(start(at(200), at(100, serving(['orders'])))).toEqual({
      position: at(200),
      from: 'stored',
    });
    expect(start(at(100), at(100, serving(['orders'])))).toEqual({
      position: at(100),
      from: 'stored',
    });
    expect(start({ operationTime: ts(100) }, at(100, serving(['orders'])))).toEqual({
      position: { operationTime: ts(100) },
      from: 'stored',
    });
  });

  it('takes a retired collection’s time: the database stream covered it up to there', () => {
    expect(start(at(10), at(300, serving(['users'], { orders: 100 })))).toMatchObject({
      position: startAt(100),
      from: 'replaced',
    });
    expect(start(at(150), at(300, serving(['users'], { orders: 100 })))).toEqual({
      position: at(150),
      from: 'stored',
    });
  });

  it('never starts from a database record that did not serve its collection', () => {
    expect(start(at(10), at(300, serving(['users'])))).toEqual({
      position: at(10),
      from: 'stored',
    });
    expect(start(null, at(300, serving(['users'])))).toEqual({ position: null, from: 'stored' });
  });

  it('with no position of its own starts at the database record’s coverage', () => {
    expect(start(null, at(100, serving(['orders'])))).toEqual({
      position: startAt(100),
      from: 'replaced',
      reason: { kind: 'covered', key: DB, collection: 'orders', time: ts(100), hadOwn: false },
    });
    expect(start(null, { operationTime: ts(70), coverage: serving(['orders']) })).toMatchObject({
      position: startAt(70),
    });
  });

  it('without a database record: its own, or now', () => {
    expect(start(at(10), null)).toEqual({ position: at(10), from: 'stored' });
    expect(start(null, null)).toEqual({ position: null, from: 'stored' });
  });

  it('a database record without coverage (a store that drops fields): the rule before, said', () => {
    expect(start(at(10), at(100))).toEqual({
      position: at(10),
      from: 'stored',
      coverageMissing: DB,
    });
    // Nothing of its own: the database record, as before (nothing to choose between: not said).
    expect(start(null, at(100))).toEqual({
      position: startAt(100),
      from: 'replaced',
      reason: { kind: 'covered', key: DB, collection: 'orders', time: ts(100), hadOwn: false },
    });
  });

  it('untimed tokens: the rule before (its own, else the other token as it is)', () => {
    expect(start(untimed('a'), at(100, serving(['orders'])))).toEqual({
      position: untimed('a'),
      from: 'stored',
    });
    expect(start(at(10), untimed('d'))).toMatchObject({ position: at(10), from: 'stored' });
    expect(start(at(10), { ...untimed('d'), coverage: serving(['orders']) })).toEqual({
      position: at(10),
      from: 'stored',
    });
    expect(start(null, { ...untimed('d'), coverage: serving(['orders']) })).toEqual({
      position: { token: { _data: 'd' } },
      from: 'replaced',
      reason: { kind: 'covered', key: DB, collection: 'orders', time: null, hadOwn: false },
    });
  });
});

describe('databaseStreamStart: a database stream and its collections’ records', () => {
  const start = (own: StreamPosition | null, collections: Record<string, StreamPosition | null>) =>
    databaseStreamStart(
      DB,
      own,
      Object.entries(collections).map(([collection, position]) => ({
        collection,
        key: key(collection),
        position,
      })),
    );

  it('first switch: starts at the oldest collection position, by cluster time', () => {
    expect(start(null, { orders: at(50), users: at(40) })).toEqual({
      position: startAt(40),
      from: 'replaced',
      reason: {
        kind: 'covered',
        key: key('users'),
        collection: 'users',
        time: ts(40),
        hadOwn: false,
      },
    });
    expect(start(null, { orders: at(50), users: null })).toMatchObject({ position: startAt(50) });
    expect(start(null, { orders: null, users: null })).toEqual({ position: null, from: 'stored' });
  });

  it('a collection joining from its own stream is read from that stream’s position, not its own newer one (review defect 2)', () => {
    // orders left for its own stream (a backfill handler) at 100; its stream got to 250; it rejoins.
    expect(
      start(at(300, serving(['users'], { orders: 100 })), { orders: at(250), users: null }),
    ).toEqual({
      position: startAt(250),
      from: 'replaced',
      reason: {
        kind: 'covered',
        key: key('orders'),
        collection: 'orders',
        time: ts(250),
        hadOwn: true,
      },
    });
    // A collection it never served, whose own stream is behind.
    expect(start(at(300, serving(['users'])), { orders: at(120), users: null })).toMatchObject({
      position: startAt(120),
    });
  });

  it('a collection whose handlers come back (served before, no own stream since) starts at its retired time', () => {
    expect(
      start(at(300, serving(['users'], { orders: 100 })), { orders: null, users: null }),
    ).toEqual({
      position: startAt(100),
      from: 'replaced',
      reason: { kind: 'covered', key: DB, collection: 'orders', time: ts(100), hadOwn: true },
    });
  });

  it('resumes from its own token exactly when no collection is behind it', () => {
    const own = at(300, serving(['orders', 'users']));
    // The collection keys left from before the switch are older: they decide nothing.
    expect(start(own, { orders: at(10), users: at(20) })).toEqual({
      position: own,
      from: 'stored',
    });
    expect(start(own, { orders: null, users: null })).toEqual({ position: own, from: 'stored' });
    // A new collection (no record anywhere) holds nothing back.
    expect(start(at(300, serving(['users'])), { orders: null, users: at(5) })).toEqual({
      position: at(300, serving(['users'])),
      from: 'stored',
    });
  });

  it('at equal times another stream’s record wins (its token may point earlier into one transaction): that time, inclusive', () => {
    expect(start(at(100, serving(['users'])), { orders: at(100), users: null })).toEqual({
      position: startAt(100),
      from: 'replaced',
      reason: {
        kind: 'covered',
        key: key('orders'),
        collection: 'orders',
        time: ts(100),
        hadOwn: true,
      },
    });
    // Its own coverage of a collection wins over an equal record of that collection's stream.
    const own = at(100, serving(['orders', 'users']));
    expect(start(own, { orders: at(100), users: null })).toEqual({ position: own, from: 'stored' });
  });

  it('switched forward again after a roll-back: starts at the oldest collection position, newer than its own', () => {
    expect(
      start(at(100, serving(['orders', 'users'])), { orders: at(200), users: at(210) }),
    ).toEqual({
      position: startAt(200),
      from: 'replaced',
      reason: {
        kind: 'covered',
        key: key('orders'),
        collection: 'orders',
        time: ts(200),
        hadOwn: true,
      },
    });
    // One collection caught up elsewhere, the other not: its own position is the oldest.
    const own = at(100, serving(['orders', 'users']));
    expect(start(own, { orders: at(200), users: null })).toEqual({ position: own, from: 'stored' });
  });

  it('an own record without coverage (a store that drops fields): its own, as before, said', () => {
    expect(start(at(300), { orders: at(10), users: null })).toEqual({
      position: at(300),
      from: 'stored',
      coverageMissing: DB,
    });
    // Nothing else stored: nothing to choose between, not said.
    expect(start(at(300), { orders: null })).toEqual({ position: at(300), from: 'stored' });
  });

  it('untimed tokens: the rule before (its own; else the first token, said to be unordered)', () => {
    const ownUntimed = { ...untimed('own'), coverage: serving(['orders']) };
    expect(start(ownUntimed, { orders: at(10) })).toEqual({ position: ownUntimed, from: 'stored' });
    const own = at(300, serving(['orders']));
    expect(start(own, { orders: untimed('o') })).toEqual({ position: own, from: 'stored' });
    expect(start(null, { orders: untimed('o'), users: untimed('u') })).toEqual({
      position: untimed('o'),
      from: 'replaced',
      reason: { kind: 'unordered', key: key('orders'), count: 2 },
    });
    expect(start(null, { orders: untimed('o'), users: null })).toEqual({
      position: untimed('o'),
      from: 'replaced',
      reason: {
        kind: 'covered',
        key: key('orders'),
        collection: 'orders',
        time: null,
        hadOwn: false,
      },
    });
  });
});

describe('coverageForTerm: what a database stream stores with its positions', () => {
  it('serves its collections, sorted; with no record before, nothing is retired', () => {
    expect(coverageForTerm(null, ['users', 'orders'])).toEqual({ serves: ['orders', 'users'] });
  });

  it('retires a collection the record served at the record’s time, keeps earlier ones, drops one served again', () => {
    const before = at(300, serving(['orders', 'users'], { carts: 50, audit: 20 }));
    expect(coverageForTerm(before, ['users', 'audit'])).toEqual({
      serves: ['audit', 'users'],
      retired: { carts: ts(50), orders: ts(300) },
    });
    expect(coverageForTerm({ operationTime: ts(70), coverage: serving(['orders']) }, [])).toEqual({
      serves: [],
      retired: { orders: ts(70) },
    });
  });

  it('cannot retire at an unreadable time, nor from a record without coverage', () => {
    expect(coverageForTerm({ ...untimed('x'), coverage: serving(['orders']) }, ['users'])).toEqual({
      serves: ['users'],
    });
    expect(coverageForTerm(at(300), ['users'])).toEqual({ serves: ['users'] });
  });
});
