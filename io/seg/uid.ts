/**
 * UIDs for objects we create: '2.25.' followed by a random UUID written as one decimal integer
 * (PS3.5 B.2), so no organisational root is needed and collisions are as unlikely as UUID ones.
 */
import { randomUUID } from 'node:crypto';

export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

/** PS3.5 9.1: at most 64 characters, dot-separated numbers without leading zeros. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(uid);
}
