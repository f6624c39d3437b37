import { expect } from 'vitest';
import { CordonError } from '../../domain/index.js';

/** The error `promise` rejects with, which must be an `errorClass`; fails the test when it resolves or rejects with anything else. */
export async function rejectionOf<E extends Error>(promise: Promise<unknown>, errorClass: new (...args: never[]) => E): Promise<E> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(errorClass);
  return error as E;
}

/** The CordonError `promise` rejects with. */
export function cordonErrorOf(promise: Promise<unknown>): Promise<CordonError> {
  return rejectionOf(promise, CordonError);
}
