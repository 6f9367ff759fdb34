// hadolint-style checks for our Dockerfile, in TypeScript: no hadolint is installable here (not in
// Debian bookworm; the npm "hadolint" package only wraps a binary it would download). Rule ids follow
// hadolint's where one exists (DLxxxx); CB* rules are this project's own.
export interface Instruction {
  line: number;
  keyword: string;
  args: string;
}

export interface Finding {
  rule: string;
  line: number;
  message: string;
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let l = lines[i]!;
    if (/^\s*(#|$)/.test(l)) continue;
    while (/\\\s*$/.test(l) && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue;
      l = `${l.replace(/\\\s*$/, '')} ${next.trim()}`;
    }
    const m = /^\s*(\S+)\s*(.*)$/.exec(l)!;
    out.push({ line: start + 1, keyword: m[1]!.toUpperCase(), args: m[2]!.trim() });
  }
  return out;
}

function isJsonArray(s: string): boolean {
  try {
    const v = JSON.parse(s);
    return Array.isArray(v) && v.every((x) => typeof x === 'string');
  } catch {
    return false;
  }
}

export function lintDockerfile(text: string): Finding[] {
  const ins = parseDockerfile(text);
  const f: Finding[] = [];
  const add = (rule: string, line: number, message: string) => f.push({ rule, line, message });
  const args = new Map<string, string>();
  const stages: string[] = [];
  let workdirSet = false;
  let lastUser: Instruction | undefined;
  let finalFrom: Instruction | undefined;
  let shellPipefail = false;

  for (const i of ins) {
    switch (i.keyword) {
      case 'ARG': {
        const [k, v] = i.args.split('=', 2);
        if (k && v !== undefined && !stages.length) args.set(k, v);
        break;
      }
      case 'FROM': {
        const [image0 = '', as, name] = i.args.replace(/--platform=\S+\s*/, '').split(/\s+/);
        const image = image0.replace(/\$\{?(\w+)\}?/g, (_, k: string) => args.get(k) ?? '');
        if (!stages.includes(image0)) {
          if (!image.includes(':') && !image.includes('@'))
            add('DL3006', i.line, `Always tag the image explicitly: ${image0}`);
          else if (/:latest$/.test(image)) add('DL3007', i.line, `Using latest is prone to errors: ${image}`);
        }
        if (as?.toUpperCase() === 'AS' && name) {
          if (stages.includes(name)) add('DL3024', i.line, `FROM aliases must be unique: ${name}`);
          stages.push(name);
        } else stages.push(`#${stages.length}`);
        finalFrom = { ...i, args: image };
        workdirSet = false;
        lastUser = undefined;
        shellPipefail = false;
        break;
      }
      case 'MAINTAINER':
        add('DL4000', i.line, 'MAINTAINER is deprecated (use a LABEL)');
        break;
      case 'ADD':
        if (!/^(--\S+\s+)*\S+:\/\//.test(i.args))
          add('DL3020', i.line, 'Use COPY instead of ADD for files and folders');
        break;
      case 'WORKDIR':
        if (!i.args.startsWith('/') && !i.args.startsWith('$')) add('DL3000', i.line, 'Use absolute WORKDIR');
        workdirSet = true;
        break;
      case 'COPY': {
        const from = /--from=(\S+)/.exec(i.args)?.[1];
        if (from && !stages.includes(from) && !/[:/]/.test(from)) {
          add('DL3022', i.line, `COPY --from should reference a previously defined FROM alias: ${from}`);
        }
        const parts = i.args.replace(/--\S+\s*/g, '').split(/\s+/);
        const dest = parts[parts.length - 1] ?? '';
        if (!dest.startsWith('/') && !workdirSet)
          add('DL3045', i.line, 'COPY to a relative destination without WORKDIR set');
        if (parts.length > 2 && !dest.endsWith('/'))
          add('DL3021', i.line, 'COPY with more than 2 arguments requires the last one to end with /');
        break;
      }
      case 'SHELL':
        shellPipefail = /pipefail/.test(i.args);
        break;
      case 'USER':
        lastUser = i;
        break;
      case 'ENTRYPOINT':
      case 'CMD':
        if (!isJsonArray(i.args)) add('DL3025', i.line, `Use arguments JSON notation for ${i.keyword}`);
        break;
      case 'RUN': {
        const r = i.args;
        if (/(^|[;&|]\s*)sudo\s/.test(r)) add('DL3004', i.line, 'Do not use sudo');
        if (/(^|[;&|]\s*)cd\s/.test(r)) add('DL3003', i.line, 'Use WORKDIR to switch to a directory');
        if (/\bnpm\s+(install|i)\b/.test(r))
          add('CB001', i.line, 'Use npm ci (the lockfile) instead of npm install');
        if (/\bapt-get\s+install\b/.test(r)) {
          if (!/--no-install-recommends/.test(r))
            add('DL3015', i.line, 'Avoid additional packages: --no-install-recommends');
          if (!/rm -rf \/var\/lib\/apt\/lists/.test(r))
            add('DL3009', i.line, 'Delete the apt-get lists after installing');
        }
        if (/\bapt\s+/.test(r)) add('DL3027', i.line, 'Do not use apt, use apt-get');
        if (/[^|]\|[^|]/.test(r) && !shellPipefail && !/set -o pipefail|set -\w*o pipefail/.test(r)) {
          add('DL4006', i.line, 'Set the SHELL option -o pipefail before RUN with a pipe in it');
        }
        if (/\b(curl|wget)\b/.test(r))
          add('CB002', i.line, 'No downloads in the build: everything comes from the npm registry');
        break;
      }
    }
  }
  if (!finalFrom) add('CB003', 1, 'No FROM instruction');
  else if (!/^node:20[\w.-]*-slim$/.test(finalFrom.args)) {
    add('CB004', finalFrom.line, `The runtime stage must be node:20 slim, got ${finalFrom.args}`);
  }
  if (!lastUser) add('DL3002', ins.at(-1)?.line ?? 1, 'The runtime stage sets no USER: it would run as root');
  else if (/^(root|0)(:|$)/.test(lastUser.args)) add('DL3002', lastUser.line, 'Last USER should not be root');
  else if (!/^\d+(:\d+)?$/.test(lastUser.args)) {
    add('CB005', lastUser.line, 'Use a numeric USER so runAsNonRoot can verify it');
  }
  if (stages.length < 2)
    add('CB006', 1, 'Use a multi-stage build (build with dev dependencies, ship without)');
  if (!ins.some((i) => i.keyword === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args))) {
    add('CB007', 1, 'The runtime dependencies must come from npm ci --omit=dev');
  }
  return f;
}
