/** Jest runs the TypeScript sources directly through swc (type checking is `npm run typecheck`). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] },
  // Model tests on the pure-JS backend are slow; keep one worker per core.
  maxWorkers: 2,
  testTimeout: 600000,
};
