import { readdir, readFile } from 'node:fs/promises';

/** What a server thread does: serve connections, compile (the JVM's JIT), collect garbage, or the JVM's own housekeeping. */
export type ThreadGroup = 'serving' | 'jit' | 'gc' | 'jvm';

/** Each live thread's group and CPU time (ns), by thread id; null without /proc or a pid. */
export type ThreadTimes = Map<string, { group: ThreadGroup; ns: number }>;

/**
 * Linux keeps 15 characters of a thread's name: the launcher's `mongo-connection-…` and
 * `mongo-listener-…`, and netty's `globalEventExecutor` (it completes each closed connection's loop).
 */
export function groupOf(name: string): ThreadGroup {
  if (name.startsWith('mongo-') || name.startsWith('globalEventExec')) return 'serving';
  if (name.includes('Compiler')) return 'jit';
  if (/^(G1|GC )/.test(name)) return 'gc';
  return 'jvm';
}

/** Each live thread's name (as Linux keeps it), by thread id; threads that end while read are left out. */
export async function threadNames(pid: number): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const name = await readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => null);
    if (name !== null) names.set(tid, name.trim());
  }
  return names;
}

/** From /proc/<pid>/task/<tid>/schedstat (its first field: time on a CPU, ns). */
export async function threadTimes(pid: number | undefined): Promise<ThreadTimes | null> {
  if (pid === undefined) return null;
  const times: ThreadTimes = new Map();
  let names: Map<string, string>;
  try {
    names = await threadNames(pid);
  } catch {
    return null;
  }
  for (const [tid, name] of names) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').catch(() => null);
    if (stat !== null) times.set(tid, { group: groupOf(name), ns: Number(stat.split(' ')[0]) });
  }
  // No schedstat (a kernel without CONFIG_SCHED_INFO), or one that reads zeros: no figures.
  return [...times.values()].some(({ ns }) => ns > 0) ? times : null;
}

/**
 * Each group's share of a core between two samples `ms` apart, %. A thread that ended in between
 * is missing from it (its time is in /proc/<pid>/stat's total): on the launcher, a connection's.
 */
export function groupShares(
  from: ThreadTimes | null,
  to: ThreadTimes | null,
  ms: number,
): Record<ThreadGroup, number> | null {
  if (!from || !to) return null;
  const shares: Record<ThreadGroup, number> = { serving: 0, jit: 0, gc: 0, jvm: 0 };
  for (const [tid, { group, ns }] of to)
    shares[group] += ((ns - (from.get(tid)?.ns ?? 0)) / 1e6 / ms) * 100;
  return shares;
}

export function formatShares(shares: Record<ThreadGroup, number> | null): string {
  if (!shares) return '';
  const { serving, jit, gc, jvm } = shares;
  return `serving ${serving.toFixed(2)}, JIT ${jit.toFixed(2)}, GC ${gc.toFixed(2)}, JVM ${jvm.toFixed(2)}`;
}
