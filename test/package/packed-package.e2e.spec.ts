import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../servers/project-root.js';
import { TestScope } from '../fixtures/test-scope.js';
import { testEnv, uniqueName } from '../fixtures/test-env.js';
import {
  type InstalledFixture,
  installedMajor,
  installFixture,
  killRunningChildren,
  packLibrary,
  PackedApp,
  type Received,
  run,
  tsc,
} from './packed-app.js';

/**
 * The package as users get it: `npm pack`, installed into a CommonJS Nest 11 app set up as
 * `nest new` does it (TypeScript nodenext, Jest 29 with ts-jest) and an ESM Nest 12 app, each at
 * the low or high end of our peer ranges. Node gives both the ESM build (`import`, and
 * `module-sync` for require()); Jest and Nodes without require(esm) get the CommonJS build.
 */
const fixtures = [
  {
    name: 'cjs-nest11',
    compiledImport: 'require("nestjs-change-streams")',
    majors: {
      '@nestjs/core': 11,
      '@nestjs/platform-express': 11,
      '@nestjs/mongoose': 11,
      '@nestjs/terminus': 11,
      mongoose: 8,
      ioredis: 5,
      jest: 29,
      'ts-jest': 29,
    },
    jest: true,
    unsupportedEngines: [],
    runs: [
      {
        how: 'loads the ESM build (require() gets it through module-sync)',
        nodeOptions: '',
        build: 'build/index.js',
      },
      // What Node 22.0-22.11 does by default: require() cannot load ESM, so `require` picks the CommonJS build.
      {
        how: 'loads the CommonJS build when Node cannot require() ESM',
        nodeOptions: '--no-experimental-require-module',
        build: 'build/cjs/index.js',
      },
    ],
  },
  {
    name: 'esm-nest12',
    compiledImport: "from 'nestjs-change-streams'",
    majors: {
      '@nestjs/core': 12,
      '@nestjs/platform-express': 12,
      '@nestjs/mongoose': 12,
      '@nestjs/terminus': 12,
      mongoose: 9,
      ioredis: 6,
    },
    jest: false,
    // @nestjs/common 12.5.1 depends on file-type 22 (for its FileTypeValidator), which declares Node >= 22.
    unsupportedEngines: ['file-type@22.3.0'],
    runs: [{ how: 'loads the ESM build', nodeOptions: '', build: 'build/index.js' }],
  },
];

const root = projectRoot(import.meta.url);
// npm ci on a cold cache takes a minute or more per app.
const INSTALL_TIMEOUT_MS = 600_000;
const SHUTDOWN_BOUND_MS = 15_000;
const BURST = 50;

let workDir: string;
let tarball: string;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'nestjs-change-streams-package-'));
  tarball = await packLibrary(workDir);
}, INSTALL_TIMEOUT_MS);

afterAll(async () => {
  await killRunningChildren();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds the ESM build, the CommonJS build (marked CommonJS for Node and TypeScript) and no sources or tests', async () => {
    const listing = await run('tar', ['-tzf', tarball], workDir);
    const files = listing.split('\n').filter(Boolean);
    expect(files).toEqual(
      expect.arrayContaining([
        'package/build/index.js',
        'package/build/index.d.ts',
        'package/build/cjs/index.js',
        'package/build/cjs/index.d.ts',
        'package/build/cjs/package.json',
        'package/docs/troubleshooting.md',
        'package/docs/architecture.md',
      ]),
    );
    expect(
      files.filter(
        (file) =>
          !/^package\/(build\/.*\.(js|d\.ts|js\.map)|build\/cjs\/package\.json|package\.json|README\.md|LICENSE|CHANGELOG\.md|docs\/[\w-]+\.md)$/.test(
            file,
          ),
      ),
    ).toEqual([]);
    const cjsBuild = await run(
      'tar',
      ['-xOzf', tarball, 'package/build/cjs/package.json'],
      workDir,
    );
    expect(JSON.parse(cjsBuild)).toEqual({ type: 'commonjs' });
  });
});

