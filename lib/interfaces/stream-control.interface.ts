/** Which stream `ChangeStreamControl` acts on, and how. */
export interface StreamControlOptions {
  /**
   * The mongoose connection of the collection (when the stream is named by its collection).
   * @defaultValue the module's `connectionName`, else the default connection
   */
  connectionName?: string;
  /**
   * Every instance of this consumer, through the stream's pause key in Redis (leases on), instead
   * of this instance alone. Without leases (in-memory store, `leases: false`) it applies to this
   * instance only, and a warning says so.
   * @defaultValue false
   */
  fleet?: boolean;
}

/** The second argument of `ChangeStreamControl.pause`. */
export interface PauseStreamOptions extends StreamControlOptions {
  /** Why, shown in status, health and logs (and stored in the pause key when `fleet`). */
  reason?: string;
  /**
   * Who pauses it.
   * @defaultValue this instance's `leases.instanceId`, else `"this instance"`
   */
  by?: string;
}
