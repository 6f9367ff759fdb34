// The operator's object graph: the MQTT bus feeds the controller, the controller publishes through the
// bus. One place builds it, so the binary (main.ts) and the tests run the same wiring.
import type { Logger } from '../common/log.js';
import { DecisionBus } from './bus.js';
import { Controller, type ControllerOptions } from './controller.js';
import type { KubeApis } from './kube/client.js';
import type { OperatorMetrics } from './metrics.js';

export interface WiringOptions
  extends Omit<ControllerOptions, 'apis' | 'publisher' | 'log' | 'metrics' | 'identity'> {
  apis: KubeApis;
  log: Logger;
  metrics: OperatorMetrics;
  /** This replica: the Event reporting instance and the MQTT client id suffix. */
  identity: string;
  mqtt: { url: string; username?: string; password?: string; tokenFile?: string; caFile?: string };
}

export interface OperatorWiring {
  bus: DecisionBus;
  controller: Controller;
  /** Takes the lead once the retained documents have arrived (so versions continue monotonically). */
  lead(): Promise<void>;
}

export function wireOperator(o: WiringOptions): OperatorWiring {
  const { apis, log, metrics, identity, mqtt, ...controllerOpts } = o;
  let controller!: Controller;
  let everConnected = false;
  const bus = new DecisionBus({
    url: mqtt.url,
    username: mqtt.username,
    password: mqtt.password,
    tokenFile: mqtt.tokenFile,
    caFile: mqtt.caFile,
    clientId: `cpuburst-operator-${identity}`.slice(0, 128),
    log,
    onAgentMessage: (m) => controller.onAgentMessage(m),
    onRetainedDecision: (node, doc) => controller.onRetainedDecision(node, doc),
    onInvalid: (kind) => controller.onInvalidAgentMessage(kind),
    onConnectionChange: (up) => {
      // The first connect is the start; any later one may follow a broker that lost retained state.
      if (up && everConnected) controller.onBrokerReconnected();
      if (up) everConnected = true;
    },
  });
  controller = new Controller({ ...controllerOpts, apis, publisher: bus, log, metrics, identity });
  return {
    bus,
    controller,
    lead: () => bus.retainedSettled.then(() => controller.setLeader(true)),
  };
}
