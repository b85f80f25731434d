import { Prop, Schema, SchemaFactory } from '@nestjs/mongoose';

@Schema({ collection: 'orders' })
export class Order {
  @Prop({ required: true })
  customer!: string;

  @Prop({ required: true })
  total!: number;

  @Prop({ default: 'open' })
  status!: 'open' | 'paid' | 'cancelled';

  /** The sample run that created the order: a run reads and changes only its own orders. */
  @Prop()
  sampleRun?: string;
}

export const OrderSchema = SchemaFactory.createForClass(Order);
