import type { StreamBackfill } from '../backfill/stream-backfill.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type { StreamHeadroom } from '../headroom/stream-headroom.js';
import type { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { ChangeDispatcher } from './change-dispatcher.js';
import type { CollectionStreamSetup } from './create-collection-stream.js';
import type { StreamState } from './stream-state.js';

/** What a stream runs with; built by `createCollectionStream`. */
export interface CollectionStreamDeps extends CollectionStreamSetup {
  state: StreamState;
  checkpointer: Checkpointer;
  dispatcher: ChangeDispatcher;
  /** With leases on: this stream's lease on this instance. */
  lease?: StreamLeaseKeeper;
  /** Its history headroom, updated by its connection's oplog sampler. */
  headroom?: StreamHeadroom;
  /** Handlers declared with `backfill`: their runs. */
  backfill?: StreamBackfill;
}
