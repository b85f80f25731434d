import type { DatabasePattern } from './database-pattern.js';
import type { BatchLimits } from '../interfaces/on-change-batch-options.interface.js';
import type { OnChangeOptions } from '../interfaces/on-change-options.interface.js';

/** One discovered `@OnChange` method, bound to its provider instance. */
export interface ChangeHandler {
  /** `ClassName.methodName`, used in every log line and error about it. */
  name: string;
  collection: string;
  /** Declared with a database pattern (`@OnChange({ collection, database })`): on the connection's deployment stream. */
  database?: DatabasePattern;
  connectionName: string;
  options: OnChangeOptions;
  invoke(change: unknown, context: unknown): unknown;
  /** The Nest provider that owns the method (its `InstanceWrapper`), for lifecycle ordering. */
  owner?: unknown;
  /** An `@OnChangeBatch` method: called with arrays of events, cut by these limits. */
  batch?: BatchLimits;
}
