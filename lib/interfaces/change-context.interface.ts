/** Second argument of every `@OnChange` handler. */
export interface ChangeContext {
  /** The consuming service's name (the module's `consumer` option). */
  consumer: string;
  /** The mongoose connection the stream reads from (`default` for the default connection). */
  connectionName: string;
  /**
   * The database of the watched collection; for a handler declared with a database pattern
   * (`@OnChange({ collection, database: /^tenant_/ })`), the event's database (`ns.db`). An
   * `@OnChangeBatch` batch may hold events of several databases: there it is the first event's.
   */
  database: string;
  /** The event's collection (as named in `@OnChange`), also in a database stream (`streams: 'database'`). */
  collection: string;
  /** `ClassName.methodName` of the handler being called. */
  handler: string;
  /** 1 on the first call, then 2, 3… on retries of the same event. */
  attempt: number;
  /**
   * Aborted when this call should give up: the shutdown drain ran out of time, the lease was
   * lost, or (with `onHandlerTimeout: 'abort'`) this call exceeded `handlerTimeoutMs`. Each call
   * (each attempt of each handler) has its own: a retry starts with a fresh one. Pass it to
   * `fetch`, database calls and the like. An aborted call that throws counts as a failed attempt.
   */
  signal: AbortSignal;
  /**
   * The fencing number of the lease this instance holds on the stream (it only grows: a later
   * holder has a larger one), or `null` without leases. A handler that must never let an older
   * holder's late write win stores it with its own writes and writes only where the stored one
   * is not larger (see docs/replicas.md).
   */
  fence: number | null;
}
