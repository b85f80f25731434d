import { describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import {
  positionKey,
  decodePosition,
  encodePosition,
  InvalidStoredTokenError,
} from '../../lib/index.js';

describe('checkpoint key and value format', () => {
  it('builds <keyPrefix>:{<consumer>:<db>:<collection>}, one Redis Cluster hash tag per stream', () => {
    expect(positionKey('change-stream', 'billing', 'shop', 'orders')).toBe(
      'change-stream:{billing:shop:orders}',
    );
  });

  it('stores canonical EJSON of { v, token, savedAt } and reads the position back', () => {
    const token = { _data: '8263A1B2C3000000012B022C0100296E5A1004' };
    const raw = encodePosition({ token }, new Date('2026-01-02T03:04:05.000Z'));
    expect(JSON.parse(raw)).toEqual({
      v: { $numberInt: '2' },
      token,
      savedAt: '2026-01-02T03:04:05.000Z',
    });
    expect(decodePosition('k', raw)).toEqual({ token });
  });

  it('stores a start cluster time as { v, operationTime, savedAt }', () => {
    const operationTime = new mongoose.mongo.Timestamp({ t: 1767000000, i: 3 });
    const raw = encodePosition({ operationTime }, new Date('2026-01-02T03:04:05.000Z'));
    expect(JSON.parse(raw)).toEqual({
      v: { $numberInt: '2' },
      operationTime: { $timestamp: { t: 1767000000, i: 3 } },
      savedAt: '2026-01-02T03:04:05.000Z',
    });
    expect(decodePosition('k', raw)).toEqual({ operationTime });
  });

  it('stores a database stream’s coverage with its position and reads it back; a malformed one is refused', () => {
    const token = { _data: '8263A1B2C3000000012B022C0100296E5A1004' };
    const retired = { users: new mongoose.mongo.Timestamp({ t: 1767000000, i: 3 }) };
    const raw = encodePosition({ token, coverage: { serves: ['orders'], retired } });
    expect(JSON.parse(raw).coverage).toEqual({
      serves: ['orders'],
      retired: { users: { $timestamp: { t: 1767000000, i: 3 } } },
    });
    expect(decodePosition('k', raw)).toEqual({ token, coverage: { serves: ['orders'], retired } });
    expect(decodePosition('k', encodePosition({ token, coverage: { serves: [] } }))).toEqual({
      token,
      coverage: { serves: [] },
    });
    for (const coverage of ['x', { serves: 'orders' }, { serves: [], retired: { users: 5 } }])
      expect(() => decodePosition('k', JSON.stringify({ v: 2, token, coverage }))).toThrow(
        InvalidStoredTokenError,
      );
  });

  it('reads what version 0.1 stored', () => {
    const raw =
      '{"v":{"$numberInt":"1"},"token":{"_data":"8263A1"},"savedAt":"2026-11-27T18:58:18.423Z"}';
    expect(decodePosition('k', raw)).toEqual({ token: { _data: '8263A1' } });
  });

  it('round-trips tokens that hold BSON types (binary _data of older servers)', () => {
    const token = { _data: new mongoose.mongo.BSON.Binary(Buffer.from([1, 2, 3])) };
    const decoded = decodePosition('k', encodePosition({ token })) as {
      token: { _data: InstanceType<typeof mongoose.mongo.BSON.Binary> };
    };
    expect(Buffer.from(decoded.token._data.buffer)).toEqual(Buffer.from([1, 2, 3]));
  });

  it('accepts a bare token stored by hand', () => {
    expect(decodePosition('k', '{"_data":"abc"}')).toEqual({ token: { _data: 'abc' } });
  });

  it.each([
    ['not JSON', 'not json at all', /not EJSON/],
    ['not an object', '"a string"', /not an object/],
    ['an unknown version', '{"v":99,"token":{"_data":"abc"}}', /unknown format version 99/],
    ['a token without _data', '{"v":1,"token":{"x":1}}', /no "_data" field/],
    [
      'an operationTime that is not a timestamp',
      '{"v":2,"operationTime":5}',
      /not a BSON timestamp/,
    ],
    ['an empty _data', '{"_data":""}', /no "_data" field/],
  ])('rejects %s with a message naming the key', (_case, raw, reason) => {
    let error: unknown;
    try {
      decodePosition('cs:billing:shop:orders', raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidStoredTokenError);
    expect((error as Error).message).toMatch(reason);
    expect((error as Error).message).toContain('"cs:billing:shop:orders"');
    expect((error as InvalidStoredTokenError).raw).toBe(raw);
  });
});
