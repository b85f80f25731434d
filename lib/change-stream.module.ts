import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { CHANGE_STREAM_RESOLVED_OPTIONS, CHANGE_STREAM_STORES } from './change-stream.constants.js';
import { ChangeStreamExplorer } from './change-stream.explorer.js';
import {
  CHANGE_STREAM_MODULE_OPTIONS,
  ConfigurableModuleClass,
} from './change-stream.module-definition.js';
import { type ResolvedChangeStreamOptions, resolveOptions } from './options/module-options.js';
import { ChangeStreamOrchestrator } from './change-stream.orchestrator.js';
import { ChangeStreamRegistry } from './change-stream.registry.js';
import { ChangeStreamControl } from './control/change-stream-control.service.js';
import { ChangeStreamBackfill } from './control/change-stream-backfill.service.js';
import { ChangeStreamDeadLetters } from './dead-letter/change-stream-dead-letters.service.js';
import { ChangeStreamHealthIndicator } from './health/change-stream.health.js';
import type { ChangeStreamModuleOptions } from './interfaces/change-stream-module-options.interface.js';
import { createStores } from './stores.factory.js';

/**
 * `ChangeStreamModule.forRoot({ consumer, redis })` or `forRootAsync({ useFactory, inject })`:
 * every `@OnChange` provider method gets a resumable change stream.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: CHANGE_STREAM_RESOLVED_OPTIONS,
      useFactory: (options: ChangeStreamModuleOptions) => resolveOptions(options),
      inject: [CHANGE_STREAM_MODULE_OPTIONS],
    },
    {
      provide: CHANGE_STREAM_STORES,
      useFactory: (options: ResolvedChangeStreamOptions) => createStores(options),
      inject: [CHANGE_STREAM_RESOLVED_OPTIONS],
    },
    ChangeStreamExplorer,
    ChangeStreamRegistry,
    ChangeStreamOrchestrator,
    ChangeStreamHealthIndicator,
    ChangeStreamDeadLetters,
    ChangeStreamControl,
    ChangeStreamBackfill,
  ],
  exports: [
    ChangeStreamRegistry,
    ChangeStreamHealthIndicator,
    ChangeStreamDeadLetters,
    ChangeStreamControl,
    ChangeStreamBackfill,
  ],
})
export class ChangeStreamModule extends ConfigurableModuleClass {
  /**
   * Options known up front: `ChangeStreamModule.forRoot({ consumer: 'billing', redis: 'redis://…' })`.
   * The module is global unless you pass `isGlobal: false`.
   */
  declare static forRoot: typeof ConfigurableModuleClass.forRoot;
  /**
   * Options from other providers: `forRootAsync({ imports, inject, useFactory })`, or `useClass` /
   * `useExisting` with a class that has `createChangeStreamOptions()`. Global unless `isGlobal: false`.
   */
  declare static forRootAsync: typeof ConfigurableModuleClass.forRootAsync;
}
