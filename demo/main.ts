// Placeholder until the demo component lands; replaced by its own implementation.
export async function main(_argv: string[]): Promise<number> {
  process.stderr.write('cpuburst: the demo command is not built yet\n');
  return 2;
}
