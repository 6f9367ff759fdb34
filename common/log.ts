// Structured JSON logs shared by every component: winston, one line per event,
// `component` and (where known) `node` on every line, Kubernetes-style messages.
import { Writable } from 'node:stream';
import winston from 'winston';

export type Logger = winston.Logger;

export interface LoggerOptions {
  component: string;
  node?: string;
  level?: string;
  silent?: boolean;
}

const jsonFormat = winston.format.combine(
  winston.format.timestamp(),
  winston.format.errors({ stack: true }),
  winston.format.json(),
);

export function createLogger(opts: LoggerOptions): Logger {
  const defaultMeta: Record<string, string> = { component: opts.component };
  if (opts.node) defaultMeta.node = opts.node;
  return winston.createLogger({
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    silent: opts.silent ?? false,
    defaultMeta,
    format: jsonFormat,
    transports: [new winston.transports.Console()],
  });
}

/** Drops everything: for tests that assert on behaviour, not on log lines. */
export function silentLogger(component = 'test'): Logger {
  return createLogger({ component, silent: true });
}

/** Keeps entries in memory so tests can assert that a clear log line was written. */
export function memoryLogger(component = 'test'): { log: Logger; lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = [];
  const sink = new Writable({
    objectMode: true,
    write(info, _enc, cb) {
      lines.push(info);
      cb();
    },
  });
  const log = winston.createLogger({
    level: 'debug',
    defaultMeta: { component },
    format: jsonFormat,
    transports: [new winston.transports.Stream({ stream: sink })],
  });
  return { log, lines };
}
