import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { ChangeStreamModuleOptions } from './interfaces/change-stream-module-options.interface.js';

const definition = new ConfigurableModuleBuilder<ChangeStreamModuleOptions>({
  moduleName: 'ChangeStream',
})
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createChangeStreamOptions')
  // Global by default: the registry and health indicator are wanted in other modules.
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();

export const { ConfigurableModuleClass, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } = definition;

/**
 * Injection token of the options as given to `forRoot` or returned by the `forRootAsync`
 * factory (before validation and defaults).
 */
export const CHANGE_STREAM_MODULE_OPTIONS = definition.MODULE_OPTIONS_TOKEN;
