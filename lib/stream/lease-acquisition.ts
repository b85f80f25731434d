import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { ChangeStreamEvent } from '../change-stream.events.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { PauseGate } from './pause-gate.js';
import type { StreamState } from './stream-state.js';

/** What a stream waiting for its lease shows and tells (see `acquireStreamLease`). */
export interface LeaseAcquisitionDeps {
  key: string;
  logger: Logger;
  lease: StreamLeaseKeeper;
  state: StreamState;
  pauses: PauseGate;
  /** Aborted at shutdown. */
  stopping: AbortSignal;
  /** What the store said of the fleet-wide pause (see `CollectionStream.fleetPauseSeen`). */
  fleetPauseSeen(value: string | null): void;
  emit(event: ChangeStreamEvent): void;
}

/**
 * Stands by until this instance holds the stream's lease, showing why it waits (`standby`,
 * `reconnecting` while the store does not answer, `paused` fleet-wide); announces the lease once
 * acquired. Null when paused on this instance meanwhile or stopping.
 */
export async function acquireStreamLease(deps: LeaseAcquisitionDeps): Promise<StreamLease | null> {
  const { lease, pauses } = deps;
  // Stays `starting` until the first attempt answered: bootstrap then waits for the stream to open.
  const signal = pauses.interruptible(deps.stopping);
  const acquired = await lease.acquire(signal, (why) => {
    if ('paused' in why) deps.fleetPauseSeen(why.paused);
    // Cannot even ask (Redis away): nobody may be consuming, so not a healthy standby.
    else if ('error' in why)
      return deps.state.setBase('reconnecting', messages.waitingForLease(why.error));
    else if (why.answered) deps.fleetPauseSeen(null);
    // Paused fleet-wide (as last answered): stays out, shown as paused rather than standing by.
    if (pauses.fleet) {
      deps.state.setBase('paused');
      return pauses.settled();
    }
    if (deps.state.baseState !== 'standby' && 'heldBy' in why)
      deps.logger.log(
        messages.leaseStandby(deps.key, lease.instanceId, why.heldBy?.holder ?? null),
      );
    deps.state.setBase('standby');
  });
  if (deps.stopping.aborted || !acquired) return acquired;
  deps.fleetPauseSeen(null);
  deps.logger.log(messages.leaseAcquired(deps.key, lease.instanceId, acquired.fence));
  deps.emit({
    type: 'role',
    key: deps.key,
    role: 'active',
    instanceId: lease.instanceId,
    fence: acquired.fence,
    reason: 'lease acquired',
  });
  return acquired;
}
