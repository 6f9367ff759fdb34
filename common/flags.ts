// One small flag parser for every subcommand: each flag has an env-var twin and a help line,
// so `cpuburst <cmd> --help` documents exactly what the code reads.
export type FlagType = 'string' | 'int' | 'bool' | 'list';

export interface FlagSpec {
  name: string; // kebab-case, without the leading dashes
  env?: string;
  type: FlagType;
  default?: string | number | boolean | string[];
  help: string;
}

export type FlagValues = Record<string, string | number | boolean | string[] | undefined>;

export class FlagError extends Error {}

function camel(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function convert(spec: FlagSpec, raw: string, source: string): string | number | boolean | string[] {
  switch (spec.type) {
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new FlagError(`${source}: expected an integer, got "${raw}"`);
      return Number.parseInt(raw, 10);
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on', ''].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new FlagError(`${source}: expected true or false, got "${raw}"`);
    }
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    default:
      return raw;
  }
}

/**
 * Parses `argv` against `specs`. Precedence: flag > env > default. Returns camelCased keys.
 * Unknown flags are an error (a typo must not silently fall back to a default).
 */
export function parseFlags(
  specs: FlagSpec[],
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { values: FlagValues; help: boolean; rest: string[] } {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: FlagValues = {};
  const rest: string[] = [];
  let help = false;
  for (const s of specs) {
    const fromEnv = s.env ? env[s.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== '') values[camel(s.name)] = convert(s, fromEnv, `env ${s.env}`);
    else if (s.default !== undefined) values[camel(s.name)] = s.default;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      rest.push(arg);
      continue;
    }
    let [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    let negated = false;
    let spec = byName.get(name);
    if (!spec && name.startsWith('no-') && byName.get(name.slice(3))?.type === 'bool') {
      spec = byName.get(name.slice(3));
      negated = true;
      name = name.slice(3);
    }
    if (!spec) throw new FlagError(`unknown flag --${name} (see --help)`);
    let raw: string;
    if (spec.type === 'bool') raw = negated ? 'false' : (inline ?? 'true');
    else if (inline !== undefined) raw = inline;
    else {
      const next = argv[++i];
      if (next === undefined) throw new FlagError(`flag --${name} needs a value`);
      raw = next;
    }
    values[camel(name)] = convert(spec, raw, `flag --${name}`);
  }
  return { values, help, rest };
}

export function formatHelp(usage: string, summary: string, specs: FlagSpec[]): string {
  const rows = specs.map((s) => {
    const left = `  --${s.name}${s.type === 'bool' ? '' : ` <${s.type === 'int' ? 'n' : 'value'}>`}`;
    const extra = [
      s.env ? `env ${s.env}` : '',
      s.default !== undefined && s.default !== '' ? `default ${JSON.stringify(s.default)}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    return `${left.padEnd(34)} ${s.help}${extra ? ` (${extra})` : ''}`;
  });
  return `Usage: ${usage}\n\n${summary}\n\nFlags:\n${rows.join('\n')}\n  --help                             show this help\n`;
}

/** The log-level flag every long-running component takes. */
export const LOG_LEVEL_FLAG: FlagSpec = {
  name: 'log-level',
  env: 'LOG_LEVEL',
  type: 'string',
  default: 'info',
  help: 'error, warn, info or debug',
};
