/**
 * UIDs for objects we create: '2.25.' followed by a random UUID written as one decimal integer
 * (PS3.5 B.2), so no organisational root is needed and collisions are as unlikely as UUID ones.
 */
import { createHash, randomUUID } from 'node:crypto';

export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

/** PS3.5 9.1: at most 64 characters, dot-separated numbers without leading zeros. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(uid);
}

/**
 * A UID derived from a seed (sha256, first 128 bits, as one decimal integer under 2.25): the same input and
 * model give the same UIDs, so a rerun writes byte-identical objects.
 */
export function uidFrom(seed: string): string {
  return `2.25.${BigInt(`0x${createHash('sha256').update(seed).digest('hex').slice(0, 32)}`).toString()}`;
}
