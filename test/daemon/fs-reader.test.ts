// nodeFs's cached-descriptor reads (CgroupFileReader): fresh values on every read, a removed cgroup
// reads as ENOENT (never a stale value), regular files are never cached (a fake tree's file may be
// replaced by rename), idle descriptors are closed by sweep(), and the cap is kept.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CgroupFileReader, parseIntBytes } from '../../daemon/cgroup/fs.js';
import { CPU, realCgroupSkipReason, removeTree, testParentName } from './real-cgroup.js';

describe('parseIntBytes (single-integer cgroup files without a string)', () => {
  const p = (t: string) => parseIntBytes(Buffer.from(t), Buffer.byteLength(t));
  it('accepts what the text parser accepts, and nothing else', () => {
    assert.equal(p('100000\n'), 100000);
    assert.equal(p('-1\n'), -1);
    assert.equal(p('  42 \t\n'), 42);
    assert.equal(p('0'), 0);
    for (const bad of ['', '\n', '-', '12a', '1 2', 'max 100000', '1.5', '1234567890123456'])
      assert.equal(p(bad), null, JSON.stringify(bad));
  });
});

describe('CgroupFileReader on regular files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpuburst-reader-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads through readFileSync, sees a file replaced by rename, holds no descriptor', () => {
    const r = new CgroupFileReader(16);
    const f = path.join(dir, 'cpu.cfs_quota_us');
    fs.writeFileSync(f, '1000\n');
    assert.equal(r.read(f), '1000\n');
    fs.writeFileSync(`${f}.tmp`, '2000\n');
    fs.renameSync(`${f}.tmp`, f);
    assert.equal(r.read(f), '2000\n');
    assert.equal(r.readInt(f), 2000);
    fs.writeFileSync(f, 'max\n');
    assert.equal(r.readInt(f), null, 'not an integer: the caller reads the text');
    assert.equal(r.open, 0);
    fs.rmSync(f);
    assert.throws(() => r.read(f), { code: 'ENOENT' });
  });
});

const skip = realCgroupSkipReason();
describe('CgroupFileReader on the real cgroup v1 cpu controller', { skip: skip ?? false }, () => {
  const parent = path.join(CPU, testParentName());
  after(() => removeTree(parent, CPU));

  it('keeps a descriptor, reads fresh values, and never a removed cgroup’s', () => {
    const r = new CgroupFileReader(16);
    const cg = path.join(parent, 'reader');
    fs.mkdirSync(cg, { recursive: true });
    const f = path.join(cg, 'cpu.cfs_quota_us');
    assert.equal(r.read(f).trim(), '-1');
    assert.equal(r.open, 1);
    fs.writeFileSync(f, '50000');
    assert.equal(r.read(f).trim(), '50000');
    assert.equal(r.readInt(f), 50000);
    assert.equal(r.open, 1);
    fs.rmdirSync(cg);
    assert.throws(() => r.readInt(f), { code: 'ENOENT' });
    assert.throws(() => r.read(f), { code: 'ENOENT' });
    assert.equal(r.open, 0);
    // Re-created under the same name: the old descriptor is dead (ENODEV); the new cgroup is read.
    fs.mkdirSync(cg);
    assert.equal(r.read(f).trim(), '-1');
    r.closeAll();
    fs.rmdirSync(cg);
  });

  it('sweep() closes descriptors not read since the previous sweep; the cap is kept', () => {
    const r = new CgroupFileReader(2);
    const cg = path.join(parent, 'sweep');
    fs.mkdirSync(cg, { recursive: true });
    const files = ['cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cpu.stat'].map((n) => path.join(cg, n));
    for (const f of files) r.read(f);
    assert.equal(r.open, 2, 'at most max descriptors');
    assert.match(r.read(files[2]!), /nr_periods/, 'beyond the cap a file is still read');
    r.sweep(); // all used since the start: kept, marked unused
    assert.equal(r.open, 2);
    r.read(files[0]!);
    r.sweep(); // files[1] was not read since the last sweep
    assert.equal(r.open, 1);
    r.sweep();
    assert.equal(r.open, 0);
    r.closeAll();
    fs.rmdirSync(cg);
  });
});
