import type { Cluster, Redis } from 'ioredis';
import { FencedWriteError } from '../change-stream.errors.js';
import type {
  CandidateAnnouncement,
  LeaseAttempt,
  LeaseStore,
  RenewalWithPause,
  StreamLease,
} from '../interfaces/lease-store.interface.js';
import {
  ACQUIRE,
  ANNOUNCE,
  HEARTBEAT,
  LEAVE_POSITION,
  READ,
  RELEASE,
  RENEW,
  WRITE_FENCED,
  type WriteFencedReply,
} from './lease-scripts.js';
import { leaseValue, parseLeaseValue } from './lease-value.js';
import { fenceKey, handlerSetsKey, leaseKey, leftPositionKey, pausedKey } from './redis-keys.js';
import { registerScript } from './redis-script.js';

function registerAll(client: Redis | Cluster) {
  return {
    acquire: registerScript(client, ACQUIRE),
    renew: registerScript(client, RENEW),
    release: registerScript(client, RELEASE),
    writeFenced: registerScript(client, WRITE_FENCED),
    heartbeat: registerScript(client, HEARTBEAT),
    announce: registerScript(client, ANNOUNCE),
    leavePosition: registerScript(client, LEAVE_POSITION),
    read: registerScript(client, READ),
  };
}

/**
 * Leases in Redis (standalone, Sentinel or Cluster), one per position key `K`: `K:lease` holds
 * `"<fence> <holder>"` with a TTL, `K:fence` the counter that fences come from. Each operation is
 * one Lua script (see `lease.scripts.ts`); expiry is judged by the Redis clock, never the client's.
 * `K` must carry a hash tag (`positionKey` does) for Redis Cluster: the scripts touch K and both.
 */
export class RedisLeaseStore implements LeaseStore {
  private readonly commands: ReturnType<typeof registerAll>;

  constructor(
    /** The ioredis client the lease scripts run on. */
    readonly client: Redis | Cluster,
  ) {
    this.commands = registerAll(client);
  }

  async acquire(key: string, holder: string, ttlMs: number): Promise<LeaseAttempt> {
    checkHolder(holder);
    checkTtl(ttlMs);
    const reply = await this.commands.acquire(
      key,
      leaseKey(key),
      fenceKey(key),
      pausedKey(key),
      holder,
      ttlMs,
    );
    if (reply[0] === 2) return { paused: reply[1] };
    if (reply[0] === 1)
      return {
        acquired: { holder, fence: reply[1] },
        ...(reply[2] > 0 ? { waitMs: reply[2] } : {}),
      };
    // A PTTL of -1 (a lease key someone wrote without expiry) is passed on as it is.
    return { heldBy: parseLeaseValue(reply[1]), ttlMs: reply[2] };
  }

  async renew(key: string, lease: StreamLease, ttlMs: number): Promise<boolean> {
    return (await this.renewReadingPause(key, lease, ttlMs)).renewed;
  }

  /** `renew`, reading the stream's pause key (`pausedKey`) in the same script. */
  async renewReadingPause(
    key: string,
    lease: StreamLease,
    ttlMs: number,
  ): Promise<RenewalWithPause> {
    checkTtl(ttlMs);
    const [renewed, paused] = await this.commands.renew(
      key,
      leaseKey(key),
      fenceKey(key),
      pausedKey(key),
      String(lease.fence),
      lease.holder,
      ttlMs,
    );
    return { renewed: renewed === 1, paused: paused ?? null };
  }

  /** Sets the stream's pause key (`pausedKey`) to `value`, or deletes it (null). */
  async writePause(key: string, value: string | null): Promise<void> {
    if (value === null) await this.client.del(pausedKey(key));
    else await this.client.set(pausedKey(key), value);
  }

  async release(key: string, lease: StreamLease): Promise<void> {
    await this.commands.release(leaseKey(key), leaseValue(lease));
  }

