/**
 * Three projects: `unit` and `docs` need no server; only `e2e` has the global setup that starts
 * MongoDB and Redis (Jest runs a project's global setup only when one of its specs is selected).
 * `npm test` runs all three; `npm run test:unit` runs `unit` alone.
 */
const shared = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  testTimeout: 60000,
  modulePathIgnorePatterns: [
    '<rootDir>/dist/',
    '<rootDir>/build/',
    '<rootDir>/test/package/fixtures/',
  ],
};

/** @type {import('jest').Config} */
export default {
  testTimeout: 60000,
  projects: [
    // One unit per spec, against fakes and in-memory stores.
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.spec.ts'] },
    // The README, the API reference, the troubleshooting page and the CI workflow checked as files.
    { ...shared, displayName: 'docs', testMatch: ['<rootDir>/test/{docs,readme,ci}/**/*.spec.ts'] },
    {
      ...shared,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/e2e/**/*.spec.ts', '<rootDir>/test/package/**/*.spec.ts'],
      // Compiled by `tsc -p tsconfig.json` before Jest runs (package.json "test").
      globalSetup: '<rootDir>/dist/test/servers/global-setup.js',
      globalTeardown: '<rootDir>/dist/test/servers/global-teardown.js',
    },
  ],
};
