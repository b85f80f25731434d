import { messages } from './change-stream.messages.js';
import type { StreamLease } from './interfaces/lease-store.interface.js';

/** Bad options or decorator usage; thrown at startup. */
export class ChangeStreamConfigError extends Error {
  /** Always `'ChangeStreamConfigError'`. */
  override readonly name = 'ChangeStreamConfigError';
}

/** A stored position that is not a resume token this library wrote. */
export class InvalidStoredTokenError extends Error {
  /** Always `'InvalidStoredTokenError'`. */
  override readonly name = 'InvalidStoredTokenError';
  /**
   * @param key The position key the value was read from.
   * @param raw The stored value, as read.
   * @param reason What is wrong with it.
   */
  constructor(
    /** The position key the value was read from. */
    readonly key: string,
    /** The stored value, as read. */
    readonly raw: string,
    reason: string,
  ) {
    super(messages.invalidStoredToken(key, reason));
  }
}

/** A handler still threw after its last retry; the stream stops before that event. */
export class HandlerFailedError extends Error {
  /** Always `'HandlerFailedError'`. */
  override readonly name = 'HandlerFailedError';
  constructor(
    message: string,
    /** What the handler (or the `onFailure` callback) threw. */
    override readonly cause: unknown,
  ) {
    super(message);
  }
}

/** A position write refused because the writer's lease is no longer current: another instance took the stream over. */
export class FencedWriteError extends Error {
  /** Always `'FencedWriteError'`. */
  override readonly name = 'FencedWriteError';
  /**
   * @param key The position key of the refused write.
   * @param lease The writer's lease.
   * @param detail Why it was refused, for the message.
   */
  constructor(
    /** The position key of the refused write. */
    readonly key: string,
    /** The writer's lease, which is no longer current. */
    readonly lease: StreamLease,
    detail: string,
  ) {
    super(messages.fencedWrite(key, lease.holder, lease.fence, detail));
  }
}

/**
 * By name as well as class: a custom store may throw these from another copy of this package
 * (its CommonJS build next to the ESM one), where `instanceof` would fail.
 */
export function isFencedWriteError(error: unknown): error is FencedWriteError {
  return error instanceof FencedWriteError || (error as Error | null)?.name === 'FencedWriteError';
}

export function isInvalidStoredTokenError(error: unknown): error is InvalidStoredTokenError {
  return (
    error instanceof InvalidStoredTokenError ||
    (error as Error | null)?.name === 'InvalidStoredTokenError'
  );
}
