/**
 * The run manifest of a batch: one JSON object per line, appended and fsynced after each input, so a kill at
 * any moment loses at most the line being written. Reading tolerates a torn last line (it is ignored, and
 * that input is simply done again); the last record of each input wins. `--resume` skips inputs whose last
 * record is `done` and whose outputs still exist.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { GatedError, toGatedError } from '../core/errors.ts';

export type RunStatus = 'done' | 'rejected' | 'failed';

export interface RunRecord {
  /** Stable id of the input (see inputId). */
  id: string;
  /** The input as the user named it (a path; never a patient identifier). */
  input: string;
  status: RunStatus;
  code?: string;
  message?: string;
  outputs: string[];
  ms: number;
  /**
   * Milliseconds per stage (load, segment, write), and where segment's time went (`segment.prepare`,
   * `segment.background`, `segment.infer.upload|input|model|output|wait|place`, `segment.largestComponent`,
   * `segment.fillHoles`, `segment.volumes`, `segment.restore`; `segment.infer.firstBatch` overlaps the others:
   * the first group's whole time, shader compilation included). On WebGPU also `segment.compileStart` and
   * `segment.compileWait` (shaders compiled ahead while the volume is prepared), or `load.compileStart` when a
   * NIfTI header let that start during decoding.
   */
  timings?: Record<string, number>;
  /**
   * Resident memory of this process in MiB (the decoding sandbox not included): `start` as the input began (Node,
   * tfjs, the backend and the model, plus whatever earlier inputs left), `loaded` once the decoded volume had
   * arrived, `peak` the process's highest so far (getrusage), so the first input's `peak - start` is what it cost.
   */
  memory?: Record<string, number>;
  /** How `segment` read the input's voxels: `streamed` (slice by slice from the file, never whole) or `whole`. */
  inputRead?: 'streamed' | 'whole';
  /**
   * WebGPU: the model's forward passes for this input, by how they ran: `direct` through tfjs, `recorded` (run and
   * recorded), `replayed` (kernels/webgpu_replay.ts). Absent elsewhere.
   */
  forwards?: { direct: number; recorded: number; replayed: number };
  model?: { name: string; sha256: string };
  /**
   * What shaped the outputs besides the input: the model's weights and the options that change them. `--resume`
   * skips an input only when its record's settings equal the run's, so a rerun with another model or other options
   * never keeps outputs made the old way.
   */
  settings?: RunSettings;
  device?: string;
  versions?: Record<string, string>;
  at: string;
}

export type RunSettings = Record<string, string | number | boolean | null>;

/** The same settings, key order aside. */
function sameSettings(a: RunSettings | undefined, b: RunSettings): boolean {
  if (!a) return false;
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/** sha256 of the input path as given plus its size and mtime: stable across reruns, changes if the file does. */
export function inputId(path: string, size: number, mtimeMs: number): string {
  return createHash('sha256').update(`${path}\0${size}\0${Math.trunc(mtimeMs)}`).digest('hex').slice(0, 32);
}

export class RunManifest {
  private constructor(
    readonly path: string,
    private readonly records: Map<string, RunRecord>,
    readonly tornLines: number,
  ) {}

  static async open(path: string): Promise<RunManifest> {
    await mkdir(dirname(path), { recursive: true });
    const records = new Map<string, RunRecord>();
    let torn = 0;
    if (existsSync(path)) {
      const text = await readFile(path, 'utf8');
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!;
        if (line.trim() === '') continue;
        try {
          const r = JSON.parse(line) as RunRecord;
          if (typeof r.id === 'string' && typeof r.status === 'string') records.set(r.id, r);
          else torn++;
        } catch {
          torn++; // a line cut by a kill mid-write: that input runs again
        }
      }
      // a torn line at the end must not glue itself to the next append
      if (text.length > 0 && !text.endsWith('\n')) {
        const fh = await open(path, 'a');
        try {
          await fh.write('\n');
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
    }
    return new RunManifest(path, records, torn);
  }

  last(id: string): RunRecord | undefined {
    return this.records.get(id);
  }

  /**
   * Whether --resume may skip this input: done before, every output still on disk, and (when the run states its
   * settings) made with the same ones; a record from before settings were kept does not match any.
   */
  isDone(id: string, settings?: RunSettings): boolean {
    const r = this.records.get(id);
    return r !== undefined && r.status === 'done' && r.outputs.every((o) => existsSync(o)) && (settings === undefined || sameSettings(r.settings, settings));
  }

  async append(record: RunRecord): Promise<void> {
    // JSON.stringify escapes newlines inside strings, so a record is always exactly one line
    const line = `${JSON.stringify(record)}\n`;
    try {
      const fh = await open(this.path, 'a');
      try {
        await fh.write(line);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw toGatedError(e, 'io_error', 'cannot append to the run manifest');
    }
    this.records.set(record.id, record);
  }

  all(): RunRecord[] {
    return [...this.records.values()];
  }
}

/**
 * `--part i/n`: the inputs of shard i (1-based) of n, chosen by a hash of each input's name, so every machine
 * given the same list (in any order) takes a disjoint share and together they take everything.
 */
export function shard<T>(items: T[], part: string, name: (t: T) => string): T[] {
  const m = /^(\d+)\/(\d+)$/.exec(part);
  if (!m) throw new GatedError('usage', `--part must look like i/n (e.g. 2/4); got '${part}'`);
  const i = Number(m[1]);
  const n = Number(m[2]);
  if (n < 1 || i < 1 || i > n) throw new GatedError('usage', `--part ${part}: i must be between 1 and n`);
  return items.filter((t) => createHash('sha256').update(name(t)).digest().readUInt32BE(0) % n === i - 1);
}
