/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  // Compiled by `tsc -p tsconfig.json` before Jest runs (package.json "test").
  globalSetup: '<rootDir>/dist/test/servers/global-setup.js',
  globalTeardown: '<rootDir>/dist/test/servers/global-teardown.js',
  testTimeout: 60000,
  modulePathIgnorePatterns: ['<rootDir>/dist/', '<rootDir>/build/', '<rootDir>/test/package/fixtures/'],
};