  /** The value at `key`, read from the master (a replica may lag behind: see `READ`). */
  async read(key: string): Promise<string | null> {
    return this.commands.read(key);
  }

  /** `group`: a key of its own, e.g. `candidatesKey(positionKey)`. */
  async heartbeat(group: string, member: string, ttlMs: number): Promise<number> {
    checkHolder(member);
    checkTtl(ttlMs);
    return this.commands.heartbeat(group, member, ttlMs);
  }

  /** `heartbeat`, recording `handlers` (this member's handler set) and returning every live member's. */
  async announce(
    group: string,
    member: string,
    ttlMs: number,
    handlers: string,
  ): Promise<CandidateAnnouncement> {
    checkHolder(member);
    checkTtl(ttlMs);
    const [members, ...pairs] = await this.commands.announce(
      group,
      handlerSetsKey(group),
      member,
      ttlMs,
      handlers,
    );
    const sets = new Map<string, string>();
    for (let i = 0; i + 1 < pairs.length; i += 2) sets.set(pairs[i]!, pairs[i + 1]!);
    return { members, handlers: sets };
  }

  async leave(group: string, member: string): Promise<void> {
    await Promise.all([
      this.client.zrem(group, member),
      this.client.hdel(handlerSetsKey(group), member),
    ]);
  }

  /**
   * Leaves `value` (a position envelope) at `leftPositionKey(key)` for `ttlSeconds`, unless something
   * is there, if the stored data shows Redis lost the stream's data after `lease` was handed out (see
   * `LEAVE_POSITION`; `saved`: a position was stored under `lease`). True if it was left.
   */
  async leaveOrphan(
    key: string,
    value: string,
    lease: StreamLease,
    ttlSeconds: number,
    saved: boolean,
  ): Promise<boolean> {
    const reply = await this.commands.leavePosition(
      key,
      leaseKey(key),
      fenceKey(key),
      leftPositionKey(key),
      String(lease.fence),
      lease.holder,
      value,
      ttlSeconds,
      saved ? '1' : '0',
    );
    return reply === 1;
  }

  /**
   * Writes `value` under `key` only while `lease` is current (or no lease exists and no newer
   * fence was handed out) and the stored value does not supersede it (a larger fence, or the same
   * fence from another holder); else `FencedWriteError`. `value` should carry the lease's fence and
   * holder (`encodePosition(position, savedAt, lease)`).
   */
  async writeFenced(key: string, value: string, lease: StreamLease): Promise<void> {
    const reply = await this.commands.writeFenced(
      key,
      leaseKey(key),
      fenceKey(key),
      value,
      String(lease.fence),
      lease.holder,
    );
    if (reply[0] === 0) throw new FencedWriteError(key, lease, refusal(reply, lease));
  }
}

function refusal(reply: Exclude<WriteFencedReply, [1]>, lease: StreamLease): string {
  const [, reason, found] = reply;
  switch (reason) {
    case 'held': {
      const current = parseLeaseValue(found);
      return current
        ? `the lease is held by ${current.holder} (fence ${current.fence})`
        : `the lease key holds an unexpected value ${JSON.stringify(found)}`;
    }
    case 'fence':
      if (found === '') return 'the lease has expired and the fence counter is missing';
      return Number(found) > lease.fence
        ? `a newer fence ${found} was handed out`
        : `the fence counter reads ${found}, not ${lease.fence}`;
    case 'stored': {
      const holder = reply[3];
      if (Number(found) > lease.fence)
        return `the stored position was written with a newer fence ${found}`;
      return `the stored position was written with the same fence ${found} by ${holder}: that fence was handed out twice (the fence counter was rolled back)`;
    }
  }
}

function checkTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)
    throw new RangeError(
      `A lease TTL must be a positive whole number of milliseconds, got ${ttlMs}.`,
    );
}

function checkHolder(holder: string): void {
  if (holder === '')
    throw new RangeError('A lease holder (or group member) name must not be empty.');
}
