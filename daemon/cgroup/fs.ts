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
}

/** statfs(2) f_type of cgroup2. */
export const CGROUP2_SUPER_MAGIC = 0x63677270;

export const nodeFs: CgroupFs = {
  read: (p) => fs.readFileSync(p, 'utf8'),
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
