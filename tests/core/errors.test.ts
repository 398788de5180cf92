import { describe, expect, it } from 'vitest';
import { ERROR_CODES, GatedError, reviveGatedError, toGatedError } from '../../core/errors.ts';

describe('toGatedError', () => {
  it('keeps a thrown string as the message (dicom-parser throws bare strings)', () => {
    const e = toGatedError('dicomParser.readFixedString: attempt to read past end of buffer', 'truncated');
    expect(e).toBeInstanceOf(GatedError);
    expect(e.code).toBe('truncated');
    expect(e.message).toContain('past end of buffer');
  });
  it('unwraps {exception} objects and never yields an undefined message', () => {
    const e = toGatedError({ exception: 'buffer overrun', dataSet: {} }, 'bad_length');
    expect(e.code).toBe('bad_length');
    expect(e.message).toBe('buffer overrun');
    const odd = toGatedError({ nothing: 1 }, 'internal');
    expect(typeof odd.message).toBe('string');
    expect(odd.message.length).toBeGreaterThan(0);
  });
  it('maps stack overflow to nesting and zlib output caps to decompressed_too_large', () => {
    expect(toGatedError(new RangeError('Maximum call stack size exceeded')).code).toBe('nesting');
    const z = Object.assign(new RangeError('Cannot create a Buffer larger than 10 bytes'), { code: 'ERR_BUFFER_TOO_LARGE' });
    expect(toGatedError(z).code).toBe('decompressed_too_large');
  });
  it('survives a round trip through JSON (process boundary)', () => {
    const e = new GatedError('bad_dims', 'dim[0] is 9', { details: { dim0: 9 } });
    const back = reviveGatedError(JSON.parse(JSON.stringify(e.toJSON())));
    expect(back.code).toBe('bad_dims');
    expect(back.details).toEqual({ dim0: 9 });
    expect(reviveGatedError({ code: 'no_such_code', message: 'x' }).code).toBe('internal');
  });
  it('gives every code a distinct-purpose exit status and an HTTP status in range', () => {
    for (const [code, v] of Object.entries(ERROR_CODES)) {
      expect(v.exit, code).toBeGreaterThan(0);
      expect(v.http, code).toBeGreaterThanOrEqual(400);
      expect(v.http, code).toBeLessThan(600);
      expect(v.hint.length, code).toBeGreaterThan(10);
    }
    expect(ERROR_CODES.usage.exit).not.toBe(ERROR_CODES.not_dicom.exit);
    expect(ERROR_CODES.internal.exit).not.toBe(ERROR_CODES.truncated.exit);
  });
});
