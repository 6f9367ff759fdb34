// `cpuburst demo`: the one-command local demo; `cpuburst demo kubelet` runs the mini-kubelet alone.
export async function main(argv: string[]): Promise<number | undefined> {
  if (argv[0] === 'kubelet') {
    const { main: kubeletMain } = await import('../devcluster/kubelet/main.js');
    return kubeletMain(argv.slice(1));
  }
  process.stderr.write('cpuburst demo: the orchestration is not built yet\n');
  return 2;
}
