import { type DynamicModule, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ChangeStreamExplorer } from '../change-stream.explorer.js';
import { ChangeStreamDeadLetters } from '../dead-letter/change-stream-dead-letters.service.js';
import { ChangeStreamTester } from './change-stream.tester.js';
import { TestingDeadLetters } from './testing-dead-letters.js';
import {
  CHANGE_STREAM_TESTING_OPTIONS,
  type ChangeStreamTestingOptions,
  resolveTestingOptions,
} from './testing-options.js';
import { TestingStreams } from './testing-streams.js';

/**
 * Stands in for `ChangeStreamModule` in unit tests: import it into `Test.createTestingModule`
 * next to your providers, then drive their `@OnChange` handlers with `ChangeStreamTester`.
 * Nothing is connected (no MongoDB, Redis or mongoose connection is needed). Also provides
 * `ChangeStreamDeadLetters` over its in-memory dead letters. Global, like `ChangeStreamModule`.
 */
@Module({})
export class ChangeStreamTestingModule {
  /** Invalid options throw `ChangeStreamConfigError` here, with production's messages. */
  static forRoot(options: ChangeStreamTestingOptions = {}): DynamicModule {
    return {
      module: ChangeStreamTestingModule,
      global: true,
      imports: [DiscoveryModule],
      providers: [
        { provide: CHANGE_STREAM_TESTING_OPTIONS, useValue: resolveTestingOptions(options) },
        ChangeStreamExplorer,
        TestingStreams,
        ChangeStreamTester,
        {
          provide: ChangeStreamDeadLetters,
          useFactory: (streams: TestingStreams) => new TestingDeadLetters(streams),
          inject: [TestingStreams],
        },
      ],
      exports: [ChangeStreamTester, ChangeStreamDeadLetters],
    };
  }
}
