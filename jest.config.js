/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { diagnostics: false }],
  },
  globalSetup: '<rootDir>/tests/global-setup.js',
  testTimeout: 60000,
  // End-to-end tests each start servers on ephemeral ports; two workers fit the 2-core CI box.
  maxWorkers: 2,
};
