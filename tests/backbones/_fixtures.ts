/** Parity fixtures produced by tests/_oracles/backbone_fixtures.py from the official implementations. */
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../backbones/weights/safetensors.ts';
import type { StateDict } from '../../backbones/weights/tensors.ts';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'backbones');

export function fixtureBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(FIXTURES, name)));
}

export function fixtureIo(name: string): StateDict {
  return readSafetensors(fixtureBytes(`${name}.io.safetensors`)).tensors;
}

export function tensorOf(sd: StateDict, key: string): tf.Tensor {
  const t = sd.get(key);
  if (!t) throw new Error(`fixture has no '${key}' (has ${[...sd.keys()].join(', ')})`);
  return tf.tensor(t.data, t.shape);
}

/** max |a − b| / max |b|: the relative error the parity bar (≤ 1e-4) is stated in. */
export async function maxRelErr(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const x = await a.data();
  const y = await b.data();
  if (x.length !== y.length) return Infinity;
  let d = 0;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i]! - y[i]!));
    m = Math.max(m, Math.abs(y[i]!));
  }
  return d / m;
}
