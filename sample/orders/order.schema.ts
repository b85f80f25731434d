import { Prop, Schema, SchemaFactory } from '@nestjs/mongoose';

@Schema({ collection: 'orders' })
export class Order {
  @Prop({ required: true })
  customer!: string;

  @Prop({ required: true })
  total!: number;

  @Prop({ default: 'open' })
  status!: 'open' | 'paid' | 'cancelled';
}

export const OrderSchema = SchemaFactory.createForClass(Order);
