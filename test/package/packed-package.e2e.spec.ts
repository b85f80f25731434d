import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestScope } from '../fixtures/test-scope.js';
import { testEnv, uniqueName } from '../fixtures/test-env.js';
import { installedMajor, installFixture, packLibrary, PackedApp } from './packed-app.js';

/**
 * The package as users get it: `npm pack`, installed into a CommonJS Nest 11 app (loads it
 * through require(esm)) and an ESM Nest 12 app, each at the low or high end of our peer ranges.
 */
const fixtures = [
  {
    name: 'cjs-nest11',
    loads: 'require("nestjs-change-streams")',
    majors: { '@nestjs/core': 11, '@nestjs/mongoose': 11, '@nestjs/terminus': 11, mongoose: 8, ioredis: 5 },
  },
  {
    name: 'esm-nest12',
    loads: "from 'nestjs-change-streams'",
    majors: { '@nestjs/core': 12, '@nestjs/mongoose': 12, '@nestjs/terminus': 12, mongoose: 9, ioredis: 6 },
  },
];

// npm ci on a cold cache takes a minute or more per app.
const INSTALL_TIMEOUT_MS = 600_000;
const SHUTDOWN_BOUND_MS = 15_000;

let workDir: string;
let tarball: string;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'nestjs-change-streams-package-'));
  tarball = await packLibrary(workDir);
}, INSTALL_TIMEOUT_MS);

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe.each(fixtures)('$name app with the packed package', ({ name, loads, majors }) => {
  const scope = new TestScope();
  let appDir: string;
  let app: PackedApp | undefined;

  beforeAll(async () => {
    appDir = await installFixture(name, tarball, workDir);
  }, INSTALL_TIMEOUT_MS);

  afterEach(async () => {
    await app?.kill();
    await scope.closeAll();
  });

  it('installs the intended peers and compiles to the intended module system', async () => {
    for (const [pkg, major] of Object.entries(majors)) expect([pkg, await installedMajor(appDir, pkg)]).toEqual([pkg, major]);
    expect(await readFile(join(appDir, 'dist', 'main.js'), 'utf8')).toContain(loads);
  });

  it('starts, reports health, receives a change and shuts down gracefully on SIGTERM', async () => {
    const { mongoUri, redisUrl } = testEnv();
    const dbName = uniqueName('package');
    const consumer = uniqueName(name.replace(/-/g, '_'));
    app = await PackedApp.start(appDir, { MONGODB_URI: mongoUri, REDIS_URL: redisUrl, DB_NAME: dbName, CONSUMER: consumer });

    const [, health] = await app.waitFor(/^HEALTH (.*)$/m, 1_000);
    expect(JSON.parse(health)).toEqual({
      changeStreams: { status: 'up', streams: { [`default/${dbName}.items`]: expect.objectContaining({ state: 'open' }) } },
    });

    const probe = await scope.probe(dbName);
    const { insertedId } = await probe.collection('items').insertOne({ name: 'packed' });
    await app.waitFor(new RegExp(`^RECEIVED ${insertedId}$`, 'm'), 15_000);

    // Nest closes the app on SIGTERM, then re-raises the signal: a graceful exit is "killed by SIGTERM" after SHUTDOWN.
    const exit = await app.terminate(SHUTDOWN_BOUND_MS);
    expect(app.output).toMatch(/^SHUTDOWN SIGTERM$/m);
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: null, signal: 'SIGTERM' });
    expect(app.output).not.toMatch(/\bERROR\b/);
    expect(await probe.storedToken(consumer, 'items')).toEqual(expect.objectContaining({ _data: expect.any(String) }));
  });
});
