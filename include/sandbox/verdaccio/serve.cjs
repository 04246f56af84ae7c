#!/usr/bin/env node
// Start Verdaccio with its command line intact. Verdaccio sets process.title, which on Linux
// overwrites /proc/<pid>/cmdline; the sandbox recognises its processes by their command line
// (--config <home>/verdaccio/config.yaml), so the title stays as the kernel gave it.
'use strict';
Object.defineProperty(process, 'title', { get: () => 'verdaccio', set: () => {}, configurable: false });
require('verdaccio/build/lib/cli');
