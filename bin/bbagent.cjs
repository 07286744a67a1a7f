#!/usr/bin/env node
// Launcher for `npx bbagent` / the npm bin: runs the bundled agent built by `npm run build`.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const bundle = path.join(__dirname, '..', 'build', 'bbagent.cjs');
if (!fs.existsSync(bundle)) {
  process.stderr.write(`bbagent: ${bundle} is missing; run "npm run build" first\n`);
  process.exit(1);
}
require(bundle);
