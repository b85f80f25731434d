import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { ChangeStreamModuleOptions } from './interfaces/change-stream-module-options.interface.js';

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: CHANGE_STREAM_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<ChangeStreamModuleOptions>({ moduleName: 'ChangeStream' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createChangeStreamOptions')
  // Global by default: the registry and health indicator are wanted in other modules.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
