// Assertions on Neutron errors: the type and status a client would see.
import assert from 'node:assert/strict';
import type { NeutronError } from '../../src/errors.ts';

function check(e: NeutronError, status: number, type: string, message?: RegExp): true {
  assert.equal(e.type, type, e.message);
  assert.equal(e.status, status);
  if (message) assert.match(e.message, message);
  return true;
}

/** The promise rejects with a NeutronError of this status and type (and message). */
export async function rejectsNeutron(p: Promise<unknown>, status: number, type: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: NeutronError) => check(e, status, type, message));
}

/** The function throws a NeutronError of this status and type (and message). */
export function throwsNeutron(fn: () => unknown, status: number, type: string, message?: RegExp): void {
  assert.throws(fn, (e: NeutronError) => check(e, status, type, message));
}
