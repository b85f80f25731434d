/** One event a handler could not process, kept so it can be inspected, replayed or discarded. */
export interface DeadLetter {
  /** Derived from the consumer, the stream, the event's resume token and the handler: the same failure again gets the same id. */
  id: string;
  /** The stream's checkpoint key. */
  streamKey: string;
  /** The mongoose connection of the stream. */
  connectionName: string;
  /** The database of the collection. */
  database: string;
  /** The collection the event came from. */
  collection: string;
  /** `ClassName.methodName` of the handler that failed. */
  handler: string;
  /** The change event as received (BSON types preserved). */
  change: unknown;
  /** The handler's last error. */
  error: {
    /** The error's `name` (`Error`, `TypeError`, …). */
    name: string;
    /** The error's `message`. */
    message: string;
    /** The error's stack, when it had one. */
    stack?: string;
  };
  /** How many times the handler was called with this event. */
  attempts: number;
  /** When the handler gave up. */
  failedAt: Date;
}

/** Where dead letters are kept. Redis by default (with `redis`), in memory otherwise. */
export interface DeadLetterStore {
  /** `false` for stores that forget on restart (in-memory); custom stores count as durable. */
  readonly durable?: boolean;
  /** Stores `letter` under `letter.id`, replacing a letter with the same id (the same failure again). */
  add(letter: DeadLetter): Promise<void>;
  /** Every dead letter, oldest first. */
  list(): Promise<DeadLetter[]>;
  /** The dead letter with this id, or null. */
  get(id: string): Promise<DeadLetter | null>;
  /** True when the id existed. */
  remove(id: string): Promise<boolean>;
}
