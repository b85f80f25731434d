import type { Cluster, Redis } from 'ioredis';
import { ACQUIRE, ANNOUNCE, HEARTBEAT, LEAVE_ORPHAN, READ, RELEASE, RENEW, WRITE_FENCED } from './lease.scripts.js';

type Arg = string | number;

export type AcquireReply = [1, number, number] | [0, string, number];
export type WriteFencedReply = [1] | [0, 'held' | 'fence', string] | [0, 'stored', string, string];

/** The lease scripts as typed calls; keys first, then arguments, as each script documents. */
export interface LeaseCommands {
  acquire(positionKey: string, leaseKey: string, fenceKey: string, holder: string, ttlMs: number): Promise<AcquireReply>;
  renew(positionKey: string, leaseKey: string, fenceKey: string, fence: string, holder: string, ttlMs: number): Promise<0 | 1>;
  release(leaseKey: string, value: string): Promise<0 | 1>;
  writeFenced(positionKey: string, leaseKey: string, fenceKey: string, envelope: string, fence: string, holder: string): Promise<WriteFencedReply>;
  heartbeat(groupKey: string, member: string, ttlMs: number): Promise<number>;
  announce(groupKey: string, handlerSetsKey: string, member: string, ttlMs: number, handlers: string): Promise<[number, ...string[]]>;
  leaveOrphan(positionKey: string, leaseKey: string, fenceKey: string, orphanKey: string, fence: string, holder: string, envelope: string, ttlSeconds: number, saved: '0' | '1'): Promise<0 | 1>;
  /** GET from the master, never a replica (see `READ`). */
  read(key: string): Promise<string | null>;
}

// Namespaced: `defineCommand` adds these as methods of the client, which may be the application's own.
const SCRIPTS = {
  acquire: { name: 'nestjsChangeStreamsLeaseAcquire', lua: ACQUIRE, numberOfKeys: 3 },
  renew: { name: 'nestjsChangeStreamsLeaseRenew', lua: RENEW, numberOfKeys: 3 },
  release: { name: 'nestjsChangeStreamsLeaseRelease', lua: RELEASE, numberOfKeys: 1 },
  writeFenced: { name: 'nestjsChangeStreamsWriteFenced', lua: WRITE_FENCED, numberOfKeys: 3 },
  heartbeat: { name: 'nestjsChangeStreamsHeartbeat', lua: HEARTBEAT, numberOfKeys: 1 },
  announce: { name: 'nestjsChangeStreamsAnnounce', lua: ANNOUNCE, numberOfKeys: 2 },
  leaveOrphan: { name: 'nestjsChangeStreamsLeaveOrphan', lua: LEAVE_ORPHAN, numberOfKeys: 4 },
  read: { name: 'nestjsChangeStreamsRead', lua: READ, numberOfKeys: 1 },
} as const satisfies Record<keyof LeaseCommands, { name: string; lua: string; numberOfKeys: number }>;

/**
 * Registers the scripts on `client` (a `Redis` or a `Cluster`: ioredis routes each call by its
 * first key's slot) and returns them as typed calls.
 */
export function defineLeaseCommands(client: Redis | Cluster): LeaseCommands {
  const methods = client as unknown as Record<string, (...args: Arg[]) => Promise<unknown>>;
  const call =
    <R>(name: string) =>
    (...args: Arg[]) =>
      methods[name]!(...args) as Promise<R>;
  for (const { name, lua, numberOfKeys } of Object.values(SCRIPTS)) client.defineCommand(name, { lua, numberOfKeys });
  return {
    acquire: call<AcquireReply>(SCRIPTS.acquire.name),
    renew: call<0 | 1>(SCRIPTS.renew.name),
    release: call<0 | 1>(SCRIPTS.release.name),
    writeFenced: call<WriteFencedReply>(SCRIPTS.writeFenced.name),
    heartbeat: call<number>(SCRIPTS.heartbeat.name),
    announce: call<[number, ...string[]]>(SCRIPTS.announce.name),
    leaveOrphan: call<0 | 1>(SCRIPTS.leaveOrphan.name),
    read: call<string | null>(SCRIPTS.read.name),
  };
}
