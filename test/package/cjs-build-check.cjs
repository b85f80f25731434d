// Run by packed-package.e2e.spec.ts as `node cjs-build-check.cjs` in an installed fixture app.
// Node itself gives require() the ESM build (the `module-sync` condition), so this loads the
// CommonJS build by its path, as Jest or a Node without require(esm) would get it, and asks its
// health indicator: that require()s the app's @nestjs/terminus, CommonJS (11) or ESM (12,
// through require(esm)), and looks up Terminus' HealthIndicatorService in the app.
'use strict';
const { createRequire } = require('node:module');
const { join } = require('node:path');

const appRequire = createRequire(join(process.cwd(), 'package.json'));
appRequire('reflect-metadata');
const { Module } = appRequire('@nestjs/common');
const { NestFactory } = appRequire('@nestjs/core');
const terminus = appRequire('@nestjs/terminus');
const build = join(
  process.cwd(),
  'node_modules',
  'nestjs-change-streams',
  'build',
  'cjs',
  'index.js',
);
const { ChangeStreamHealthIndicator, ChangeStreamRegistry } = require(build);

class CheckModule {}
Module({
  imports: [terminus.TerminusModule],
  providers: [
    ChangeStreamHealthIndicator,
    { provide: ChangeStreamRegistry, useValue: { getStatuses: () => [] } },
  ],
})(CheckModule);

async function main() {
  const app = await NestFactory.createApplicationContext(CheckModule, {
    logger: ['warn', 'error'],
  });
  const health = await app.get(ChangeStreamHealthIndicator).isHealthy();
  await app.close();
  // The build must reach the app's own Terminus instance (one module record for ESM, one cache entry for CommonJS).
  const sameTerminus = createRequire(build)('@nestjs/terminus') === terminus;
  console.log(
    `CJS_BUILD ${JSON.stringify({ file: require.resolve(build), health, sameTerminus })}`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
