/** Second argument of every `@OnChange` handler. */
export interface ChangeContext {
  /** The consuming service's name (the module's `consumer` option). */
  consumer: string;
  /** The mongoose connection the stream reads from (`default` for the default connection). */
  connectionName: string;
  /** The database of the watched collection. */
  database: string;
  /** The watched collection (as named in `@OnChange`). */
  collection: string;
  /** `ClassName.methodName` of the handler being called. */
  handler: string;
  /** 1 on the first call, then 2, 3… on retries of the same event. */
  attempt: number;
  /**
   * Aborted when this call should give up: the shutdown drain ran out of time, or (with
   * `onHandlerTimeout: 'abort'`) the call exceeded `handlerTimeoutMs`. Pass it to `fetch`,
   * database calls and the like. An aborted call that throws counts as a failed attempt.
   */
  signal: AbortSignal;
}
