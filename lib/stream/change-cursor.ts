import type { Connection, mongo } from 'mongoose';
import type { ChangeEvent } from './change-dispatcher.js';

/** The part of the driver's `ChangeStream` a collection stream uses (so tests can script one). */
export interface ChangeCursor {
  tryNext(): Promise<ChangeEvent | null>;
  readonly resumeToken: unknown;
  readonly closed: boolean;
  close(): Promise<void>;
}

export type CursorFactory = (pipeline: object[], options: mongo.ChangeStreamOptions) => ChangeCursor;

/** Opens change streams on a collection of a mongoose connection, through its own client. */
export function connectionCursorFactory(connection: Connection, collection: string): CursorFactory {
  return (pipeline, options) => {
    const db = connection.db;
    if (!db) throw new Error(`mongoose connection "${connection.name}" is not connected`);
    const stream = db.collection(collection).watch(pipeline, options);
    // Errors also surface through tryNext; this listener only keeps them from being unhandled.
    stream.on('error', () => undefined);
    return stream as unknown as ChangeCursor;
  };
}
