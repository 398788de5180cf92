#!/usr/bin/env node
// Dependency gate run by .ci/run before the tests (threat row S18, vulnerable dependencies).
//
// 1. Always, offline: every dependency in package.json (dependencies, optionalDependencies, devDependencies)
//    is pinned to an exact version, and every package in package-lock.json comes from registry.npmjs.org with a
//    sha512 integrity, at the version package.json pins for the direct ones. A lockfile written with npm's
//    omit-lockfile-registry-resolved setting has no `resolved` for registry packages (npm leaves it out only for
//    those); such entries pass when their sha512 is there, since npm checks every tarball against it.
// 2. Then `npm audit --omit=dev --audit-level=high`: high or critical advisories fail the gate. When the advisory
//    endpoint cannot be reached, one line says the check was skipped and why, and the gate does not fail.
//
// Usage: node scripts/audit_deps.mjs [--dir <project folder>] [--no-advisories]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REGISTRY = 'https://registry.npmjs.org/';
const EXACT = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const SECTIONS = ['dependencies', 'optionalDependencies', 'devDependencies'];

/** Problems with the pins and the lockfile, one sentence each; empty when the project passes. */
export function checkPins(dir) {
  const problems = [];
  const pkg = readJson(join(dir, 'package.json'), problems);
  const lock = readJson(join(dir, 'package-lock.json'), problems);
  if (!pkg || !lock) return problems;
  const pinned = new Map();
  for (const section of SECTIONS) {
    for (const [name, spec] of Object.entries(pkg[section] ?? {})) {
      if (typeof spec !== 'string' || !EXACT.test(spec)) problems.push(`package.json ${section}: ${name} is "${spec}", not an exact version (pin it, e.g. "1.2.3"; no ^ ~ * ranges, tags, git or URL specs)`);
      else pinned.set(name, spec);
    }
  }
  const packages = lock.packages;
  if (!packages || typeof packages !== 'object' || (lock.lockfileVersion ?? 0) < 2) {
    problems.push('package-lock.json has no "packages" map (lockfileVersion 2 or 3 is needed); run npm install with npm 7 or later');
    return problems;
  }
  for (const [path, entry] of Object.entries(packages)) {
    if (path === '') continue;
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (entry.link) {
      problems.push(`package-lock.json ${path} is a link to ${entry.resolved}, not a registry package`);
      continue;
    }
    // bundled packages arrive inside their parent's tarball, which its own integrity covers
    if (entry.inBundle) continue;
    if (entry.resolved !== undefined && !(typeof entry.resolved === 'string' && entry.resolved.startsWith(REGISTRY))) problems.push(`package-lock.json ${path} is resolved from ${entry.resolved}, not ${REGISTRY}`);
    if (typeof entry.integrity !== 'string' || !/^sha512-[A-Za-z0-9+/]{86}==$/.test(entry.integrity)) problems.push(`package-lock.json ${path} has no sha512 integrity (${entry.integrity === undefined ? 'missing' : String(entry.integrity).split('-')[0]})`);
    if (typeof entry.version !== 'string' || !EXACT.test(entry.version)) problems.push(`package-lock.json ${path} has version "${entry.version}", not a registry version`);
    if (path === `node_modules/${name}` && pinned.has(name) && entry.version !== pinned.get(name)) problems.push(`package-lock.json ${path} is ${entry.version} but package.json pins ${pinned.get(name)}; run npm install to update the lockfile`);
  }
  for (const name of pinned.keys()) {
    if (!packages[`node_modules/${name}`] && !(pkg.optionalDependencies ?? {})[name]) problems.push(`package-lock.json has no entry for ${name}; run npm install to update the lockfile`);
  }
  return problems;
}

/**
 * `npm audit` for the runtime dependencies. Returns {status: 'ok'|'fail'|'skipped', lines}.
 * `run` is the process runner (replaceable so the verdicts can be tested without the endpoint).
 */
export function checkAdvisories(dir, run = spawnSync) {
  const r = run('npm', ['audit', '--omit=dev', '--audit-level=high', '--json'], { cwd: dir, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  if (r.error) return { status: 'skipped', lines: [`advisory check skipped: npm audit could not run (${r.error.code ?? r.error.message})`] };
  let report;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    return { status: 'skipped', lines: [`advisory check skipped: npm audit gave no report (exit ${r.status}: ${firstLine(r.stderr)})`] };
  }
  const counts = report?.metadata?.vulnerabilities;
  if (!counts || typeof counts !== 'object') {
    const why = report?.message ?? report?.error?.summary ?? firstLine(r.stderr);
    return { status: 'skipped', lines: [`advisory check skipped: the npm advisory endpoint could not be reached (${why || `exit ${r.status}`})`] };
  }
  const serious = Object.entries(report.vulnerabilities ?? {}).filter(([, v]) => v.severity === 'high' || v.severity === 'critical');
  if ((counts.high ?? 0) + (counts.critical ?? 0) === 0 && serious.length === 0) {
    return { status: 'ok', lines: [`advisories: none high or critical in runtime dependencies (${counts.total ?? 0} lower)`] };
  }
  const lines = serious.map(([name, v]) => `${v.severity} advisory in ${name} ${v.range ?? ''}: ${(v.via ?? []).map((x) => (typeof x === 'string' ? x : x.title ?? x.url)).join('; ')}${v.fixAvailable ? ' (a fix is available)' : ''}`);
  return { status: 'fail', lines: lines.length ? lines : [`${counts.high ?? 0} high and ${counts.critical ?? 0} critical advisories (see npm audit)`] };
}

// --- internal ---

function readJson(path, problems) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    problems.push(`${path} cannot be read as JSON (${e.code ?? e.message})`);
    return undefined;
  }
}

function firstLine(s) {
  return String(s ?? '').split('\n').find((l) => l.trim()) ?? '';
}

function main(argv) {
  const at = argv.indexOf('--dir');
  const dir = resolve(at >= 0 ? argv[at + 1] ?? '.' : join(dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = checkPins(dir);
  if (problems.length) {
    for (const p of problems) process.stderr.write(`audit_deps: ${p}\n`);
    process.stderr.write(`audit_deps: FAILED, ${problems.length} problem(s) with pinned versions or the lockfile\n`);
    return 1;
  }
  process.stdout.write('audit_deps: every dependency is pinned exactly and locked from registry.npmjs.org with sha512 integrity\n');
  if (argv.includes('--no-advisories')) return 0;
  const adv = checkAdvisories(dir);
  for (const l of adv.lines) (adv.status === 'fail' ? process.stderr : process.stdout).write(`audit_deps: ${l}\n`);
  if (adv.status === 'fail') {
    process.stderr.write('audit_deps: FAILED, high or critical advisories in runtime dependencies\n');
    return 1;
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
