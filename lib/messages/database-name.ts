/** A database (or a database pattern) as messages name it: a name in the quotes the message gives collection names, a RegExp as written. */
export function quotedDatabase(database: string | RegExp, quote = "'"): string {
  return typeof database === 'string' ? `${quote}${database}${quote}` : String(database);
}
