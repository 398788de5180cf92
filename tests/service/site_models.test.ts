/**
 * A real server with `--models-dir`: a site's own restoration model is offered next to the shipped ones and runs
 * restore jobs (8-bit PNG, 16-bit PNG, NIfTI) whose results keep the input's size, type and grid; task/model
 * mismatches are refused at upload; the configured reader limits reach the job's readers; a site model that
 * clashes with a shipped name, or whose weights do not match, stops the server at start-up.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../core/errors.ts';
import { loadInput } from '../../io/load.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { restoreFile } from '../../pipelines/restore.ts';
import { readTaskManifest, saveTaskModel, shippedModelsDir, type TaskModel } from '../../pipelines/task_model.ts';
import { pythonJson } from '../_helpers/python.ts';
import { MRICRON, SKIMAGE_DATA, requireData } from '../_helpers/testdata.ts';
import { BIN, Client, addKey, startServer, type Srv } from './_server.ts';
import { tinyRestoreModel } from '../_helpers/restore_model.ts';

let root: string;
let modelsDir: string;
let inputs: { affine: number[][] };
let model: TaskModel;
let srv: Srv;
let c: Client;

beforeAll(async () => {
  requireData(MRICRON);
  requireData(SKIMAGE_DATA);
  await selectDevice('cpu');
  root = mkdtempSync(join(tmpdir(), 'gv-sitemodels-'));
  modelsDir = join(root, 'site-models');
  inputs = pythonJson(readFileSync(join(import.meta.dirname, '../_oracles/restore_inputs.py'), 'utf8'), [join(root, 'in')]);
  model = tinyRestoreModel('denoise_site');
  await saveTaskModel(join(modelsDir, 'denoise_site'), model);
  // a folder without model.json (a training run that has not saved yet) is not offered and does not stop the server
  mkdirSync(join(modelsDir, 'unfinished'), { recursive: true });
  const data = join(root, 'data');
  mkdirSync(data);
  srv = await startServer(data, ['--models-dir', modelsDir, '--max-pixels', '100000']);
  c = new Client(srv.url, addKey(data, 'ward'));
}, 120_000);

afterAll(async () => {
  await srv?.stop();
  model?.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('site models folder', () => {
  it('offers the site model next to the shipped ones, by name only', async () => {
    const r = await c.get('/v1/models');
    expect(r.status).toBe(200);
    const byName = Object.fromEntries(r.body.models.map((m: { name: string }) => [m.name, m]));
    expect(Object.keys(byName).sort()).toEqual(['brain', 'denoise', 'denoise_site']);
    expect(byName.denoise).toMatchObject({ task: 'restore', source: 'shipped' });
    const manifest = await readTaskManifest(join(modelsDir, 'denoise_site'));
    expect(byName.denoise_site).toEqual({ name: 'denoise_site', task: 'restore', classes: [], description: manifest.description, sha256: manifest.weights.sha256, source: 'site' });
    expect(byName.brain).toMatchObject({ task: 'segment', source: 'shipped' });
    expect(JSON.stringify(r.body)).not.toContain(modelsDir);
  });

  it('restores 8-bit PNG, 16-bit PNG and NIfTI through the API, as the pipeline does in-process', async () => {
    const form = new FormData();
    form.set('task', 'restore');
    form.set('model', 'denoise_site');
    form.set('file', new Blob([readFileSync(join(root, 'in/noisy/cam.png'))]), 'cam.png');
    const sub8 = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: c.headers(), body: form });
    expect(sub8.status).toBe(202);
    const ids: Record<string, string> = { cam: ((await sub8.json()) as any).id };
    for (const [k, f] of [['cam16', 'cam16.png'], ['brain', 'brain.nii.gz']] as const) {
      const r = await c.submit(readFileSync(join(root, 'in/noisy', f)), { task: 'restore', model: 'denoise_site' });
      expect(r.status, f).toBe(202);
      ids[k] = r.body.id;
    }
    const got: Record<string, Buffer> = {};
    for (const [k, id] of Object.entries(ids)) {
      const j = await c.settled(id);
      expect(j, k).toMatchObject({ status: 'done', task: 'restore', model: 'denoise_site' });
      const listing = await c.get(`/v1/jobs/${id}/result`);
      const file = listing.body.files.find((f: { name: string }) => /\.(png|nii\.gz)$/.test(f.name));
      expect(file, k).toBeDefined();
      const res = await fetch(srv.url + file.url, { headers: c.headers() });
      expect(res.status).toBe(200);
      got[k] = Buffer.from(await res.arrayBuffer());
    }

    const in8 = await sharp(join(root, 'in/noisy/cam.png')).metadata();
    const out8 = await sharp(got.cam!).metadata();
    expect([out8.format, out8.width, out8.height, out8.channels, out8.depth]).toEqual(['png', in8.width, in8.height, 1, 'uchar']);
    const out16 = await sharp(got.cam16!).metadata();
    expect([out16.format, out16.width, out16.height, out16.channels, out16.depth]).toEqual(['png', in8.width, in8.height, 1, 'ushort']);

    // the same model in this process gives the same pixels: the service ran the site model, not another one
    const local = join(root, 'local');
    for (const f of ['cam.png', 'cam16.png', 'brain.nii.gz']) await restoreFile(join(root, 'in/noisy', f), local, model);
    for (const [k, f] of [['cam', 'cam.png'], ['cam16', 'cam16.png'], ['brain', 'brain.nii.gz']] as const) {
      const served = join(root, `served-${f}`);
      writeFileSync(served, got[k]!);
      const [s, l, src] = await Promise.all([served, join(local, f), join(root, 'in/noisy', f)].map(async (p) => (await loadInput(p, { sandbox: false })).volumes[0]!));
      expect(s!.dtype, k).toBe(src!.dtype);
      expect(s!.shape, k).toEqual(src!.shape);
      for (let r = 0; r < 4; r++) for (let col = 0; col < 4; col++) expect(s!.affine[r]![col], k).toBeCloseTo(src!.affine[r]![col]!, 5);
      expect(Buffer.from(s!.data.buffer, s!.data.byteOffset, s!.data.byteLength).equals(Buffer.from(l!.data.buffer, l!.data.byteOffset, l!.data.byteLength)), k).toBe(true);
      let changed = 0;
      for (let i = 0; i < s!.data.length; i++) if (s!.data[i] !== src!.data[i]) changed++;
      expect(changed, k).toBeGreaterThan(s!.data.length / 4);
    }
    const nii = (await loadInput(join(root, 'served-brain.nii.gz'), { sandbox: false })).volumes[0]!;
    for (let r = 0; r < 3; r++) for (let col = 0; col < 4; col++) expect(nii.affine[r]![col]).toBeCloseTo(inputs.affine[r]![col]!, 5);
    expect(nii.dtype).toBe('int16');
  }, 120_000);

  it('refuses a task the model was not made for, and paths in place of names', async () => {
    const png = readFileSync(join(root, 'in/noisy/cam.png'));
    const restoreWithSeg = await c.submit(png, { task: 'restore', model: 'brain' });
    expect([restoreWithSeg.status, restoreWithSeg.body.error.code]).toEqual([400, 'config']);
    const segWithRestore = await c.submit(png, { task: 'segment', model: 'denoise_site' });
    expect([segWithRestore.status, segWithRestore.body.error.code]).toEqual([400, 'config']);
    for (const path of [join(modelsDir, 'denoise_site'), '../site-models/denoise_site', join(shippedModelsDir(), 'brain')]) {
      const r = await c.submit(png, { task: 'restore', model: path });
      expect([r.status, r.body.error.code], path).toEqual([400, 'unknown_name']);
    }
  });

  it('applies the configured pixel limit in the job readers (413 too_many_pixels)', async () => {
    const camera = readFileSync(join(SKIMAGE_DATA, 'camera.png')); // 512 x 512 > --max-pixels 100000
    const sub = await c.submit(camera, { task: 'restore', model: 'denoise_site' });
    expect(sub.status).toBe(202);
    expect((await c.settled(sub.body.id)).status).toBe('rejected');
    const res = await c.get(`/v1/jobs/${sub.body.id}/result`);
    expect([res.status, res.body.error.code]).toEqual([ERROR_CODES.too_many_pixels.http, 'too_many_pixels']);
  }, 60_000);

  it('stops at start-up on a site model named like a shipped one, or with weights that do not match', () => {
    const serve = (dir: string) => spawnSync(process.execPath, [BIN, 'serve', '--port', '0', '--workers', '0', '--data-dir', join(root, 'data-bad'), '--models-dir', dir], { encoding: 'utf8', timeout: 60_000 });
    const clash = join(root, 'clash');
    cpSync(join(shippedModelsDir(), 'brain'), join(clash, 'brain'), { recursive: true });
    const a = serve(clash);
    expect(a.status).toBe(ERROR_CODES.config.exit);
    expect(a.stderr).toMatch(/error config: site model 'brain' .* has the name of a shipped model/);
    const corrupt = join(root, 'corrupt');
    cpSync(join(modelsDir, 'denoise_site'), join(corrupt, 'denoise_copy'), { recursive: true });
    const w = join(corrupt, 'denoise_copy', 'weights.safetensors');
    const bytes = readFileSync(w);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
    writeFileSync(w, bytes);
    const b = serve(corrupt);
    expect(b.status).toBe(ERROR_CODES.config.exit);
    expect(b.stderr).toMatch(/error config: site model 'denoise_copy': weights\.safetensors does not match/);
    expect(serve(join(root, 'no-such-folder')).stderr).toMatch(/error config: --models-dir .* is not a folder/);
  }, 120_000);
});
