// Placeholder until the broker component lands; replaced by its own implementation.
export async function main(_argv: string[]): Promise<number> {
  process.stderr.write('cpuburst: the broker command is not built yet\n');
  return 2;
}
