import { describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { clusterTimeOfToken } from '../../lib/position/resume-token-time.js';

describe('clusterTimeOfToken', () => {
  it('reads the cluster time at the head of a mongod token (from a real "token not found" report)', () => {
    // 0x82, then t = 0x687E82DE, i = 1
    const token = {
      _data:
        '82687E82DE000000012B042C0100296E5A1004FEA7A1FFE23C4FD88070BFA43C9C995C463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064687E82DC122A414A3ECD77F8000004',
    };
    expect(clusterTimeOfToken(token)).toEqual(
      new mongoose.mongo.Timestamp({ t: 0x687e82de, i: 1 }),
    );
  });

  it('reads a high-water-mark (post-batch) token the same way', () => {
    expect(clusterTimeOfToken({ _data: '8265A1B2C3000000070100000004' })).toEqual(
      new mongoose.mongo.Timestamp({ t: 0x65a1b2c3, i: 7 }),
    );
  });

  it.each([
    ["another server's token", { _data: 't1' }],
    ['not hex', { _data: 'zz-not-hex-zz-not-hex' }],
    ['another leading type', { _data: '3C65A1B2C3000000070100000004' }],
    ['a binary _data', { _data: new Uint8Array([0x82, 1, 2, 3]) }],
    ['no token', null],
  ])('%s: null', (_case, token) => {
    expect(clusterTimeOfToken(token)).toBeNull();
  });
});
