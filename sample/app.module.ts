import { type DynamicModule, Module } from '@nestjs/common';
import { MongooseModule } from '@nestjs/mongoose';
import { TerminusModule } from '@nestjs/terminus';
import { ChangeStreamModule } from '../lib/index.js';
import { HealthController } from './health/health.controller.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { OrderTotalsListener } from './orders/order-totals.listener.js';
import { Order, OrderSchema } from './orders/order.schema.js';

/**
 * The sample's own database, whatever database `MONGODB_URI` names: it writes only there, so a
 * run against a user's server never touches the user's data.
 */
export const SAMPLE_DATABASE = 'nestjs_change_streams_sample';
/** The sample's Redis keys all start with this (positions, leases, dead letters). */
export const SAMPLE_KEY_PREFIX = 'nestjs-change-streams-sample';

export interface SampleConfig {
  mongoUri: string;
  redisUrl: string;
}

@Module({})
export class AppModule {
  static register(config: SampleConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        MongooseModule.forRoot(config.mongoUri, { dbName: SAMPLE_DATABASE }),
        MongooseModule.forFeature([{ name: Order.name, schema: OrderSchema }]),
        ChangeStreamModule.forRootAsync({
          useFactory: () => ({
            consumer: 'order-totals',
            redis: config.redisUrl,
            keyPrefix: SAMPLE_KEY_PREFIX,
            checkpoint: { maxEvents: 50, intervalMs: 500 },
          }),
        }),
        TerminusModule,
      ],
      controllers: [HealthController, MetricsController],
      providers: [OrderTotalsListener],
    };
  }
}
