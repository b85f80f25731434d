/**
 * Orders writes to a mirror document. `fence` is the lease's fencing number (0 without leases);
 * `generation` counts the times Redis lost its fence counter, so the fences of a new lineage
 * (which start again at 1) can outrank the old, larger ones.
 */
export interface MirrorStamp {
  generation: number;
  fence: number;
}

/** A write stamped `next` may replace a document stamped `stored`. */
export function outranks(next: MirrorStamp, stored: MirrorStamp): boolean {
  return (
    next.generation > stored.generation ||
    (next.generation === stored.generation && next.fence >= stored.fence)
  );
}

/**
 * The stamp of a holder's writes under the lease with `fence`, chosen at its first mirror write;
 * null: refused. A larger stored fence is outranked only with `proven`: Redis has just accepted
 * a fenced save under this lease, so no larger fence exists in Redis's lineage and the stored one
 * predates Redis losing its data (the new lineage goes one generation up).
 */
export function stampFor(
  stored: MirrorStamp | null,
  fence: number,
  proven: boolean,
): MirrorStamp | null {
  if (stored === null) return { generation: 0, fence };
  if (fence >= stored.fence) return { generation: stored.generation, fence };
  return proven ? { generation: stored.generation + 1, fence } : null;
}
