/** Layout conversions from PyTorch checkpoints to TF.js, used by every family's converter. */
import { GatedError } from '../../core/errors.ts';
import { permute, type StateDict, type WeightTensor } from './tensors.ts';

export type Layout = 'copy' | 'linear' | 'conv' | 'dwconv' | 'convT';

/** linear (out,in)→(in,out); conv (out,in,kh,kw)→(kh,kw,in,out); dwconv (C,1,kh,kw)→(kh,kw,C,1). */
export function toTf(t: WeightTensor, layout: Layout): WeightTensor {
  switch (layout) {
    case 'copy':
      return t;
    case 'linear':
      return permute(t, [1, 0]);
    case 'conv':
      return permute(t, [2, 3, 1, 0]);
    case 'dwconv':
      return permute(t, [2, 3, 0, 1]);
    case 'convT': // torch ConvTranspose2d (in,out,kh,kw) → tf conv2dTranspose [kh,kw,out,in]
      return permute(t, [2, 3, 1, 0]);
  }
}

/**
 * Applies a rename table: each rule maps an official key pattern to our name and layout. Every official
 * key must match a rule (or an `ignore` pattern), so a checkpoint of another architecture fails loudly.
 */
export function convertByRules(official: StateDict, rules: readonly [RegExp, string, Layout][], ignore: readonly RegExp[] = []): StateDict {
  const out: StateDict = new Map();
  const unmatched: string[] = [];
  for (const [key, t] of official) {
    if (ignore.some((r) => r.test(key))) continue;
    const rule = rules.find(([re]) => re.test(key));
    if (!rule) {
      unmatched.push(key);
      continue;
    }
    out.set(key.replace(rule[0], rule[1]), toTf(t, rule[2]));
  }
  if (unmatched.length) {
    throw new GatedError('config', `checkpoint keys with no mapping (wrong architecture?): ${unmatched.slice(0, 8).join(', ')}${unmatched.length > 8 ? ', ...' : ''}`);
  }
  return out;
}