describe.each(fixtures)(
  '$name app with the packed package',
  ({ name, compiledImport, majors, jest, unsupportedEngines, runs }) => {
    const scope = new TestScope();
    let appDir: string;
    let installed: InstalledFixture;

    beforeAll(async () => {
      installed = await installFixture(name, tarball, workDir);
      appDir = installed.appDir;
    }, INSTALL_TIMEOUT_MS);

    afterEach(async () => {
      await killRunningChildren();
      await scope.closeAll();
    });

    it('installs the intended versions, compiles to the intended module system and type-checks under each of its tsconfigs', async () => {
      for (const [pkg, major] of Object.entries(majors))
        expect([pkg, await installedMajor(appDir, pkg)]).toEqual([pkg, major]);
      // Packages that declare they do not support this Node: only the known ones.
      expect(installed.unsupportedEngines).toEqual(unsupportedEngines);
      expect(await readFile(join(appDir, 'dist', 'app.module.js'), 'utf8')).toContain(
        compiledImport,
      );
      // tsconfig.json compiled in installFixture; the variants only type-check (a failure prints tsc's diagnostics).
      await Promise.all(
        (await readdir(appDir))
          .filter((file) => /^tsconfig\..+\.json$/.test(file))
          .map((variant) => tsc(appDir, variant)),
      );
      // Several tsc runs over a Nest app at once: minutes on a busy 2-core machine.
    }, 240_000);

    it("holds the README's health controller, verbatim", async () => {
      const readme = await readFile(join(root, 'README.md'), 'utf8');
      const snippet = readme.match(/^## Health\n\n```ts\n([\s\S]*?)```/m)?.[1];
      expect(snippet).toContain('class HealthController');
      const fixture = await readFile(
        join(root, 'test', 'package', 'fixtures', name, 'src', 'health.controller.ts'),
        'utf8',
      );
      expect({
        file: `test/package/fixtures/${name}/src/health.controller.ts`,
        code: fixture,
      }).toEqual({ file: `test/package/fixtures/${name}/src/health.controller.ts`, code: snippet });
    });

    it.each(runs)(
      '$how, serves /health, receives a change and shuts down gracefully on SIGTERM',
      async ({ nodeOptions, build }) => {
        const { mongoUri, redisUrl } = testEnv();
        const dbName = uniqueName('package');
        const consumer = uniqueName(name.replace(/-/g, '_'));
        const env = {
          MONGODB_URI: mongoUri,
          REDIS_URL: redisUrl,
          DB_NAME: dbName,
          CONSUMER: consumer,
        };
        const app = await PackedApp.start(
          appDir,
          nodeOptions
            ? {
                ...env,
                NODE_OPTIONS: [process.env.NODE_OPTIONS, nodeOptions].filter(Boolean).join(' '),
              }
            : env,
        );
        expect(app.output).toContain(
          `LOADED ${join(appDir, 'node_modules', 'nestjs-change-streams', build)}\n`,
        );

        const response = await fetch(`${app.url}/health`);
        const body = await response.text();
        expect({ status: response.status, body: JSON.parse(body) }).toEqual({
          status: 200,
          body: expect.objectContaining({
            status: 'ok',
            info: {
              changeStreams: {
                status: 'up',
                streams: {
                  [`default/${dbName}.items`]: expect.objectContaining({ state: 'open' }),
                },
              },
            },
          }),
        });

        const probe = await scope.probe(dbName);
        const { insertedId } = await probe.collection('items').insertOne({ name: 'packed' });
        await app.waitFor(new RegExp(`^RECEIVED ${insertedId} ready=true open=true$`, 'm'), 15_000);

        // Nest closes the app on SIGTERM, then re-raises the signal: a graceful exit is "killed by SIGTERM" after SHUTDOWN.
        const exit = await app.terminate(SHUTDOWN_BOUND_MS);
        expect(app.output).toMatch(/^SHUTDOWN SIGTERM$/m);
        expect({ code: exit.code, signal: exit.signal }).toEqual({ code: null, signal: 'SIGTERM' });
        expect(app.output).not.toMatch(/\bERROR\b/);
        expect(await probe.storedToken(consumer, 'items')).toEqual(
          expect.objectContaining({ _data: expect.any(String) }),
        );
      },
    );

    it(`calls handlers only after what they inject finished onApplicationBootstrap, drains before its onModuleDestroy, and loses nothing across SIGTERM (Nest ${majors['@nestjs/core']})`, async () => {
      const { mongoUri, redisUrl } = testEnv();
      const dbName = uniqueName('lifecycle');
      const env = {
        MONGODB_URI: mongoUri,
        REDIS_URL: redisUrl,
        DB_NAME: dbName,
        CONSUMER: uniqueName(name.replace(/-/g, '_')),
        HANDLER_DELAY_MS: '50',
      };
      const probe = await scope.probe(dbName);
      const items = probe.collection('items');

      // First run: one event, then a burst of slow handlers (50 ms each) that SIGTERM interrupts.
      const first = await PackedApp.start(appDir, env);
      const before = String((await items.insertOne({ n: 0 })).insertedId);
      await first.waitFor(new RegExp(`^RECEIVED ${before} `, 'm'), 15_000);
      const burst = Object.values(
        (await items.insertMany(Array.from({ length: BURST }, (_, i) => ({ n: i + 1 }))))
          .insertedIds,
      ).map(String);
      await first.waitFor(new RegExp(`^RECEIVED ${burst[0]} `, 'm'), 15_000);
      expectGracefulExit(first, await first.terminate(SHUTDOWN_BOUND_MS));
      expectAllWithinLifecycle(first);

      // While it is down: one more event. The next start reads the backlog at once, while SlowClient still bootstraps (300 ms).
      const whileDown = String((await items.insertOne({ n: 'while-down' })).insertedId);
      const receivedFirst = new Set(first.received().map((r) => r.id));
      const pending = [...burst, whileDown].filter((id) => !receivedFirst.has(id));
      if (pending.length < 2)
        throw new Error(
          `the first run handled the whole burst before SIGTERM, so no drain was tested:\n${first.output}`,
        );

      const second = await PackedApp.start(appDir, env);
      await second.waitFor(
        new RegExp(`^RECEIVED ${whileDown} `, 'm'),
        15_000 + pending.length * 100,
      );
      expectGracefulExit(second, await second.terminate(SHUTDOWN_BOUND_MS));
      expectAllWithinLifecycle(second);
      const receivedSecond = new Set(second.received().map((r) => r.id));
      expect({
        lost: pending.filter((id) => !receivedSecond.has(id)),
        output: second.output,
      }).toEqual({ lost: [], output: second.output });

      const duplicated = [...receivedSecond].filter((id) => receivedFirst.has(id)).length;
      console.log(
        `[package:${name}] SIGTERM during a burst of ${BURST}: ${receivedFirst.size - 1} of them handled before it; after the restart ${receivedSecond.size} events handled of ${pending.length} pending (${duplicated} twice), none lost`,
      );
    });

    it("has a CommonJS build that, loaded by its path, reaches the app's own Terminus", async () => {
      const output = await run(
        process.execPath,
        [join(root, 'test', 'package', 'cjs-build-check.cjs')],
        appDir,
        { timeoutMs: 60_000 },
      );
      const line = output.match(/^CJS_BUILD (.*)$/m)?.[1];
      expect({ result: line ? JSON.parse(line) : null, output }).toEqual({
        result: {
          file: join(appDir, 'node_modules', 'nestjs-change-streams', 'build', 'cjs', 'index.js'),
          health: { changeStreams: { status: 'up', streams: {} } },
          sameTerminus: true,
        },
        output,
      });
    });

    if (jest) {
      it('passes its Jest spec, set up as `nest new` does (jest 29, ts-jest, CommonJS), which gets the CommonJS build', async () => {
        const { mongoUri, redisUrl } = testEnv();
        const env = {
          MONGODB_URI: mongoUri,
          REDIS_URL: redisUrl,
          DB_NAME: uniqueName('jest'),
          CONSUMER: uniqueName('jest'),
          CI: 'true',
        };
        // A hanging Jest (an open handle after app.close()) fails here too, instead of passing with --forceExit.
        const output = await run('npx', ['jest'], appDir, { env, timeoutMs: 120_000 });
        expect(output).toMatch(/^Tests: +2 passed, 2 total$/m);
      }, 150_000);
    }
  },
);

function expectGracefulExit(
  app: PackedApp,
  exit: { code: number | null; signal: NodeJS.Signals | null },
): void {
  expect({
    exit: { code: exit.code, signal: exit.signal },
    shutdown: /^SHUTDOWN SIGTERM$/m.test(app.output),
    error: /\bERROR\b/.test(app.output),
    output: app.output,
  }).toEqual({
    exit: { code: null, signal: 'SIGTERM' },
    shutdown: true,
    error: false,
    output: app.output,
  });
}

/** Every handler call started after SlowClient was ready and ended before it closed; the output shows the same order. */
function expectAllWithinLifecycle(app: PackedApp): void {
  const received = app.received();
  const outside = received.filter((r: Received) => !r.ready || !r.open);
  const lines = app.output.split('\n');
  const ready = lines.indexOf('SLOW_CLIENT ready');
  const closed = lines.indexOf('SLOW_CLIENT closed');
  const handled = lines.flatMap((line, i) => (line.startsWith('RECEIVED ') ? [i] : []));
  expect({
    received: received.length > 0,
    outside,
    firstAfterReady: ready >= 0 && handled[0] > ready,
    lastBeforeClosed: closed >= 0 && handled[handled.length - 1] < closed,
    output: app.output,
  }).toEqual({
    received: true,
    outside: [],
    firstAfterReady: true,
    lastBeforeClosed: true,
    output: app.output,
  });
}
