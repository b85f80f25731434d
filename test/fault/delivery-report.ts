import { existsSync, readFileSync } from 'node:fs';

/** How the handled-events log of a fault scenario compares with what was written. */
export interface DeliveryReport {
  written: number;
  handled: number;
  lost: number[];
  duplicated: number;
}

/** One handler call, as the consumer process logged it. */
export interface HandledLine {
  id: number;
  /** The resume token, as EJSON. */
  token: string;
  collection: string;
  instance: string;
  start: number;
  end: number;
}

/** The log's lines, in order: `<document id> <token EJSON> <collection> <instance> <start ms> <end ms>`. */
export function handledLines(logPath: string): HandledLine[] {
  if (!existsSync(logPath)) return [];
  return readFileSync(logPath, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, token, collection, instance, start, end] = line.split(' ');
      return {
        id: Number(id),
        token,
        collection,
        instance,
        start: Number(start),
        end: Number(end),
      };
    });
}

export function handledIds(logPath: string): Set<number> {
  return new Set(handledLines(logPath).map((line) => line.id));
}

export function deliveryReport(logPath: string, writtenIds: number[]): DeliveryReport {
  const lines = handledLines(logPath);
  const seen = new Set(lines.map((line) => line.id));
  return {
    written: writtenIds.length,
    handled: lines.length,
    lost: writtenIds.filter((id) => !seen.has(id)),
    duplicated: lines.length - seen.size,
  };
}

/**
 * Waits until every written id was handled, or until handling made no progress for `idleMs`
 * (then the spec reports what is lost, by id, instead of timing out).
 */
export async function awaitDelivery(
  logPath: string,
  writtenIds: number[],
  idleMs = 10_000,
  maxMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + maxMs;
  let lastCount = -1;
  let lastProgress = Date.now();
  for (;;) {
    const handled = handledIds(logPath);
    if (writtenIds.every((id) => handled.has(id))) return;
    if (handled.size !== lastCount) {
      lastCount = handled.size;
      lastProgress = Date.now();
    }
    if (Date.now() - lastProgress > idleMs || Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
