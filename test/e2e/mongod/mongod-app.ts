import type { INestApplicationContext, Provider } from '@nestjs/common';
import { MongooseModule } from '@nestjs/mongoose';
import { Test } from '@nestjs/testing';
import mongoose from 'mongoose';
import {
  type ChangeStreamEvent,
  ChangeStreamModule,
  type ChangeStreamModuleOptions,
  ChangeStreamRegistry,
} from '../../../lib/index.js';
import { CapturingLogger } from '../../fixtures/capturing-logger.js';
import { EventLog } from '../../fixtures/event-log.js';
import { testEnv } from '../../fixtures/test-env.js';
import { MongodReplSet } from '../../servers/mongod-replset.js';

export interface MongodAppSpec {
  /** Default: the harness's server. */
  mongoUri?: string;
  dbName: string;
  consumer: string;
  providers: Provider[];
  changeStreams?: Partial<ChangeStreamModuleOptions>;
}

/**
 * Like the fixtures' `TestApp` (same module options), for the real-mongod specs: it can run on a
 * server of its own (a replica set with a tiny oplog), and it records the registry's events from
 * before `init()`, so those emitted while the streams open (`history-lost`, `state`) are seen too.
 */
export class MongodApp {
  /** Every registry event since before `init()`. */
  readonly registryEvents: ChangeStreamEvent[] = [];

  private constructor(
    readonly app: INestApplicationContext,
    readonly logger: CapturingLogger,
  ) {}

  static async start(spec: MongodAppSpec): Promise<MongodApp> {
    const { mongoUri, redisUrl } = testEnv();
    const logger = new CapturingLogger();
    const module = await Test.createTestingModule({
      imports: [
        MongooseModule.forRoot(spec.mongoUri ?? mongoUri, { dbName: spec.dbName }),
        ChangeStreamModule.forRoot({
          consumer: spec.consumer,
          redis: redisUrl,
          checkpoint: { maxEvents: 1, intervalMs: 50 },
          handlerRetry: { retries: 2, initialDelayMs: 10, maxDelayMs: 50 },
          reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
          maxAwaitTimeMS: 100,
          ...spec.changeStreams,
        }),
      ],
      providers: [EventLog, ...spec.providers],
    })
      .setLogger(logger)
      .compile();
    const app = new MongodApp(module, logger);
    module.get(ChangeStreamRegistry).onEvent((event) => app.registryEvents.push(event));
    try {
      await module.init();
    } catch (error) {
      await module.close().catch(() => undefined);
      throw error;
    }
    return app;
  }

  get events(): EventLog {
    return this.app.get(EventLog);
  }

  get registry(): ChangeStreamRegistry {
    return this.app.get(ChangeStreamRegistry);
  }

  get<T>(type: new (...args: never[]) => T): T {
    return this.app.get(type, { strict: false });
  }

  close(): Promise<void> {
    return this.app.close();
  }
}

/**
 * A single-node replica set of its own whose oplog holds 1 MB (`--oplogSize 1`; the 990 MB minimum
 * applies to `replSetResizeOplog` only, not to the startup option), so that it rolls over in
 * seconds. The oplog is truncated only behind the last checkpoint (it is needed for crash
 * recovery up to there), so checkpoints come every second (`--syncdelay 1`, as MongoDB's own
 * rollover tests do) instead of every 60. Needs a mongod that mongodb-memory-server-core can
 * start: the harness's own kind.
 */
export class TinyOplogReplSet {
  private constructor(
    private readonly server: MongodReplSet,
    private readonly client: mongoose.mongo.MongoClient,
  ) {}

  /** True when the harness started mongod itself (so another one can be started the same way). */
  static available(): boolean {
    return testEnv().mongoKind === 'mongod';
  }

  static async start(): Promise<TinyOplogReplSet> {
    const server = await MongodReplSet.start({ args: ['--oplogSize', '1', '--syncdelay', '1'] });
    try {
      return new TinyOplogReplSet(
        server,
        await new mongoose.mongo.MongoClient(server.uri).connect(),
      );
    } catch (error) {
      await server.stop();
      throw error;
    }
  }

  get uri(): string {
    return this.server.uri;
  }

  /**
   * Writes 36 KB documents into another database until the oldest oplog entry is newer than the
   * newest one was before: then nothing written before this call is in the oplog any more (the
   * approach of MongoDB's own change-stream rollover test). Returns the number of documents written.
   */
  async rollOver(timeoutMs = 60_000): Promise<number> {
    const oplog = this.client.db('local').collection('oplog.rs');
    const newest = await oplog.find().sort({ $natural: -1 }).limit(1).next();
    if (!newest) throw new Error('the oplog is empty');
    const filler = this.client.db('oplog_filler').collection('filler');
    const large = 'abcdefghi'.repeat(4 * 1024);
    const deadline = Date.now() + timeoutMs;
    for (let written = 0; ; written++) {
      const oldest = await oplog.find().sort({ $natural: 1 }).limit(1).next();
      if (oldest && compareTimestamps(oldest.ts, newest.ts) > 0) return written;
      if (Date.now() > deadline)
        throw new Error(
          `the oplog did not roll over within ${timeoutMs} ms (${written} documents of 36 KB written)`,
        );
      await filler.insertOne({ large }, { writeConcern: { w: 'majority' } });
    }
  }

  async stop(): Promise<void> {
    await this.client.close();
    await this.server.stop();
  }
}

function compareTimestamps(a: mongoose.mongo.Timestamp, b: mongoose.mongo.Timestamp): number {
  return a.t - b.t || a.i - b.i;
}
