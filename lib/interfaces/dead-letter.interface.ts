/** One event a handler could not process, kept so it can be inspected, replayed or discarded. */
export interface DeadLetter {
  id: string;
  /** The stream's checkpoint key. */
  streamKey: string;
  connectionName: string;
  database: string;
  collection: string;
  /** `ClassName.methodName` of the handler that failed. */
  handler: string;
  /** The change event as received (BSON types preserved). */
  change: unknown;
  error: { name: string; message: string; stack?: string };
  attempts: number;
  failedAt: Date;
}

/** Where dead letters are kept. Redis by default (with `redis`), in memory otherwise. */
export interface DeadLetterStore {
  /** `false` for stores that forget on restart (in-memory); custom stores count as durable. */
  readonly durable?: boolean;
  /** Stores `letter` under `letter.id`, replacing a letter with the same id (the same failure again). */
  add(letter: DeadLetter): Promise<void>;
  list(): Promise<DeadLetter[]>;
  get(id: string): Promise<DeadLetter | null>;
  /** True when the id existed. */
  remove(id: string): Promise<boolean>;
}
