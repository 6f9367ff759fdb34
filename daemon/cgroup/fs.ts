// The one adapter between the agent and a cgroup filesystem. Synchronous on purpose: cgroupfs
// operations are in-memory kernel calls, and a write plan must run in order without interleaving.
// Tests inject a fake whose write() enforces the kernel's rules (test/support/fake-cgroupfs.ts).
import fs from 'node:fs';

export interface CgroupFs {
  read(path: string): string;
  write(path: string, value: string): void;
  exists(path: string): boolean;
  mkdir(path: string): void;
  rmdir(path: string): void;
  /** Names of the subdirectories of `path`. */
  listDirs(path: string): string[];
  /** True when `path` is the root of a cgroup v2 (unified) mount. */
  isCgroup2(path: string): boolean;
  /**
   * Optional: the file's content as one integer, or null when it is not a plain integer (callers
   * then read() it as text). Saves building a string for the four single-number files of a cgroup.
   */
  readInt?(path: string): number | null;
  /**
   * Optional: called once at the end of every agent round; releases what is held for paths not read
   * since the previous call (nodeFs: cached file descriptors of cgroups that went away or left).
   */
  sweep?(): void;
}

/** statfs(2) f_type of cgroup2. */
export const CGROUP2_SUPER_MAGIC = 0x63677270;
/** statfs(2) f_type of a cgroup v1 hierarchy. */
export const CGROUP_SUPER_MAGIC = 0x27e0eb;

const READ_BUF = 8192;

/**
 * Reads cgroupfs files through descriptors kept open across rounds: one pread(2) at offset 0 instead
 * of open + read + read + close (the agent reads ~13 files per pod every second; this is 4-7× less
 * CPU per read). A kernfs file re-generates its content on every read from offset 0, and a descriptor
 * of a removed cgroup fails with ENODEV (even if a cgroup of the same name is created again), so a
 * failing descriptor is dropped and the path re-opened: a cgroup that is gone still reads as ENOENT.
 * Only files on a cgroup filesystem are cached: a regular file (the fake cgroupfs of the tests) may be
 * replaced by rename, which an open descriptor would never see. Descriptors not read between two
 * sweep() calls are closed, and at most `max` are held.
 */
export class CgroupFileReader {
  private readonly fds = new Map<string, { fd: number; used: boolean }>();
  /** Directory → lies on a cgroup filesystem (statfs once per directory). */
  private readonly kernfs = new Map<string, { yes: boolean; used: boolean }>();
  private readonly buf = Buffer.allocUnsafe(READ_BUF);

  constructor(readonly max = defaultMaxFds()) {}

  get open(): number {
    return this.fds.size;
  }

