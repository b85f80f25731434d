// `nestjs-change-streams/testing`: unit-test @OnChange handlers without MongoDB or Redis.
export { ChangeStreamTestingModule } from './change-stream-testing.module.js';
export { ChangeStreamTester } from './change-stream.tester.js';
export type { EmitOptions } from './change-stream.tester.js';
export { ChangeEventFactory, changeEvents } from './change-events.js';
export type { ChangeInput, ChangeOverrides } from './change-events.js';
export type { ChangeOutcome, HandlerRun, HandlerRunStatus } from './change-outcome.js';
export type { ChangeStreamTestingOptions } from './testing-options.js';
