import mongoose from 'mongoose';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { StreamPosition } from '../interfaces/position-store.interface.js';
import { decodePosition } from '../position/position.codec.js';
import type { MirrorStamp } from './mirror-stamp.js';

/** One stream's mirrored position: `_id` is its Redis key, `position` the value Redis holds (same codec). */
export interface MirrorDocument extends MirrorStamp {
  _id: string;
  position: string;
  holder: string | null;
  savedAt: Date;
}

/** What a mirror document says. */
export interface MirroredPosition {
  position: StreamPosition;
  holder: string | null;
  savedAt: Date | null;
}

const DUPLICATE_KEY = 11000;

/** The MongoDB collection that mirrors positions: reads and fenced upserts, nothing else. */
export class MongoPositionMirror {
  constructor(private readonly collection: mongoose.mongo.Collection<MirrorDocument>) {}

  /** `database.collection`, for messages. */
  get namespace(): string {
    return `${this.collection.dbName}.${this.collection.collectionName}`;
  }

  /** Throws `InvalidStoredTokenError` for a document whose position cannot be read. */
  async read(key: string): Promise<MirroredPosition | null> {
    const doc = await this.collection.findOne({ _id: key });
    if (doc === null) return null;
    const label = `mongodb ${this.namespace} _id=${key}`;
    const raw =
      typeof doc.position === 'string' ? doc.position : JSON.stringify(doc.position ?? null);
    const position = decodePosition(label, raw);
    return {
      position,
      holder: typeof doc.holder === 'string' ? doc.holder : null,
      savedAt: doc.savedAt instanceof Date ? doc.savedAt : null,
    };
  }

  async stamp(key: string): Promise<MirrorStamp | null> {
    const doc = await this.collection.findOne(
      { _id: key },
      { projection: { generation: 1, fence: 1 } },
    );
    return doc === null
      ? null
      : { generation: numberOr0(doc.generation), fence: numberOr0(doc.fence) };
  }

  /**
   * Writes `raw` stamped `stamp` unless the stored document outranks it (see `outranks`); false
   * when refused. The upsert's filter fails on a document that outranks it, and the insert it then
   * tries collides on `_id`: that duplicate-key error is the refusal.
   */
  async write(
    key: string,
    raw: string,
    stamp: MirrorStamp,
    lease: StreamLease | undefined,
  ): Promise<boolean> {
    const { generation, fence } = stamp;
    const filter = lease
      ? {
          _id: key,
          $or: [{ generation: { $lt: generation } }, { generation, fence: { $lte: fence } }],
        }
      : { _id: key };
    try {
      await this.collection.updateOne(
        filter,
        {
          $set: {
            position: raw,
            generation,
            fence,
            holder: lease?.holder ?? null,
            savedAt: new Date(),
          },
        },
        { upsert: true },
      );
      return true;
    } catch (error) {
      if ((error as { code?: unknown }).code === DUPLICATE_KEY) return false;
      throw error;
    }
  }
}

function numberOr0(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}
