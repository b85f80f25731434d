import mongoose from 'mongoose';
import type { DeadLetter } from '../interfaces/dead-letter.interface.js';

const { EJSON } = mongoose.mongo.BSON;

/** Canonical EJSON, so the event's ObjectIds, dates and decimals come back as they were. */
export function encodeDeadLetter(letter: DeadLetter): string {
  return EJSON.stringify(letter, { relaxed: false });
}

/** Decodes stored dead letters, oldest first. */
export function decodeDeadLetters(raws: Iterable<string>): DeadLetter[] {
  return [...raws]
    .map(decodeDeadLetter)
    .sort((a, b) => a.failedAt.getTime() - b.failedAt.getTime());
}

export function decodeDeadLetter(raw: string): DeadLetter {
  // Relaxed on the way back: numbers come back as JS numbers, as the driver delivers them.
  const parsed = EJSON.parse(raw) as DeadLetter & { attempts: unknown };
  return { ...parsed, attempts: Number(parsed.attempts), failedAt: new Date(parsed.failedAt) };
}
