import mongoose from 'mongoose';
import { CHECKPOINT_FORMAT_VERSION } from '../change-stream.constants.js';
import { InvalidStoredTokenError } from '../change-stream.errors.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { StoredBackfill } from '../interfaces/backfill.interface.js';
import type {
  ResumeToken,
  StreamCoverage,
  StreamPosition,
} from '../interfaces/position-store.interface.js';

// The driver's own BSON copy, so tokens holding BSON types round-trip exactly.
const { EJSON, Timestamp } = mongoose.mongo.BSON;

/**
 * The stored value: canonical EJSON of `{ v, token | operationTime, backfill?, coverage?, savedAt }`, plus `fence` and
 * `holder` when written under a lease (the fenced write refuses to replace a value whose fence is
 * larger than the writer's). New fields can be added without breaking what is already stored.
 */
export function encodePosition(
  position: StreamPosition,
  savedAt = new Date(),
  lease?: StreamLease,
): string {
  const written = lease ? { fence: lease.fence, holder: lease.holder } : {};
  return EJSON.stringify(
    { v: CHECKPOINT_FORMAT_VERSION, ...position, savedAt: savedAt.toISOString(), ...written },
    { relaxed: false },
  );
}

/** Reads what `encodePosition` wrote (this version or 0.1's); also accepts a bare token (`{"_data": …}`) stored by hand. */
export function decodePosition(key: string, raw: string): StreamPosition {
  let parsed: unknown;
  try {
    parsed = EJSON.parse(raw);
  } catch (error) {
    throw new InvalidStoredTokenError(key, raw, `not EJSON: ${(error as Error).message}`);
  }
  if (!isObject(parsed)) throw new InvalidStoredTokenError(key, raw, 'not an object');
  if ('_data' in parsed) return { token: checkToken(key, raw, parsed) };
  if (parsed.v !== 1 && parsed.v !== CHECKPOINT_FORMAT_VERSION) {
    throw new InvalidStoredTokenError(
      key,
      raw,
      `unknown format version ${JSON.stringify(parsed.v)}`,
    );
  }
  const backfill = {
    ...(parsed.backfill !== undefined && { backfill: checkBackfill(key, raw, parsed.backfill) }),
    ...(parsed.coverage !== undefined && { coverage: checkCoverage(key, raw, parsed.coverage) }),
  };
  if (parsed.token === undefined && parsed.operationTime !== undefined) {
    if (!(parsed.operationTime instanceof Timestamp))
      throw new InvalidStoredTokenError(key, raw, '"operationTime" is not a BSON timestamp');
    return { operationTime: parsed.operationTime, ...backfill };
  }
  return { token: checkToken(key, raw, parsed.token), ...backfill };
}

/** Backfill progress (optional; records written before backfills existed have none). */
function checkBackfill(key: string, raw: string, value: unknown): StoredBackfill {
  const bad = (what: string) => new InvalidStoredTokenError(key, raw, `"backfill" ${what}`);
  if (!isObject(value) || !isNames(value.completed)) throw bad('has no "completed" handler list');
  if (value.run === undefined) return { completed: value.completed };
  const run: unknown = value.run;
  if (
    !isObject(run) ||
    typeof run.id !== 'string' ||
    !isNames(run.handlers) ||
    (run.after !== undefined && typeof run.after !== 'string') ||
    typeof run.done !== 'number' ||
    typeof run.startedAt !== 'string'
  )
    throw bad('has a malformed "run"');
  return {
    completed: value.completed,
    run: {
      id: run.id,
      handlers: run.handlers,
      ...(run.after !== undefined && { after: run.after as string }),
      done: run.done,
      ...(typeof run.delivered === 'number' && { delivered: run.delivered }),
      total: typeof run.total === 'number' ? run.total : null,
      startedAt: run.startedAt,
    },
  };
}

/** A database stream's coverage (optional; see `StreamCoverage`). */
function checkCoverage(key: string, raw: string, value: unknown): StreamCoverage {
  const bad = (what: string) => new InvalidStoredTokenError(key, raw, `"coverage" ${what}`);
  if (!isObject(value) || !isNames(value.serves)) throw bad('has no "serves" collection list');
  if (value.retired === undefined) return { serves: value.serves };
  const retired: unknown = value.retired;
  if (!isObject(retired) || !Object.values(retired).every((t) => t instanceof Timestamp))
    throw bad('has a "retired" that is not a map of collection names to BSON timestamps');
  return { serves: value.serves, retired: { ...(retired as StreamCoverage['retired']) } };
}

const isNames = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((v) => typeof v === 'string');

function checkToken(key: string, raw: string, token: unknown): ResumeToken {
  if (!isObject(token) || !('_data' in token) || token._data == null || token._data === '') {
    throw new InvalidStoredTokenError(key, raw, 'no "_data" field in the token');
  }
  return token;
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** @deprecated use `encodePosition`; removed in 1.0 */
export const encodeCheckpoint = encodePosition;

/** @deprecated use `decodePosition`; removed in 1.0 */
export const decodeCheckpoint = decodePosition;
