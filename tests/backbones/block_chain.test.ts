/**
 * Inference holds one block output at a time (chainBlocks): the peak of live tensor bytes in a forward pass does
 * not grow with the depth, where a plain tidy would keep every block's output to its end; with a gradient tape
 * the outputs stay (the backward pass needs them) and the gradients are those of the plain chain.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { createBackbone } from '../../backbones/_registry.ts';
import { chainBlocks } from '../../backbones/layers/ops.ts';
import { selectDevice } from '../../kernels/backend.ts';

/** Most bytes of live tensors during `f`, above what was live before it. */
function peakDuring(f: () => void): number {
  const engine = tf.engine() as unknown as { state: { numBytes: number }; trackTensor: (...a: unknown[]) => unknown };
  const base = engine.state.numBytes;
  let peak = base;
  const track = engine.trackTensor;
  engine.trackTensor = (...a: unknown[]) => {
    const r = track.apply(engine, a);
    peak = Math.max(peak, engine.state.numBytes);
    return r;
  };
  try {
    f();
  } finally {
    engine.trackTensor = track;
  }
  return peak - base;
}

it.each(['test_vig', 'test_deit', 'test_activator'])('%s: the forward peak does not grow with the depth', async (name) => {
  await selectDevice('cpu');
  const depthKey = name === 'test_activator' ? 'numLayers' : 'depth';
  const size = name === 'test_activator' ? 16 : name === 'test_deit' ? 32 : 64;
  const x = tf.randomNormal([1, size, size, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const peaks: number[] = [];
  let mapBytes = 0;
  for (const depth of [2, 10]) {
    const m = createBackbone(name, { seed: 0, overrides: { [depthKey]: depth } });
    tf.dispose(m.forward(x)); // one-off work (derived weights) out of the measurement
    peaks.push(peakDuring(() => tf.dispose(m.forward(x))));
    const f = m.forwardFeatures(x);
    mapBytes = f[0]!.size * 4;
    tf.dispose(f);
    m.dispose();
  }
  // eight more blocks: far less than eight more block outputs alive at once
  expect(peaks[1]! - peaks[0]!).toBeLessThan(2 * mapBytes);
  x.dispose();
});

it('with a gradient tape every block output stays, and the gradients equal the plain chain', async () => {
  await selectDevice('cpu');
  const w = tf.variable(tf.tensor1d([0.5, -1.5, 2]));
  const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
  const step = (t: tf.Tensor2D) => tf.tidy(() => tf.tanh(tf.mul(t, w)) as tf.Tensor2D); // a block is its own tidy, as in the models
  const { value: a, grads: ga } = tf.variableGrads(() => tf.sum(chainBlocks(x, [0, 1, 2], (t) => step(t))) as tf.Scalar);
  const { value: b, grads: gb } = tf.variableGrads(() => tf.sum(step(step(step(x)))) as tf.Scalar);
  expect(await a.data()).toEqual(await b.data());
  expect(Array.from(await ga[w.name]!.data())).toEqual(Array.from(await gb[w.name]!.data()));
  // outside a tape the inputs of later blocks are freed: only x and the result remain
  const before = tf.memory().numTensors;
  const y = tf.tidy(() => {
    const out = chainBlocks(x, [0, 1, 2], (t) => step(t));
    expect(tf.memory().numTensors - before).toBe(1); // only the last block's output
    return out;
  });
  expect(tf.memory().numTensors - before).toBe(1);
  tf.dispose([a, b, y, w, x, ...Object.values(ga), ...Object.values(gb)]);
});
