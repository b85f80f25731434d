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
  /**
   * One page of dead letters, for stores too large to list at once. Optional for custom
   * stores: without it `ChangeStreamDeadLetters.page` pages over `list()`.
   */
  page?(options?: DeadLetterPageOptions): Promise<DeadLetterPage>;
  /** The dead letter with this id, or null. */
  get(id: string): Promise<DeadLetter | null>;
  /** True when the id existed. */
  remove(id: string): Promise<boolean>;
}

/** How many dead letters a store keeps, and for how long: the oldest are dropped first (with a warning and a metric). */
export interface DeadLetterRetention {
  /** At most this many letters (default 10,000); adding one more drops the oldest. `0` or `Infinity`: no limit. */
  maxLetters?: number;
  /** Letters older than this (by `failedAt`) are dropped when a letter is added or listed; default: no age limit. */
  maxAgeMs?: number;
}

/** One page of dead letters (`ChangeStreamDeadLetters.page`). */
export interface DeadLetterPage {
  /** The letters of this page, oldest first within the page. */
  letters: DeadLetter[];
  /** Pass it to the next call for the next page; null after the last page. */
  cursor: string | null;
}

/** What `page` reads: where to go on, and about how many letters to return. */
export interface DeadLetterPageOptions {
  /** The `cursor` of the previous page; omit for the first page. */
  cursor?: string | null;
  /** About how many letters per page (a hint, as Redis `HSCAN`'s COUNT; default 100). */
  count?: number;
}

/** The retention of a dead-letter store created by hand (`new RedisDeadLetterStore(client, key, options)`). */
export interface DeadLetterStoreRetention extends DeadLetterRetention {
  /** Told about the letters a trim removed (the module logs a warning and counts them). */
  onDropped?(letters: DeadLetter[], reason: 'count' | 'age'): void;
}
