/** `train --init`: another model's weights are loaded into a freshly built one (fine-tuning start). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../../kernels/backend.ts';
import { saveTaskModel } from '../../../pipelines/task_model.ts';
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
});
