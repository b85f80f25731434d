import type { mongo } from 'mongoose';
import type { ChangeEvent } from '../common/change-event.js';
import { documentKeyOf } from '../common/document-key.js';
import { clusterTimeOfToken } from '../position/resume-token-time.js';
// What an event read in a chunk's window says: which document it outdates, and when it happened.

/** Events of one document: one without a document key still changed some document. */
export const DOCUMENT_EVENTS = new Set(['insert', 'update', 'replace', 'delete']);

/** The key of an event's `fullDocument` (a server that puts something else in `documentKey`). */
export function keyOfFullDocument(change: ChangeEvent): string | null {
  const doc = (change as { fullDocument?: { _id?: unknown } | null }).fullDocument;
  if (!doc || doc._id === undefined) return null;
  return documentKeyOf({ documentKey: { _id: doc._id } } as unknown as ChangeEvent);
}

/** An event's cluster time (its `clusterTime`, else its token's), null when neither tells. */
export function clusterTimeOf(change: ChangeEvent): mongo.Timestamp | null {
  const time = (change as { clusterTime?: mongo.Timestamp }).clusterTime;
  return time ?? clusterTimeOfToken(change._id);
}
