import { type DynamicModule, Module } from '@nestjs/common';
import { MongooseModule } from '@nestjs/mongoose';
import { TerminusModule } from '@nestjs/terminus';
import { ChangeStreamModule } from '../lib/index.js';
import { HealthController } from './health/health.controller.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { OrderTotalsListener } from './orders/order-totals.listener.js';
import { Order, OrderSchema } from './orders/order.schema.js';

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
        MongooseModule.forRoot(config.mongoUri, { dbName: 'shop' }),
        MongooseModule.forFeature([{ name: Order.name, schema: OrderSchema }]),
        ChangeStreamModule.forRootAsync({
          useFactory: () => ({
            consumer: 'order-totals',
            redis: config.redisUrl,
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
