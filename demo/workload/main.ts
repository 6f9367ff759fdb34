// Entry of the demo workload process: `node [--import tsx] demo/workload/main.(ts|js) --rate ...`.
import { runService } from './service.js';

runService(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`workload: ${(err as Error).message}\n`);
    process.exit(2);
  },
);
