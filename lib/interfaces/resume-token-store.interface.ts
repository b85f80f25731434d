import type { mongo } from 'mongoose';

export type ResumeToken = mongo.ResumeToken;

/**
 * Where stream positions live. Implementations store whatever `encodeCheckpoint`
 * produces and give it back to `decodeCheckpoint`, so every store shares one format.
 */
export interface ResumeTokenStore {
  /** The stored token, or `null` when the key has never been written. */
  load(key: string): Promise<ResumeToken | null>;
  /** Persist `token` as the position to resume after. */
  save(key: string, token: ResumeToken): Promise<void>;
  /** Release resources the store owns; called once at application shutdown. */
  close?(): Promise<void>;
}
