import { afterEach, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DRIVER_FLOOR,
  isOlder,
  mongooseDriverVersion,
  resetDriverCheck,
  warnIfDriverTooOld,
} from '../../lib/stream/driver-floor.js';
import { projectRoot } from '../servers/project-root.js';

afterEach(resetDriverCheck);

const root = projectRoot(import.meta.url);

describe('driver floor (NODE-4763 / NODE-7042: tryNext did not cache resume tokens before mongodb 6.20.0)', () => {
  it.each([
    ['6.19.0', true],
    ['6.12.3', true],
    ['5.9.2', true],
    ['6.20.0', false],
    ['6.21.0', false],
    ['7.0.0', false],
    ['7.8.0', false],
    ['6.20.0-dev.20250918.sha.abc', false],
  ])('%s older than the floor: %s', (version, older) => {
    expect(isOlder(version)).toBe(older);
  });

  it('warns once, naming the version, the issue and the upgrade, on an older driver', () => {
    const warnings: string[] = [];
    const logger = { warn: (m: string) => void warnings.push(m) };
    expect(warnIfDriverTooOld('6.12.0', logger)).toBe(true);
    expect(warnIfDriverTooOld('6.12.0', logger)).toBe(false);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('driver 6.12.0');
    expect(warnings[0]).toContain('NODE-7042');
    expect(warnings[0]).toContain('mongoose to 8.19+ or 9.x');
  });

  it('says nothing on a fixed driver, or when the version cannot be read', () => {
    const warnings: string[] = [];
    const logger = { warn: (m: string) => void warnings.push(m) };
    expect(warnIfDriverTooOld('7.8.0', logger)).toBe(false);
    resetDriverCheck();
    expect(warnIfDriverTooOld(null, logger)).toBe(false);
    expect(warnings).toEqual([]);
  });

  it('reads the driver version of the mongoose the app resolves', () => {
    const installed = JSON.parse(
      readFileSync(join(root, 'node_modules/mongodb/package.json'), 'utf8'),
    ).version;
    expect(mongooseDriverVersion(join(root, 'index.js'))).toBe(installed);
    expect(mongooseDriverVersion('/nonexistent/dir/index.js')).toBeNull();
  });

  it('the peer range admits only mongoose versions that bring a driver at or past the floor (mongoose 8.19+ pins mongodb ~6.20.0)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(pkg.peerDependencies.mongoose).toBe('^8.19.0 || ^9.0.0');
    expect(DRIVER_FLOOR).toBe('6.20.0');
  });
});
