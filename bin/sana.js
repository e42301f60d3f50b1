#!/usr/bin/env node
// The `sana` command: runs src/cli/main.ts through tsx, so `npx sana` works right after `npm install`.
'use strict';
const path = require('path');
require('tsx/cjs');
require(path.join(__dirname, '..', 'src', 'cli', 'main.ts'));