  read(p: string): string {
    const e = this.fds.get(p);
    if (e) {
      try {
        const n = fs.readSync(e.fd, this.buf, 0, READ_BUF, 0);
        if (n < READ_BUF) {
          e.used = true;
          return this.buf.toString('utf8', 0, n);
        }
      } catch {
        /* ENODEV: the cgroup was removed; re-open below (ENOENT if it is gone) */
      }
      this.drop(p, e.fd);
    } else if (this.fds.size < this.max && this.onCgroupFs(p)) {
      const fd = fs.openSync(p, 'r');
      let n: number;
      try {
        n = fs.readSync(fd, this.buf, 0, READ_BUF, 0);
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
      if (n < READ_BUF) {
        this.fds.set(p, { fd, used: true });
        return this.buf.toString('utf8', 0, n);
      }
      fs.closeSync(fd);
    }
    return fs.readFileSync(p, 'utf8');
  }

  /**
   * A file holding one integer (quota, period, burst, cpuacct.usage), parsed from the bytes without
   * building a string; null when the content is not a plain integer (the caller reads it as text and
   * reports it).
   */
  readInt(p: string): number | null {
    const e = this.fds.get(p);
    if (!e) return parseIntText(this.read(p));
    let n: number;
    try {
      n = fs.readSync(e.fd, this.buf, 0, READ_BUF, 0);
    } catch {
      return parseIntText(this.read(p)); // re-opens (or throws ENOENT) like read()
    }
    if (n >= READ_BUF) return parseIntText(this.read(p));
    e.used = true;
    return parseIntBytes(this.buf, n);
  }

  /** Closes descriptors (and forgets directories) not used since the previous sweep. */
  sweep(): void {
    // forEach: no per-entry iterator objects (this runs over every descriptor once a round).
    this.fds.forEach((e, p) => {
      if (e.used) e.used = false;
      else this.drop(p, e.fd);
    });
    this.kernfs.forEach((k, d) => {
      if (k.used) k.used = false;
      else this.kernfs.delete(d);
    });
  }

  closeAll(): void {
    for (const [p, e] of this.fds) this.drop(p, e.fd);
    this.kernfs.clear();
  }

  private drop(p: string, fd: number): void {
    this.fds.delete(p);
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
  }

  private onCgroupFs(p: string): boolean {
    const dir = p.slice(0, p.lastIndexOf('/')) || '/';
    let k = this.kernfs.get(dir);
    if (!k) {
      let yes = false;
      try {
        const t = Number(fs.statfsSync(dir).type);
        yes = t === CGROUP_SUPER_MAGIC || t === CGROUP2_SUPER_MAGIC;
      } catch {
        /* a missing dir: read normally (and fail with ENOENT there) */
      }
      k = { yes, used: true };
      if (yes || this.kernfs.size < 4 * this.max) this.kernfs.set(dir, k);
    }
    k.used = true;
    return k.yes;
  }
}

const isWs = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;

/** `^\s*-?\d+\s*$` as a number (≤ 15 digits, exact), else null. */
export function parseIntBytes(buf: Uint8Array, n: number): number | null {
  let i = 0;
  while (i < n && isWs(buf[i]!)) i++;
  let neg = false;
  if (i < n && buf[i] === 45) {
    neg = true;
    i++;
  }
  let v = 0;
  let digits = 0;
  while (i < n && buf[i]! >= 48 && buf[i]! <= 57) {
    v = v * 10 + (buf[i]! - 48);
    digits++;
    i++;
  }
  while (i < n && isWs(buf[i]!)) i++;
  if (i !== n || digits === 0 || digits > 15) return null;
  return neg ? -v : v;
}

function parseIntText(text: string): number | null {
  const t = text.trim();
  return /^-?\d{1,15}$/.test(t) ? Number(t) : null;
}

/** A quarter of the soft RLIMIT_NOFILE (the rest is for everything else), at most 8192. */
function defaultMaxFds(): number {
  try {
    const line = fs
      .readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const field = line?.split(/\s{2,}/)[1];
    if (field === 'unlimited') return 8192;
    const soft = Number(field);
    if (Number.isFinite(soft) && soft > 0) return Math.min(8192, Math.floor(soft / 4));
  } catch {
    /* no procfs */
  }
  return 256;
}

const reader = new CgroupFileReader();

export const nodeFs: CgroupFs = {
  read: (p) => reader.read(p),
  readInt: (p) => reader.readInt(p),
  sweep: () => reader.sweep(),
  write: (p, v) => {
    // No O_CREAT semantics wanted: cgroupfs files exist or the cgroup is gone (ENOENT).
    const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
    try {
      fs.writeSync(fd, v);
    } finally {
      fs.closeSync(fd);
    }
  },
  exists: (p) => fs.existsSync(p),
  mkdir: (p) => fs.mkdirSync(p),
  rmdir: (p) => fs.rmdirSync(p),
  listDirs: (p) => {
    try {
      return fs
        .readdirSync(p, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch {
      return [];
    }
  },
  isCgroup2: (p) => {
    try {
      if (Number(fs.statfsSync(p).type) === CGROUP2_SUPER_MAGIC) return true;
    } catch {
      /* fall through to the file check */
    }
    return fs.existsSync(`${p}/cgroup.controllers`);
  },
};

export type WriteErrorReason = 'KernelRefused' | 'CgroupNotFound' | 'PermissionDenied' | 'WriteFailed';

/** Maps an errno to the reason the agent reports (ack errors, status, metrics). */
export function classifyError(err: unknown): { reason: WriteErrorReason; code: string } {
  const code = (err as NodeJS.ErrnoException)?.code ?? 'EUNKNOWN';
  if (code === 'EINVAL' || code === 'ERANGE') return { reason: 'KernelRefused', code };
  if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENOTDIR') return { reason: 'CgroupNotFound', code };
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return { reason: 'PermissionDenied', code };
  return { reason: 'WriteFailed', code };
}

/** An Error carrying an errno code, as node's fs throws; the fake cgroupfs throws these too. */
export function errnoError(code: string, message: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}
