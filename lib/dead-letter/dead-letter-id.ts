import { createHash } from 'node:crypto';
import mongoose from 'mongoose';

const { EJSON } = mongoose.mongo.BSON;

/**
 * The same failure (consumer, stream, event, handler) always gets the same id, so an event that
 * is delivered again after a crash and fails again overwrites its letter instead of adding a
 * second one that a replay would handle twice.
 */
export function deadLetterId(
  consumer: string,
  streamKey: string,
  token: unknown,
  handler: string,
): string {
  const identity = [consumer, streamKey, EJSON.stringify(token, { relaxed: false }), handler].join(
    '\u0000',
  );
  return createHash('sha256').update(identity).digest('hex').slice(0, 32);
}
