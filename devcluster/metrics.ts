// Prometheus metrics of the emulator itself (served on /metrics like a real API server).
import { Counter, Gauge, Registry } from 'prom-client';

export interface DevClusterMetrics {
  registry: Registry;
  request(method: string, code: number): void;
}

export function createMetrics(sample: {
  watchers: () => number;
  resourceVersion: () => number;
  injected: () => number;
}): DevClusterMetrics {
  const registry = new Registry();
  const requests = new Counter({
    name: 'cpuburst_devcluster_requests_total',
    help: 'API requests served, by HTTP method and status code',
    labelNames: ['method', 'code'],
    registers: [registry],
  });
  new Gauge({
    name: 'cpuburst_devcluster_watchers',
    help: 'Open watch connections',
    registers: [registry],
    collect() {
      this.set(sample.watchers());
    },
  });
  new Gauge({
    name: 'cpuburst_devcluster_resource_version',
    help: 'Current global resourceVersion (one per write)',
    registers: [registry],
    collect() {
      this.set(sample.resourceVersion());
    },
  });
  new Gauge({
    name: 'cpuburst_devcluster_injected_faults',
    help: 'Requests failed by fault injection since start',
    registers: [registry],
    collect() {
      this.set(sample.injected());
    },
  });
  return { registry, request: (method, code) => requests.inc({ method, code: String(code) }) };
}
