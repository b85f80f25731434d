import mongoose from 'mongoose';
import type { ChangeEvent } from './change-event.js';

const { EJSON, ObjectId } = mongoose.mongo.BSON;

/**
 * Events of one document share a key: its `_id` alone (an update that changes a shard key changes
 * the rest of `documentKey`, not the document). Events without a document (lifecycle, DDL), or
 * whose `documentKey` has no `_id` (malformed), have none and run alone: ordering is never guessed.
 *
 * Two `_id`s get one key exactly when MongoDB's unique index takes them for one document: numbers
 * of any BSON type (int, long, double, decimal) by their exact value, documents and arrays
 * element by element; strings never equal numbers.
 */
export function documentKeyOf(change: ChangeEvent): string | null {
  const key = (change as { documentKey?: Record<string, unknown> }).documentKey;
  if (typeof key !== 'object' || key === null || !('_id' in key)) return null;
  return idKey(key._id);
}

/**
 * `documentKeyOf` in a database stream: two collections' documents may share an `_id`, so the
 * collection is part of the key (a collection name has no NUL; `ns` always comes with `documentKey`).
 */
export function collectionDocumentKeyOf(change: ChangeEvent): string | null {
  const id = documentKeyOf(change);
  if (id === null) return null;
  const coll = (change as { ns?: { coll?: unknown } }).ns?.coll;
  return `${typeof coll === 'string' ? coll : ''}\u0000${id}`;
}

/**
 * `documentKeyOf` in a deployment stream: two databases' (and collections') documents may share an
 * `_id`, so both are part of the key (neither name has a NUL).
 */
export function namespaceDocumentKeyOf(change: ChangeEvent): string | null {
  const id = documentKeyOf(change);
  if (id === null) return null;
  const ns = (change as { ns?: { db?: unknown; coll?: unknown } }).ns;
  const db = typeof ns?.db === 'string' ? ns.db : '';
  return `${db}\u0000${typeof ns?.coll === 'string' ? ns.coll : ''}\u0000${id}`;
}

/** The key of the document with this `_id` (as `documentKeyOf` of an event of it). */
export function idKey(id: unknown): string {
  // Cheap keys for the common ids (string, a number that is a safe integer, ObjectId); the rest is rare.
  if (typeof id === 'string') return `s:${id}`;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return `n:${id}`;
  if (id instanceof ObjectId) return `o:${id.toHexString()}`;
  const numeric = numericKey(id);
  return numeric === null ? `e:${canonical(id)}` : `n:${numeric}`;
}

/** `documentKeyOf(change) !== null`, without building the key. */
export function hasDocumentKey(change: ChangeEvent): boolean {
  const key = (change as { documentKey?: Record<string, unknown> }).documentKey;
  return typeof key === 'object' && key !== null && '_id' in key;
}

/** Nested values: a prefix per kind, so no two kinds can produce the same text. */
function canonical(value: unknown): string {
  if (typeof value === 'string') return `s:${JSON.stringify(value)}`;
  const numeric = numericKey(value);
  if (numeric !== null) return `n:${numeric}`;
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isDocument(value)) {
    // Field order matters to MongoDB ({a, b} and {b, a} are two _ids), so it is kept.
    return `{${Object.entries(value)
      .map(([field, v]) => `${JSON.stringify(field)}:${canonical(v)}`)
      .join(',')}}`;
  }
  return `x:${EJSON.stringify(value, { relaxed: false })}`;
}

function isDocument(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || '_bsontype' in value) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * The value of a BSON number as text that depends on the value only: a safe integer as JS prints
 * it, anything else as `<digits>e<exponent>` with no trailing zeros in the digits, NaN and the
 * infinities by name. Null when `value` is not a number.
 */
export function numericKey(value: unknown): string | null {
  switch (typeof value) {
    case 'number':
      return doubleKey(value);
    case 'bigint':
      return decimalKey(value < 0n ? '-' : '', (value < 0n ? -value : value).toString(), 0);
    case 'object': {
      const type = (value as { _bsontype?: unknown } | null)?._bsontype;
      if (type === 'Int32' || type === 'Double')
        return doubleKey((value as { value: number }).value);
      if (type === 'Long' || type === 'Decimal128') return parsedKey(String(value));
      return null;
    }
    default:
      return null;
  }
}

function doubleKey(value: number): string {
  if (Number.isSafeInteger(value)) return `${value}`; // also -0 → "0"
  if (!Number.isFinite(value)) return `${value}`; // NaN, Infinity, -Infinity
  // The double's exact value, m × 2^e, written in decimal (it compares exactly against a Decimal128).
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(value));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> 52n);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exponent = (biased === 0 ? 1 : biased) - 1075;
  const sign = value < 0 ? '-' : '';
  if (exponent >= 0) return decimalKey(sign, (mantissa << BigInt(exponent)).toString(), 0);
  // m × 2^-k = m × 5^k × 10^-k
  return decimalKey(sign, (mantissa * 5n ** BigInt(-exponent)).toString(), exponent);
}

/** A Long's or Decimal128's text: `-12`, `1.50`, `1.5E+3`, `-0`, `NaN`, `-Infinity`. */
function parsedKey(text: string): string {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:E([+-]?\d+))?$/i.exec(text);
  if (!match) return /nan/i.test(text) ? 'NaN' : text.startsWith('-') ? '-Infinity' : 'Infinity';
  const [, sign, whole, fraction = '', exponent = '0'] = match;
  return decimalKey(sign === '-' ? '-' : '', whole + fraction, Number(exponent) - fraction.length);
}

/** `sign digits × 10^exponent` in its one form (see `numericKey`). */
function decimalKey(sign: string, digits: string, exponent: number): string {
  let start = 0;
  while (start < digits.length - 1 && digits[start] === '0') start++;
  let end = digits.length;
  while (end > start + 1 && digits[end - 1] === '0') {
    end--;
    exponent++;
  }
  const significant = digits.slice(start, end);
  if (significant === '0' || significant === '') return '0';
  if (exponent >= 0 && significant.length + exponent <= 16) {
    const integer = Number(significant) * 10 ** exponent;
    if (Number.isSafeInteger(integer)) return `${sign}${integer}`;
  }
  return `${sign}${significant}e${exponent}`;
}
