/**
 * Server answers meaning "this position cannot be resumed from", so reopening would fail
 * forever: ChangeStreamHistoryLost (286), InvalidResumeToken (260), ChangeStreamFatalError (280).
 * A server error without a numeric code (some MongoDB-compatible servers reject a token that way)
 * counts too; network errors never do.
 */
const CODES = new Set([286, 260, 280]);

export function isHistoryLost(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, code } = error as { name?: string; code?: unknown };
  if (name !== 'MongoServerError') return false;
  return typeof code !== 'number' || CODES.has(code);
}
