/**
 * releaseNow gives a large buffer's memory back at once: the buffer is empty afterwards (so nothing can
 * read stale or freed memory through it), and small buffers, which may share Node's pool, are left alone.
 */
import { describe, expect, it } from 'vitest';
import { releaseNow } from '../../io/transfer.ts';

describe('releaseNow', () => {
  it('detaches a large buffer and lets every view of it go empty', () => {
    const data = new Int16Array(10 * 1024 * 1024).fill(7);
    const view = new Uint8Array(data.buffer, 100, 1000);
    releaseNow(data.buffer);
    expect(data.buffer.byteLength).toBe(0);
    expect(data.length).toBe(0);
    expect(view.length).toBe(0);
    // a second release of the same (now empty) buffer does nothing
    expect(() => releaseNow(data.buffer)).not.toThrow();
  });

  it('leaves small buffers as they are', () => {
    const small = new Uint8Array(1024).fill(3);
    const pooled = Buffer.from('pooled');
    releaseNow(small.buffer);
    releaseNow(pooled.buffer);
    expect(small.length).toBe(1024);
    expect(small[1023]).toBe(3);
    expect(pooled.toString()).toBe('pooled');
  });
});
