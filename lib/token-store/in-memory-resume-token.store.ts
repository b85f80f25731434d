import type { ResumeTokenStore, StreamPosition } from '../interfaces/resume-token-store.interface.js';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.codec.js';

/** Keeps positions in this process only: for tests and local runs, never for production. */
export class InMemoryResumeTokenStore implements ResumeTokenStore {
  readonly durable = false;
  private readonly values = new Map<string, string>();

  async load(key: string): Promise<StreamPosition | null> {
    const raw = this.values.get(key);
    return raw === undefined ? null : decodeCheckpoint(key, raw);
  }

  async save(key: string, position: StreamPosition): Promise<void> {
    this.values.set(key, encodeCheckpoint(position));
  }

  /** The raw stored value, as Redis would hold it. */
  raw(key: string): string | undefined {
    return this.values.get(key);
  }
}
