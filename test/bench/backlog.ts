import type { mongo } from 'mongoose';

/** Events of one document arrive this many events apart: ordering matters at any concurrency above it. */
export const DELETE_LAG = 16;

/**
 * The same events for every scenario: after `start`, `size` events where document i is inserted
 * and, DELETE_LAG inserts later, deleted. Two events per document (insert and delete both carry a
 * correct `documentKey`, also on mongo-java-server), so the bench can check per-document order.
 */
export interface Backlog {
  collection: string;
  /** Resume after this to read the whole backlog. */
  start: mongo.ResumeToken;
  size: number;
}

export async function makeBacklog(
  db: mongo.Db,
  collection: string,
  size: number,
): Promise<Backlog> {
  const items = db.collection<{ _id: number; writtenAt?: number }>(collection);
  const start = await currentToken(items);
  const documents = Math.floor(size / 2);
  const operations: mongo.AnyBulkWriteOperation<{ _id: number }>[] = [];
  for (let i = 0; i < documents + DELETE_LAG; i++) {
    if (i < documents) operations.push({ insertOne: { document: { _id: i } } });
    if (i >= DELETE_LAG) operations.push({ deleteOne: { filter: { _id: i - DELETE_LAG } } });
  }
  for (let i = 0; i < operations.length; i += 1000)
    await items.bulkWrite(operations.slice(i, i + 1000), { ordered: true });
  return { collection, start, size: documents * 2 };
}

/** A resume token of "now", from an event written for it. */
export async function currentToken(items: mongo.Collection<any>): Promise<mongo.ResumeToken> {
  const stream = items.watch([], { maxAwaitTimeMS: 100 });
  try {
    await stream.tryNext(); // opens the stream
    await items.insertOne({ _id: `marker-${Date.now()}-${Math.random()}` });
    for (;;) {
      const change = await stream.tryNext();
      if (change) return change._id;
    }
  } finally {
    await stream.close();
  }
}

/** Checks that each document's events were handled in order and never overlapped. */
export class OrderCheck {
  private readonly running = new Set<unknown>();
  private readonly inserted = new Set<string>();
  violations = 0;

  begin(operationType: string, id: unknown): void {
    const key = String(id);
    if (this.running.has(key)) this.violations++;
    this.running.add(key);
    if (operationType === 'delete' && !this.inserted.has(key)) this.violations++;
  }

  end(operationType: string, id: unknown): void {
    const key = String(id);
    this.running.delete(key);
    if (operationType === 'insert') this.inserted.add(key);
  }
}
