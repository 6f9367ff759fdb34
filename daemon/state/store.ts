// Ownership: the original value of every cgroup field the agent changes and the last value it
// wrote, persisted atomically (tmp + rename) under --state-dir so a restart keeps them. Restore
// puts back only what the agent wrote; a value someone else changed since is left alone.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../common/log.js';
import type { DecisionDocument } from '../../protocol/index.js';
import { decode } from '../../protocol/index.js';

export type OwnedFieldName = 'quota' | 'period' | 'burst';

export interface OwnedField {
  original: number;
  /** Last value the agent wrote (equals original until the first write). */
  written: number;
  /** Value about to be written (set before a plan runs, so a crash mid-plan is not a conflict). */
  pending?: number;
}

export interface OwnedCgroup {
  podUid: string;
  podDir: string;
  role: 'pod' | 'container';
  fields: Partial<Record<OwnedFieldName, OwnedField>>;
}

interface StateFile {
  apiVersion: 'cpuburst.io/agent-state/v1';
  cgroups: Record<string, OwnedCgroup>;
}

const STATE_FILE = 'ownership.json';
const DOC_FILE = 'decisions.json';

export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export class StateStore {
  private cgroups = new Map<string, OwnedCgroup>();
  private dirty = false;
  /** uid → dirs, rebuilt lazily after any change (rounds look pods up by uid). */
  private index: Map<string, string[]> | null = null;

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Loads persisted ownership; a corrupt file is kept aside (never silently dropped). */
  load(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, STATE_FILE);
    if (!fs.existsSync(file)) return;
    try {
      const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as StateFile;
      if (parsed.apiVersion !== 'cpuburst.io/agent-state/v1' || typeof parsed.cgroups !== 'object')
        throw new Error('unknown state format');
      this.cgroups = new Map(Object.entries(parsed.cgroups));
      this.index = null;
    } catch (err) {
      const aside = `${file}.corrupt-${Date.now()}`;
      fs.renameSync(file, aside);
      this.log.error('Ownership state unreadable, moved aside', {
        file,
        movedTo: aside,
        error: (err as Error).message,
      });
    }
  }

  save(): void {
    if (!this.dirty) return;
    const body: StateFile = {
      apiVersion: 'cpuburst.io/agent-state/v1',
      cgroups: Object.fromEntries(this.cgroups),
    };
    writeFileAtomic(path.join(this.dir, STATE_FILE), `${JSON.stringify(body)}\n`);
    this.dirty = false;
  }

  get(dir: string): OwnedCgroup | undefined {
    return this.cgroups.get(dir);
  }

  /** The owned dirs (a copy: callers may forget entries while iterating). */
  dirs(): string[] {
    return [...this.cgroups.keys()];
  }

  entries(): Array<[string, OwnedCgroup]> {
    return [...this.cgroups];
  }

  private byPod(): Map<string, string[]> {
    if (!this.index) {
      this.index = new Map();
      for (const [dir, c] of this.cgroups) {
        const l = this.index.get(c.podUid);
        if (l) l.push(dir);
        else this.index.set(c.podUid, [dir]);
      }
    }
    return this.index;
  }

  podUids(): Set<string> {
    return new Set(this.byPod().keys());
  }

  /** The pod's owned dirs, in no particular order and not copied (the round scans this per pod). */
  ownedDirs(uid: string): readonly string[] {
    return this.byPod().get(uid) ?? [];
  }

  /** The pod's owned cgroups, the pod dir first. */
  dirsOfPod(uid: string): Array<[string, OwnedCgroup]> {
    const out = (this.byPod().get(uid) ?? []).map((d) => [d, this.cgroups.get(d)!] as [string, OwnedCgroup]);
    return out.sort((a, b) => (a[1].role === 'pod' ? -1 : 0) - (b[1].role === 'pod' ? -1 : 0));
  }

  /** Takes ownership of a field before its first write (original = the value found). */
  claim(
    dir: string,
    owner: Omit<OwnedCgroup, 'fields'>,
    field: OwnedFieldName,
    current: number,
    pending: number,
  ): void {
    let c = this.cgroups.get(dir);
    if (!c) {
      c = { ...owner, fields: {} };
      this.cgroups.set(dir, c);
      this.index = null;
    }
    const f = c.fields[field];
    if (!f) c.fields[field] = { original: current, written: current, pending };
    else f.pending = pending;
    this.dirty = true;
  }

  wrote(dir: string, field: OwnedFieldName, value: number): void {
    const f = this.cgroups.get(dir)?.fields[field];
    if (!f) return;
    f.written = value;
    delete f.pending;
    this.dirty = true;
  }

  /** Another writer changed the field: its value becomes the baseline to restore to. */
  adopt(dir: string, field: OwnedFieldName, value: number): void {
    const f = this.cgroups.get(dir)?.fields[field];
    if (!f) return;
    f.original = value;
    f.written = value;
    delete f.pending;
    this.dirty = true;
  }

  forgetField(dir: string, field: OwnedFieldName): void {
    const c = this.cgroups.get(dir);
    if (!c) return;
    delete c.fields[field];
    if (Object.keys(c.fields).length === 0) this.cgroups.delete(dir);
    this.index = null;
    this.dirty = true;
  }

  forget(dir: string): void {
    if (this.cgroups.delete(dir)) {
      this.dirty = true;
      this.index = null;
    }
  }

  saveDocument(doc: DecisionDocument): void {
    fs.mkdirSync(this.dir, { recursive: true });
    writeFileAtomic(path.join(this.dir, DOC_FILE), `${JSON.stringify(doc)}\n`);
  }

  loadDocument(): DecisionDocument | null {
    const file = path.join(this.dir, DOC_FILE);
    if (!fs.existsSync(file)) return null;
    const d = decode.decisions(fs.readFileSync(file));
    if (!d.ok) {
      this.log.error('Persisted decision document invalid, ignoring it', { file, error: d.error });
      return null;
    }
    return d.value;
  }
}

/** True when `current` is what the agent last wrote (or was about to write). */
export function isOurs(f: OwnedField, current: number): boolean {
  return current === f.written || (f.pending !== undefined && current === f.pending);
}
