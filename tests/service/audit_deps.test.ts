/**
 * The S18 dependency gate (scripts/audit_deps.mjs): the project's own package.json and lockfile pass; a copy with a
 * range, a git spec, a missing integrity or a tarball from elsewhere fails with a line per problem; npm audit's
 * answers become ok / fail / skipped (the recorded 405 is what this machine's registry answers).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'audit_deps.mjs');
type Runner = (cmd: string, args: string[], opts: object) => { status: number | null; stdout: string; stderr: string; error?: Error };
const gate = (await import(pathToFileURL(SCRIPT).href)) as {
  checkPins(dir: string): string[];
  checkAdvisories(dir: string, run: Runner): { status: 'ok' | 'fail' | 'skipped'; lines: string[] };
};

const tmp = mkdtempSync(join(tmpdir(), 'gv-audit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const runGate = (dir: string) => spawnSync(process.execPath, [SCRIPT, '--dir', dir, '--no-advisories'], { encoding: 'utf8' });

describe('pins and lockfile', () => {
  it('passes on the project as committed', () => {
    expect(gate.checkPins(ROOT)).toEqual([]);
    const r = runGate(ROOT);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/pinned exactly/);
  });

  it('fails on a range, a git spec, a missing integrity and a tarball from another host', () => {
    const dir = join(tmp, 'bad');
    cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
    cpSync(join(ROOT, 'package-lock.json'), join(dir, 'package-lock.json'));
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    pkg.dependencies.express = `^${pkg.dependencies.express}`;
    pkg.devDependencies.typescript = 'github:microsoft/TypeScript';
    writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg));
    const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8'));
    delete lock.packages['node_modules/fflate'].integrity;
    lock.packages['node_modules/yauzl'].resolved = 'https://mirror.example.org/yauzl/-/yauzl-3.4.0.tgz';
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock));

    const problems = gate.checkPins(dir);
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/dependencies: express is "\^[\d.]+", not an exact version/);
    expect(problems.join('\n')).toMatch(/devDependencies: typescript is "github:microsoft\/TypeScript"/);
    expect(problems.join('\n')).toMatch(/node_modules\/fflate has no sha512 integrity \(missing\)/);
    expect(problems.join('\n')).toMatch(/node_modules\/yauzl is resolved from https:\/\/mirror\.example\.org\//);
    const r = runGate(dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/FAILED, 4 problem/);
  });

  it('fails when the lockfile does not hold the pinned version', () => {
    const dir = join(tmp, 'drift');
    cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
    lock.packages['node_modules/pino'].version = '9.0.0';
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock));
    expect(gate.checkPins(dir)).toEqual([expect.stringMatching(/node_modules\/pino is 9\.0\.0 but package\.json pins/)]);
  });
});

describe('advisories', () => {
  const reply = (stdout: string, status: number): Runner => () => ({ status, stdout, stderr: '' });

  it('skips with one line when the endpoint answers 405', () => {
    const r = gate.checkAdvisories(ROOT, reply(JSON.stringify({ message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk', statusCode: 405, body: '', error: { summary: '', detail: '' } }), 1));
    expect(r.status).toBe('skipped');
    expect(r.lines).toEqual([expect.stringMatching(/^advisory check skipped: .*405 Method Not Allowed/)]);
  });

  it('skips when npm cannot run, and says so', () => {
    const r = gate.checkAdvisories(ROOT, () => ({ status: null, stdout: '', stderr: '', error: Object.assign(new Error('spawn npm ENOENT'), { code: 'ENOENT' }) }));
    expect(r).toEqual({ status: 'skipped', lines: ['advisory check skipped: npm audit could not run (ENOENT)'] });
  });

  it('fails on high or critical advisories, passes on lower ones', () => {
    const report = (severity: string) => ({
      auditReportVersion: 2,
      vulnerabilities: { multer: { name: 'multer', severity, range: '<2.0.2', via: [{ title: 'Denial of service via malformed request' }], fixAvailable: true } },
      metadata: { vulnerabilities: { info: 0, low: 0, moderate: severity === 'moderate' ? 1 : 0, high: severity === 'high' ? 1 : 0, critical: 0, total: 1 } },
    });
    const bad = gate.checkAdvisories(ROOT, reply(JSON.stringify(report('high')), 1));
    expect(bad.status).toBe('fail');
    expect(bad.lines).toEqual(['high advisory in multer <2.0.2: Denial of service via malformed request (a fix is available)']);
    expect(gate.checkAdvisories(ROOT, reply(JSON.stringify(report('moderate')), 0)).status).toBe('ok');
  });
});
