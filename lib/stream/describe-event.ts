import mongoose from 'mongoose';
import type { ChangeEvent } from '../common/change-event.js';

/** How logs name an event: its operation, the document's _id (to find it), and the resume token (to find the event). */
export function describeEvent(change: ChangeEvent): string {
  const id = (change as { documentKey?: { _id?: unknown } }).documentKey?._id;
  const document =
    id === undefined ? '' : ` of document ${mongoose.mongo.BSON.EJSON.stringify(id)}`;
  const run = (change as { backfill?: { run?: string } }).backfill?.run;
  if (change.operationType === ('backfill' as string) && run !== undefined)
    return `backfill${document} (run ${run})`;
  return `${change.operationType}${document} (token ${JSON.stringify(change._id)})`;
}
