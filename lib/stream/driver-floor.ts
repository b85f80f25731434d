import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';

/**
 * The first driver whose `ChangeStream.tryNext` caches each event's resume token (NODE-4763,
 * reported as NODE-7042; mongodb 6.20.0, brought by mongoose 8.19+). Before it, the driver's own
 * resume after a network error starts from an older token: events come again, many under load.
 */
export const DRIVER_FLOOR = '6.20.0';

/** The version of the `mongodb` package that the app's mongoose uses; null if it cannot be found. */
export function mongooseDriverVersion(from = join(process.cwd(), 'index.js')): string | null {
  try {
    const mongoosePackage = createRequire(from).resolve('mongoose/package.json');
    const version = (
      createRequire(mongoosePackage)('mongodb/package.json') as { version?: unknown }
    ).version;
    return typeof version === 'string' ? version : null;
  } catch {
    return null;
  }
}

/** True when `version` (x.y.z) is older than `floor`. Pre-releases count as their release. */
export function isOlder(version: string, floor = DRIVER_FLOOR): boolean {
  const parts = (v: string) =>
    v
      .split(/[.-]/)
      .slice(0, 3)
      .map((n) => Number.parseInt(n, 10) || 0);
  const [a, b] = [parts(version), parts(floor)];
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

let checked = false;

/** Once per process: warn (naming the fix) when mongoose brings a driver older than the floor. */
export function warnIfDriverTooOld(
  version: string | null = mongooseDriverVersion(),
  logger: Pick<Logger, 'warn'> = new Logger('ChangeStreamModule'),
): boolean {
  if (checked) return false;
  checked = true;
  if (version === null || !isOlder(version)) return false;
  logger.warn(messages.driverTooOld(version));
  return true;
}

/** For specs: forget that the check ran. */
export function resetDriverCheck(): void {
  checked = false;
}
