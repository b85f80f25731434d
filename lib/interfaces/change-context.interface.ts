/** Second argument of every `@OnChange` handler. */
export interface ChangeContext {
  /** The consuming service's name (the module's `consumer` option). */
  consumer: string;
  connectionName: string;
  database: string;
  collection: string;
  /** `ClassName.methodName` of the handler being called. */
  handler: string;
  /** 1 on the first call, then 2, 3… on retries of the same event. */
  attempt: number;
}
