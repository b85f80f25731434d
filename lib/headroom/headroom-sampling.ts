import { Logger } from '@nestjs/common';
import type { Connection } from 'mongoose';
import type { ResolvedChangeStreamOptions } from '../options/resolved-options.js';
import { oplogOf } from './oplog-window.js';
import { OplogWindowSampler } from './oplog-window-sampler.js';
import type { StreamHeadroom } from './stream-headroom.js';

/** One oplog sampler per mongoose connection, shared by the streams that read through it. */
export class HeadroomSampling {
  private readonly logger = new Logger('ChangeStreamModule');
  private readonly samplers = new Map<Connection, OplogWindowSampler>();

  constructor(private readonly settings: ResolvedChangeStreamOptions['historyHeadroom']) {}

  /** Adds a stream read through `connection` (nothing when sampling is off). */
  add(connection: Connection, connectionName: string, stream: StreamHeadroom): void {
    if (this.settings === false) return;
    let sampler = this.samplers.get(connection);
    if (!sampler) {
      sampler = new OplogWindowSampler(
        connectionName,
        () => oplogOf(connection.getClient()),
        this.settings.intervalMs,
        this.logger,
      );
      this.samplers.set(connection, sampler);
    }
    sampler.add(stream);
  }

  start(): void {
    this.samplers.forEach((s) => s.start());
  }

  stop(): void {
    this.samplers.forEach((s) => s.stop());
  }
}
