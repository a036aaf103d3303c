#!/usr/bin/env node
// Runs the whole test suite with Node's test runner (through tsx for TypeScript).
// Makes sure a PostgreSQL is reachable for the back-end matrix: the one on
// 127.0.0.1:5432 when present, otherwise a throw-away cluster of our own.
// Usage: node scripts/run-tests.mjs [test files...]
import { spawnSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ensurePostgres } from './postgres.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
process.chdir(root);

function findTests(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && e.name !== 'support') out.push(...findTests(p));
    else if (e.isFile() && e.name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const files = process.argv.slice(2).length ? process.argv.slice(2) : findTests('test');
const pgHandle = await ensurePostgres();
process.env.NUCLEON_TEST_PG_URL = pgHandle.url;

const child = spawn(process.execPath, [
  '--import', 'tsx', '--test', '--test-reporter=spec',
  `--test-concurrency=${process.env.NUCLEON_TEST_CONCURRENCY ?? 2}`,
  ...files,
], { stdio: 'inherit', env: process.env });
const code = await new Promise((r) => child.on('exit', (c, s) => r(c ?? (s ? 1 : 0))));
await pgHandle.stop();
process.exit(code);
