#!/usr/bin/env node
'use strict';
// The installed entry point: the compiled CLI lives in dist/ (built by `npm install`).
require('../dist/src/cli/main.js').main(process.argv).catch((err) => {
  process.stderr.write(`podway: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
