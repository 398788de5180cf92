/**
 * Named heads (like the backbone registry): a head turns a backbone's feature maps into the task output.
 * 'native' means the backbone's own task output is used as is (HER-Seg's ME-Decoder mask logits, MAXIM's
 * restored image); it has no parameters of its own.
 */
import { GatedError } from '../core/errors.ts';
import type { HeadSpec } from './_types.ts';
import { fpnSpec } from './fpn.ts';
import { residualSpec } from './restore_residual.ts';

export const HEADS: Record<string, HeadSpec<any>> = {
  fpn: fpnSpec,
  residual: residualSpec,
};

export const NATIVE_HEAD = 'native';

export function getHead(kind: string): HeadSpec<any> {
  const h = HEADS[kind];
  if (!h) throw new GatedError('unknown_name', `unknown head '${kind}' (known: ${[NATIVE_HEAD, ...Object.keys(HEADS)].join(', ')})`);
  return h;
}

/** Full head config: defaults plus overrides, unknown keys refused. */
export function resolveHeadConfig(kind: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  if (kind === NATIVE_HEAD) {
    if (Object.keys(overrides).length) throw new GatedError('config', `the native head takes no options`);
    return {};
  }
  const spec = getHead(kind);
  for (const k of Object.keys(overrides)) if (!(k in spec.defaults)) throw new GatedError('config', `'${k}' is not an option of the ${kind} head (options: ${Object.keys(spec.defaults).join(', ')})`);
  return { ...spec.defaults, ...overrides };
}
