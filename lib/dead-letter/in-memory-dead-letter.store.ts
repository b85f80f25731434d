import type { DeadLetter, DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import { decodeDeadLetter, decodeDeadLetters, encodeDeadLetter } from './dead-letter.codec.js';

/** Dead letters in this process only: they are gone with it. */
export class InMemoryDeadLetterStore implements DeadLetterStore {
  readonly durable = false;
  private readonly letters = new Map<string, string>();

  async add(letter: DeadLetter): Promise<void> {
    this.letters.set(letter.id, encodeDeadLetter(letter));
  }

  /** Every dead letter, oldest first. */
  async list(): Promise<DeadLetter[]> {
    return decodeDeadLetters(this.letters.values());
  }

  /** The dead letter with this id, or null. */
  async get(id: string): Promise<DeadLetter | null> {
    const raw = this.letters.get(id);
    return raw === undefined ? null : decodeDeadLetter(raw);
  }

  async remove(id: string): Promise<boolean> {
    return this.letters.delete(id);
  }
}
