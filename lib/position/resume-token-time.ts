import mongoose, { type mongo } from 'mongoose';

/** KeyString type byte of a Timestamp: mongod's resume tokens (v1 and v2) begin with the event's cluster time. */
const TIMESTAMP_TYPE = 0x82;

/**
 * The cluster time a mongod resume token was taken at, read from its `_data` hex string: the
 * KeyString type byte 0x82, then the Timestamp's seconds and increment as two big-endian 32-bit
 * integers. Null for any other shape (another server's token, a binary `_data`).
 */
export function clusterTimeOfToken(token: unknown): mongo.Timestamp | null {
  const data = (token as { _data?: unknown } | null)?._data;
  if (typeof data !== 'string' || !/^[0-9a-fA-F]{18,}$/.test(data)) return null;
  if (parseInt(data.slice(0, 2), 16) !== TIMESTAMP_TYPE) return null;
  const t = parseInt(data.slice(2, 10), 16);
  const i = parseInt(data.slice(10, 18), 16);
  return t === 0 ? null : new mongoose.mongo.Timestamp({ t, i });
}
