import { plural } from './plural.js';
import { leftPositionKey } from '../redis/redis-keys.js';

/** Leases, fencing and the instances of one consumer. */
export const leaseMessages = {
  leaseStoreSilent: (ttlMs: number) =>
    `no answer from Redis for more than the lease TTL (${ttlMs} ms), so no live holder of the stream is known`,
  waitingForLease: (error: string) =>
    `waiting for the position store to ask for the lease: ${error}`,
  leaseAcquired: (key: string, instance: string, fence: number) =>
    `Stream ${key}: ${instance} is now the active consumer (lease fence ${fence}).`,
  leaseReload: (key: string) =>
    `Stream ${key}: an instance left its last position when the store lost this stream's data; resuming from it (events after it are delivered again).`,
  orphanLeft: (key: string, instance: string) =>
    `Stream ${key}: the store lost this stream's data (position, lease or fence counter) while ${instance} was reading; ${instance} left the position it reached at ${leftPositionKey(key)} for the next holder, which resumes from it.`,
  orphanNotLeftYet: (key: string, error: string) =>
    `Stream ${key}: could not check for lost data after losing the lease (${error}); retrying with backoff.`,
  orphanNotLeft: (key: string, restoreCommand: string, error: string) =>
    `Stream ${key}: could not check for lost data after losing the lease (${error}) before this instance stopped. If Redis lost its data, the holder of the stream started without the position this instance reached; to make it resume from there (within a renew interval, or at the next start), run: ${restoreCommand}`,
  leaseFenceMissing: (key: string, instance: string, waitMs: number) =>
    `Stream ${key}: ${instance} took the lease, but its fence counter was missing on a Redis that started less than a lease TTL ago (it restarted empty), and another instance was seen holding or announcing the stream; waiting ${waitMs} ms before reading, until any lease handed out before the restart has expired.`,
  handlerSetsDiffer: (key: string, instance: string, mine: string, other: string, theirs: string) =>
    `Stream ${key}: instances of this consumer run different handlers for it: ${instance} (this instance) runs ${mine}; ${other} runs ${theirs}. Whichever holds the lease handles each event with its own handlers only, so the others' handlers miss those events. Expected while a deploy that changes the handlers rolls out; otherwise two apps share one consumer name: give each its own consumer name.`,
  leaseStandby: (key: string, instance: string, holder: string | null) =>
    `Stream ${key}: ${instance} stands by${holder ? `; ${holder} is active` : ''}.`,
  leaseLost: (key: string, instance: string, reason: string) =>
    `Stream ${key}: ${instance} lost its lease (${reason}); it stopped reading, does not acknowledge events in flight, and stands by.`,
  leaseHandedOver: (key: string, instance: string, why: string, saved: boolean) =>
    `Stream ${key}: ${instance} handed the stream over (${why}) after draining${saved ? ' and saving its position' : '; its last position could not be saved, so the next holder repeats a few events'}.`,
  leaseRenewRefused: () =>
    "Redis no longer has it as this instance's: another instance took it, or Redis lost the lease (restarted empty); if nobody holds it, this instance takes it again",
  leaseUnconfirmed: (ttlMs: number) =>
    `no renewal confirmed within the ${ttlMs} ms lease TTL; Redis may be unreachable`,
  leaseAttemptFailed: (key: string, error: string) =>
    `Stream ${key}: could not ask for the lease (${error}); retrying with backoff.`,
  leaseReleaseFailed: (key: string, error: string) =>
    `Stream ${key}: releasing the lease failed (${error}); a standby takes over when it expires.`,
  writeRefused: (key: string, detail: string) =>
    `Stream ${key}: position write refused (${detail}).`,
  leaseShed: (key: string, instance: string, held: number, share: number) =>
    `${instance} holds ${held} ${plural(held, 'stream')}, more than its fair share of ${share}: handing ${key} over to another instance that can take it.`,
  heartbeatFailed: (instance: string, error: string) =>
    `${instance} could not announce itself to the other instances (${error}); its share of streams is computed from the last known count.`,
  leasesUnsupported: () =>
    'ChangeStreamModule: option "leases" is set, but the tokenStore has no "leases" (LeaseStore) implementation. Use the Redis store, implement LeaseStore, or set leases: false.',
  leasesOff: (why: string) =>
    `Leases are off (${why}): run a single instance of this consumer, or two would handle events twice.`,
  fencedWrite: (key: string, holder: string, fence: number, detail: string) =>
    `Position write to "${key}" refused for ${holder} (fence ${fence}): ${detail}.`,
};
