/**
 * The databases a tenant handler watches (`@OnChange({ collection, database })`): one name, or a
 * RegExp the server matches against each event's `ns.db`.
 */
export type DatabasePattern = string | RegExp;

/** The RegExp flags MongoDB's `$regex` `$options` accept that mean the same in JavaScript. */
const SERVER_FLAGS = /^[ims]*$/;

/** Why `pattern` cannot name databases, or null when it can. */
export function databasePatternProblem(pattern: unknown): string | null {
  if (typeof pattern === 'string')
    return pattern.trim() === '' || /[$/\\. "]/.test(pattern)
      ? 'a database name is not empty and has none of $ / \\ . " or a space'
      : null;
  if (pattern instanceof RegExp)
    return SERVER_FLAGS.test(pattern.flags)
      ? null
      : `the RegExp's flags must be among i, m and s (the server matches it); got "${pattern.flags}"`;
  return 'expected a database name or a RegExp';
}

/** How the pattern is shown (status, messages) and sorted: `/^tenant_/i` or the name. */
export function describeDatabasePattern(pattern: DatabasePattern): string {
  return typeof pattern === 'string' ? pattern : `/${pattern.source}/${pattern.flags}`;
}

/** The server-side condition on `ns.db` (or `to.db`): equality, or `$regex` with the RegExp's source and flags. */
export function databaseCondition(pattern: DatabasePattern): string | object {
  return typeof pattern === 'string'
    ? pattern
    : { $regex: pattern.source, ...(pattern.flags && { $options: pattern.flags }) };
}

/** Whether the database `name` is one of the pattern's (as the server decided it for the filter). */
export function matchesDatabase(pattern: DatabasePattern, name: string): boolean {
  // No `g` or `y` flag (see `databasePatternProblem`): `test` keeps no state between calls.
  return typeof pattern === 'string' ? pattern === name : pattern.test(name);
}
