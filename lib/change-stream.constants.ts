/** Metadata key under which `@OnChange` stores its handler definitions. */
export const ON_CHANGE_METADATA = 'nestjs-change-streams:on-change';

/** Metadata key under which `@OnChangeBatch` stores its handler definitions. */
export const ON_CHANGE_BATCH_METADATA = 'nestjs-change-streams:on-change-batch';

/** Injection token of the validated options with every default filled in. */
export const CHANGE_STREAM_RESOLVED_OPTIONS = Symbol('nestjs-change-streams:resolved-options');

/** Injection token of the token and dead-letter stores the module uses. */
export const CHANGE_STREAM_STORES = Symbol('nestjs-change-streams:stores');

/** Name shown for the mongoose connection that has no name. */
export const DEFAULT_CONNECTION_NAME = 'default';

/** Version of the stored checkpoint envelope; bumped on any incompatible change. */
export const CHECKPOINT_FORMAT_VERSION = 2;
