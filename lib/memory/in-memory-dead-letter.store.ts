import type {
  DeadLetter,
  DeadLetterPage,
  DeadLetterPageOptions,
  DeadLetterStore,
  DeadLetterStoreRetention,
} from '../interfaces/dead-letter.interface.js';
import {
  decodeDeadLetter,
  decodeDeadLetters,
  encodeDeadLetter,
} from '../dead-letter/dead-letter.codec.js';
import {
  PAGE_COUNT,
  type RetentionPolicy,
  retentionPolicy,
} from '../dead-letter/dead-letter-retention.js';

/** Dead letters in this process only: they are gone with it. Bounded like the Redis store. */
export class InMemoryDeadLetterStore implements DeadLetterStore {
  readonly durable = false;
  /** By id, in the order they were added (a letter added again moves to the end). */
  private readonly letters = new Map<string, { raw: string; failedAt: number }>();
  private readonly retention: RetentionPolicy;

  constructor(retention?: DeadLetterStoreRetention) {
    this.retention = retentionPolicy(retention);
  }

  async add(letter: DeadLetter): Promise<void> {
    this.letters.delete(letter.id);
    this.letters.set(letter.id, {
      raw: encodeDeadLetter(letter),
      failedAt: letter.failedAt.getTime(),
    });
    this.trim();
  }

  /** Every dead letter, oldest first. */
  async list(): Promise<DeadLetter[]> {
    this.trim();
    return decodeDeadLetters([...this.letters.values()].map((l) => l.raw));
  }

  /** Letters by id order after `cursor` (the last id of the previous page), so removals between pages skip nothing. */
  async page({ cursor, count = PAGE_COUNT }: DeadLetterPageOptions = {}): Promise<DeadLetterPage> {
    this.trim();
    const ids = [...this.letters.keys()].sort().filter((id) => !cursor || id > cursor);
    const taken = ids.slice(0, Math.max(1, count));
    return {
      letters: decodeDeadLetters(taken.map((id) => this.letters.get(id)!.raw)),
      cursor: ids.length > taken.length ? taken.at(-1)! : null,
    };
  }

  /** The dead letter with this id, or null. */
  async get(id: string): Promise<DeadLetter | null> {
    const stored = this.letters.get(id);
    return stored === undefined ? null : decodeDeadLetter(stored.raw);
  }

  async remove(id: string): Promise<boolean> {
    return this.letters.delete(id);
  }

  private trim(): void {
    const { maxLetters, maxAgeMs, onDropped } = this.retention;
    const cutoff = Date.now() - maxAgeMs;
    const old = [...this.letters].filter(([, l]) => l.failedAt < cutoff).map(([id]) => id);
    if (old.length > 0) onDropped(this.drop(old), 'age');
    const excess = this.letters.size - maxLetters;
    if (excess > 0) {
      const oldest = [...this.letters]
        .sort(([, a], [, b]) => a.failedAt - b.failedAt)
        .slice(0, excess)
        .map(([id]) => id);
      onDropped(this.drop(oldest), 'count');
    }
  }

  private drop(ids: string[]): DeadLetter[] {
    const dropped = ids.map((id) => decodeDeadLetter(this.letters.get(id)!.raw));
    ids.forEach((id) => this.letters.delete(id));
    return dropped;
  }
}
