import { existsSync, readFileSync } from 'node:fs';

/** How the handled-ids log of a fault scenario compares with what was written. */
export interface DeliveryReport {
  written: number;
  handled: number;
  lost: number[];
  duplicated: number;
}

export function deliveryReport(logPath: string, writtenIds: number[]): DeliveryReport {
  const lines = existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').filter(Boolean).map(Number) : [];
  const seen = new Set(lines);
  return {
    written: writtenIds.length,
    handled: lines.length,
    lost: writtenIds.filter((id) => !seen.has(id)),
    duplicated: lines.length - seen.size,
  };
}

export function handledIds(logPath: string): Set<number> {
  return new Set(existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').filter(Boolean).map(Number) : []);
}
