export type * from './change-context.interface.js';
export type * from './change-stream-module-options.interface.js';
export type * from './change-stream-status.interface.js';
export type * from './on-change-options.interface.js';
export type * from './position-store.interface.js';
export type * from './dead-letter.interface.js';
export type * from './failure-policies.interface.js';
export type * from './lease-store.interface.js';
