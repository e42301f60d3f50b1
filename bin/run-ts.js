#!/usr/bin/env node
// Runs a TypeScript entry point of this package without a build step: `node bin/run-ts.js FILE.ts [args...]`.
'use strict';
const path = require('path');
require('tsx/cjs');
const file = process.argv[2];
if (!file) {
  console.error('usage: run-ts FILE.ts [args...]');
  process.exit(2);
}
process.argv.splice(1, 2, path.resolve(file));
require(path.resolve(file));
