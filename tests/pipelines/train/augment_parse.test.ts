/** `train --augment`: named settings and key=value pairs over the defaults; anything else is a usage error. */
import { describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { AUGMENT_DEFAULTS, parseAugment } from '../../../pipelines/train/augment.ts';

describe('parseAugment', () => {
  it('default and none', () => {
    expect(parseAugment('default')).toEqual(AUGMENT_DEFAULTS);
    const none = parseAugment('none');
    expect(none.rotateDeg).toBe(0);
    expect(none.scale).toEqual([1, 1]);
    expect(none.flipLR).toBe(false);
    expect(none.intensityP).toBe(0);
  });

  it('pairs override only what they name', () => {
    const c = parseAugment('rotateDeg=8, scale=0.85:1.2,intensityP=0.3,flipLR=false');
    expect(c).toEqual({ ...AUGMENT_DEFAULTS, rotateDeg: 8, scale: [0.85, 1.2], intensityP: 0.3, flipLR: false });
    // the defaults themselves are not changed by a parse
    expect(AUGMENT_DEFAULTS.rotateDeg).toBe(15);
    expect(AUGMENT_DEFAULTS.scale).toEqual([0.7, 1.4]);
  });

  it.each([
    ['rotate=8', 'unknown key'],
    ['rotateDeg', 'not key=value'],
    ['rotateDeg=-3', 'non-negative'],
    ['rotateDeg=x', 'non-negative'],
    ['scale=1.2', 'range'],
    ['scale=1.2:0.8', 'empty'],
    ['gamma=0:1', 'not positive'],
    ['intensityP=2', 'probability'],
    ['flipLR=yes', 'true or false'],
  ])('%s is refused', (text, why) => {
    let err: unknown;
    try {
      parseAugment(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GatedError);
    expect((err as GatedError).code).toBe('usage');
    expect((err as GatedError).message).toContain(why);
  });
});
