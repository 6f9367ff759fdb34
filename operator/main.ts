// Placeholder until the operator component lands; replaced by its own implementation.
export async function main(_argv: string[]): Promise<number> {
  process.stderr.write('cpuburst: the operator command is not built yet\n');
  return 2;
}
