// The container image: hadolint-style rules on the Dockerfile, and its build steps run for real by
// scripts/image-check.sh (no Docker engine here): npm ci, tsc, npm ci --omit=dev, then
// `cpuburst --help` and every subcommand's --help from the pruned tree.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../support/cli.js';
import { lintDockerfile, parseDockerfile } from './dockerfile-lint.js';
import { run } from './helm.js';

const dockerfile = readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');

describe('Dockerfile', () => {
  it('passes the hadolint-style rules', () => {
    assert.deepEqual(lintDockerfile(dockerfile), []);
  });

  it('the rules catch what they claim to', () => {
    const rules = (text: string) => lintDockerfile(text).map((f) => f.rule);
    assert.deepEqual(rules('FROM node\nRUN npm install\nCMD node x.js\n'), [
      'DL3006',
      'CB001',
      'DL3025',
      'CB004',
      'DL3002',
      'CB006',
      'CB007',
    ]);
    assert.ok(rules('FROM node:latest AS a\nFROM node:20-slim\nUSER root\n').includes('DL3007'));
    assert.ok(rules('FROM node:20-slim\nUSER root\n').includes('DL3002'));
    assert.ok(rules('FROM node:20-slim\nUSER node\n').includes('CB005'));
    assert.ok(
      rules('FROM node:20-slim\nADD src /src\nCOPY a b c\nRUN cd /x && curl -s u | sh\n').includes('DL3020'),
    );
    const pipe = rules('FROM node:20-slim\nWORKDIR /a\nRUN a | b\n');
    assert.ok(pipe.includes('DL4006'));
    assert.ok(rules('FROM node:20-slim\nCOPY --from=nope /x /y\n').includes('DL3022'));
    assert.ok(rules('FROM node:20-slim\nRUN apt-get install -y foo\n').includes('DL3015'));
  });

  it('copies every source folder the build compiles, and the build context ignores the rest', () => {
    const tsconfig = JSON.parse(readFileSync(path.join(REPO_ROOT, 'tsconfig.build.json'), 'utf8'));
    const copied = parseDockerfile(dockerfile)
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const src of tsconfig.include as string[])
      assert.ok(copied.includes(src), `Dockerfile does not COPY ${src}`);
    assert.ok(copied.includes('tsconfig.build.json') && copied.includes('package-lock.json'));
    const ignore = readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['.git', 'node_modules', '.tools', 'dist', 'test'])
      assert.ok(ignore.includes(p), `.dockerignore lacks ${p}`);
    for (const src of copied)
      assert.ok(!ignore.includes(src), `.dockerignore hides ${src}, which the Dockerfile copies`);
  });

  it('the chart runs the image the way the Dockerfile builds it (entrypoint cpuburst, non-root user 1000)', () => {
    const ins = parseDockerfile(dockerfile);
    assert.deepEqual(JSON.parse(ins.findLast((i) => i.keyword === 'ENTRYPOINT')!.args), ['cpuburst']);
    assert.equal(ins.findLast((i) => i.keyword === 'USER')!.args, '1000:1000');
    const values = readFileSync(path.join(REPO_ROOT, 'charts/cpuburst/values.yaml'), 'utf8');
    assert.equal(
      (values.match(/runAsUser: 1000/g) ?? []).length,
      2,
      'operator and broker run as the image user',
    );
  });

  it('scripts/image-check.sh builds the image tree and every subcommand answers --help', {
    timeout: 420_000,
  }, async (t) => {
    const started = Date.now();
    const r = await run('bash', [path.join(REPO_ROOT, 'scripts', 'image-check.sh')]);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    assert.equal(r.code, 0, `image-check failed after ${seconds}s:\n${r.stdout}\n${r.stderr}`);
    for (const c of ['agent', 'operator', 'broker', 'devcluster', 'demo']) {
      assert.match(r.stdout, new RegExp(`cpuburst ${c} --help: ok`));
    }
    t.diagnostic(`image-check took ${seconds}s`);
  });
});
