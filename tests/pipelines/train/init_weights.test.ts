/** `train --init`: another model's weights are loaded into a freshly built one (fine-tuning start). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../../kernels/backend.ts';
import { buildTaskModel, saveTaskModel, type TaskSpec } from '../../../pipelines/task_model.ts';
import { initWeights } from '../../../pipelines/train/loop.ts';
import { tinyRestoreModel } from '../../_helpers/restore_model.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-init-'));

beforeAll(async () => {
  await selectDevice('cpu');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('initWeights', () => {
  it('copies every weight of the source model and says where they came from', async () => {
    const source = tinyRestoreModel('source_model');
    await saveTaskModel(dir, source);
    const want = await source.exportWeights();
    source.dispose();
    const fresh = tinyRestoreModel('fresh_model');
    // perturbed differently from the source, so a copy that did nothing would be seen
    for (const v of fresh.variables()) v.assign(tf.mul(v, 1.5));
    const lines: string[] = [];
    await initWeights(fresh, dir, (l) => lines.push(l));
    const got = await fresh.exportWeights();
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, w] of want) expect(Array.from(got.get(name)!.data)).toEqual(Array.from(w.data));
    expect(lines.join('\n')).toMatch(/initialised from .*source_model, sha256 [0-9a-f]{12}/);
    fresh.dispose();
  });

  const spec = (blocks: number): TaskSpec => ({
    name: `grow_${blocks}`,
    task: 'restore',
    description: 'residual restorer with residual blocks',
    backbone: { arch: 'test_vig_h', config: {} },
    head: { kind: 'residual', config: { dim: 8, depth: 1, blocks } },
    input: { channels: 1, context: 0, multipleOf: 32, normalization: { kind: 'none' }, canonical: false },
    classes: [],
  });

  it('grows a model by residual blocks: the grown model computes what the smaller one did, then its blocks learn', async () => {
    const small = buildTaskModel(spec(0), 3);
    for (const v of small.variables()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.05, 'float32', 5)));
    const sub = join(dir, 'small');
    await saveTaskModel(sub, small);
    const grown = buildTaskModel(spec(2), 9);
    const lines: string[] = [];
    await initWeights(grown, sub, (l) => lines.push(l));
    expect(lines.join('\n')).toMatch(/8 parameter\(s\) new in this model.*head\.block\.0\.a/);
    const x = tf.randomUniform([1, 32, 32, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    const a = await small.predict(x).data();
    const b = await grown.predict(x).data();
    // the blocks' second convs start at zero: exactly the small model's output
    expect(Array.from(b)).toEqual(Array.from(a));
    // and the blocks are live: a non-zero second conv changes the output
    const w = await grown.exportWeights();
    const bk = w.get('head.block.1.b.kernel')!;
    expect(bk.data.every((v) => v === 0)).toBe(true);
    expect(w.get('head.block.1.a.kernel')!.data.some((v) => v !== 0)).toBe(true);
    w.set('head.block.1.b.kernel', { shape: bk.shape, data: bk.data.map((_, i) => ((i % 7) - 3) * 0.05) });
    grown.loadWeights(w);
    const c = await grown.predict(x).data();
    expect(Math.max(...Array.from(c, (v, i) => Math.abs(v - a[i]!)))).toBeGreaterThan(1e-3);
    x.dispose();
    small.dispose();
    grown.dispose();
  });

  it('refuses weights the model has no place for (a larger model into a smaller one)', async () => {
    const big = buildTaskModel(spec(1), 3);
    const sub = join(dir, 'big');
    await saveTaskModel(sub, big);
    big.dispose();
    const small = buildTaskModel(spec(0), 3);
    await expect(initWeights(small, sub, () => undefined)).rejects.toThrow(/unexpected \(head\.block\.0/);
    small.dispose();
  });
});
