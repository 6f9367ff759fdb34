// A hand-written progress bar on stderr (no dependency); silent when disabled (--json) or not a TTY
// fallback: one line per step so logs stay readable in CI.
export interface Progress {
  phase(label: string, seconds: number): { tick(elapsedS: number): void; done(): void };
  note(msg: string): void;
}

export function createProgress(enabled: boolean, out: NodeJS.WriteStream = process.stderr): Progress {
  const tty = Boolean(out.isTTY);
  return {
    phase(label, seconds) {
      if (!enabled) return { tick() {}, done() {} };
      if (!tty) out.write(`… ${label} (${seconds}s)\n`);
      const draw = (elapsed: number) => {
        if (!tty) return;
        const width = 30;
        const frac = Math.min(1, seconds > 0 ? elapsed / seconds : 1);
        const filled = Math.round(frac * width);
        out.write(
          `\r${label.padEnd(36)} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${Math.floor(elapsed)}/${seconds}s `,
        );
      };
      return {
        tick: draw,
        done() {
          if (tty) {
            draw(seconds);
            out.write('\n');
          }
        },
      };
    },
    note(msg) {
      if (enabled) out.write(`${msg}\n`);
    },
  };
}
