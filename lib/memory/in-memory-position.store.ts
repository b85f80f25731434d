import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { decodePosition, encodePosition } from '../position/position.codec.js';

/** Keeps positions in this process only: for tests and local runs, never for production. */
export class InMemoryPositionStore implements PositionStore {
  readonly durable = false;
  private readonly values = new Map<string, string>();

  async load(key: string): Promise<StreamPosition | null> {
    const raw = this.values.get(key);
    return raw === undefined ? null : decodePosition(key, raw);
  }

  async save(key: string, position: StreamPosition): Promise<void> {
    this.values.set(key, encodePosition(position));
  }

  /** The raw stored value, as Redis would hold it. */
  raw(key: string): string | undefined {
    return this.values.get(key);
  }
}

/** @deprecated use `InMemoryPositionStore`; removed in 1.0 */
export const InMemoryResumeTokenStore = InMemoryPositionStore;
/** @deprecated use `InMemoryPositionStore`; removed in 1.0 */
export type InMemoryResumeTokenStore = InMemoryPositionStore;
