/**
 * API keys: `gv_<id>_<secret>` with a 256-bit random secret. Only sha256(secret) is stored; the id finds the
 * row, so the secret is compared once, in constant time, and never used as a lookup value.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface ParsedKey {
  keyId: string;
  secret: string;
}

export function newKey(): { keyId: string; secret: string; token: string; hash: Buffer } {
  const keyId = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { keyId, secret, token: `gv_${keyId}_${secret}`, hash: hashSecret(secret) };
}

export function parseKey(token: string): ParsedKey | undefined {
  const m = /^gv_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(token);
  return m ? { keyId: m[1]!, secret: m[2]! } : undefined;
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function secretMatches(secret: string, stored: Buffer): boolean {
  const h = hashSecret(secret);
  return h.length === stored.length && timingSafeEqual(h, stored);
}

/** Client names appear in logs and metrics, so they are restricted to a safe alphabet. */
export function checkClientName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name);
}
