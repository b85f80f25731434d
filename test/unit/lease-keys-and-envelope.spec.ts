import { describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { positionKey, decodePosition, encodePosition } from '../../lib/index.js';
import { leaseValue, parseLeaseValue } from '../../lib/redis/lease-value.js';
import { candidatesKey, fenceKey, leaseKey } from '../../lib/redis/redis-keys.js';

describe('lease keys and the fenced envelope', () => {
  it('puts the lease, fence counter and candidates beside the position key, inside its hash tag', () => {
    const key = positionKey('change-stream', 'billing', 'shop', 'orders');
    expect(leaseKey(key)).toBe('change-stream:{billing:shop:orders}:lease');
    expect(fenceKey(key)).toBe('change-stream:{billing:shop:orders}:fence');
    expect(candidatesKey(key)).toBe('change-stream:{billing:shop:orders}:candidates');
  });

  it('stores a lease as "<fence> <holder>" and reads it back, holders with spaces included', () => {
    expect(leaseValue({ fence: 7, holder: 'pod-a' })).toBe('7 pod-a');
    expect(parseLeaseValue('7 pod-a')).toEqual({ fence: 7, holder: 'pod-a' });
    expect(parseLeaseValue('12 host 1:42')).toEqual({ fence: 12, holder: 'host 1:42' });
    for (const foreign of ['', 'pod-a', '7', '7 ', 'x pod-a', '0 pod-a', '-1 pod-a'])
      expect(parseLeaseValue(foreign)).toBeNull();
  });

  it('adds fence and holder to the envelope when written under a lease, and still decodes it', () => {
    const token = { _data: '8263A1' };
    const raw = encodePosition({ token }, new Date('2026-01-02T03:04:05.000Z'), {
      fence: 5,
      holder: 'pod-a',
    });
    expect(JSON.parse(raw)).toEqual({
      v: { $numberInt: '2' },
      token,
      savedAt: '2026-01-02T03:04:05.000Z',
      fence: { $numberInt: '5' },
      holder: 'pod-a',
    });
    expect(decodePosition('k', raw)).toEqual({ token });

    const operationTime = new mongoose.mongo.Timestamp({ t: 1767000000, i: 3 });
    expect(
      decodePosition(
        'k',
        encodePosition({ operationTime }, new Date(), { fence: 3_000_000_000, holder: 'pod-a' }),
      ),
    ).toEqual({ operationTime });
  });

  it('leaves the envelope as before without a lease', () => {
    const raw = encodePosition({ token: { _data: 'abc' } });
    expect(Object.keys(JSON.parse(raw))).toEqual(['v', 'token', 'savedAt']);
  });
});
