import type { Cluster, Redis } from 'ioredis';
import type { DeadLetter, DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import { decodeDeadLetter, decodeDeadLetters, encodeDeadLetter } from './dead-letter.codec.js';

/** All dead letters of one consumer in one Redis hash (`<keyPrefix>:<consumer>:dead-letters`), by id. */
export class RedisDeadLetterStore implements DeadLetterStore {
  readonly durable = true;

  constructor(
    private readonly client: Redis | Cluster,
    /** The Redis hash holding the letters (the module uses `<keyPrefix>:<consumer>:dead-letters`). */
    readonly hashKey: string,
  ) {}

  async add(letter: DeadLetter): Promise<void> {
    await this.client.hset(this.hashKey, letter.id, encodeDeadLetter(letter));
  }

  /** Every dead letter, oldest first. */
  async list(): Promise<DeadLetter[]> {
    return decodeDeadLetters(await this.client.hvals(this.hashKey));
  }

  /** The dead letter with this id, or null. */
  async get(id: string): Promise<DeadLetter | null> {
    const raw = await this.client.hget(this.hashKey, id);
    return raw === null ? null : decodeDeadLetter(raw);
  }

  async remove(id: string): Promise<boolean> {
    return (await this.client.hdel(this.hashKey, id)) > 0;
  }
}
