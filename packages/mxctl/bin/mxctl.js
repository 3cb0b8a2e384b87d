#!/usr/bin/env node
// Runs mxctl from its TypeScript source through tsx, so it needs no build step.
import { tsImport } from 'tsx/esm/api';

const { main } = await tsImport('../src/main.ts', import.meta.url);
process.exitCode = await main(process.argv.slice(2));
