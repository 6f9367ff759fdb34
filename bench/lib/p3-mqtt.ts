// A minimal MQTT 3.1.1 client on a raw socket for the broker bench (P3). Outgoing packets are
// built with mqtt-packet; the receive path is a small frame scanner (CONNACK, SUBACK, PUBLISH,
// PUBACK) because a full parser per message would make the generator, not the broker, the
// bottleneck. Timestamps are CLOCK_MONOTONIC microseconds, which are the same in every process.
import net from 'node:net';
import mqttPacket from 'mqtt-packet';

/** Microseconds on the system-wide monotonic clock (comparable across processes). */
export function nowUs(): number {
  return Number(process.hrtime.bigint()) / 1000;
}

export interface ConnectOptions {
  host: string;
  port: number;
  localAddress?: string;
  clientId: string;
  username?: string;
  password?: string;
  clean: boolean;
  keepalive: number;
  timeoutMs?: number;
}

const PUBACK = [0x40, 0x02];

/** A frame template: one PUBLISH with the offsets of its packet id and payload. */
export interface PublishTemplate {
  frame: Buffer;
  payloadAt: number;
  qos: 0 | 1;
}

export function publishTemplate(topic: string, payloadBytes: number, qos: 0 | 1): PublishTemplate {
  const payload = Buffer.alloc(Math.max(8, payloadBytes), 0x61);
  const frame = mqttPacket.generate({
    cmd: 'publish',
    topic,
    payload,
    qos,
    dup: false,
    retain: false,
    ...(qos ? { messageId: 1 } : {}),
  } as mqttPacket.IPublishPacket);
  return { frame, payloadAt: frame.length - payload.length, qos };
}

/** Writes `count` copies of the template into one buffer, each stamped with the send time. */
export function stampBatch(t: PublishTemplate, count: number, nextId: () => number): Buffer {
  const n = t.frame.length;
  const out = Buffer.allocUnsafe(n * count);
  const at = nowUs();
  for (let i = 0; i < count; i++) {
    const off = i * n;
    t.frame.copy(out, off);
    out.writeDoubleLE(at, off + t.payloadAt);
    if (t.qos) out.writeUInt16BE(nextId(), off + t.payloadAt - 2);
  }
  return out;
}

export class RawClient {
  readonly sock: net.Socket;
  private rest: Buffer | null = null;
  private waiting: { connack?: (rc: number) => void; suback?: (codes: number[]) => void } = {};
  /** Called per PUBLISH received with the send timestamp (µs) carried in the payload. */
  onPublish: ((sentUs: number) => void) | null = null;
  onPuback: ((id: number) => void) | null = null;
  /** Whether to answer QoS 1 PUBLISHes with PUBACK (subscribers do). */
  ackPublishes = true;
  closed = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => this.scan(chunk));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.closed = true;
    });
  }

  /** Opens the socket, sends CONNECT and resolves on CONNACK 0 (rejects on refusal or timeout). */
  static connect(o: ConnectOptions): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: o.host, port: o.port, localAddress: o.localAddress });
      const c = new RawClient(sock);
      const timer = setTimeout(() => fail(new Error('CONNACK timeout')), o.timeoutMs ?? 30_000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        sock.destroy();
        reject(err);
      };
      sock.once('error', fail);
      sock.once('close', () => fail(new Error('closed before CONNACK')));
      c.waiting.connack = (rc) => {
        clearTimeout(timer);
        sock.removeListener('error', fail);
        sock.removeAllListeners('close');
        sock.on('close', () => {
          c.closed = true;
        });
        if (rc === 0) resolve(c);
        else fail(new Error(`CONNACK return code ${rc}`));
      };
      sock.once('connect', () => {
        sock.write(
          mqttPacket.generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: o.clean,
            clientId: o.clientId,
            keepalive: o.keepalive,
            ...(o.username !== undefined ? { username: o.username } : {}),
            ...(o.password !== undefined ? { password: Buffer.from(o.password) } : {}),
          } as mqttPacket.IConnectPacket),
        );
      });
    });
  }

  subscribe(topic: string, qos: 0 | 1, messageId = 1): Promise<number[]> {
    return new Promise((resolve) => {
      this.waiting.suback = resolve;
      this.sock.write(
        mqttPacket.generate({
          cmd: 'subscribe',
          messageId,
          subscriptions: [{ topic, qos }],
        } as mqttPacket.ISubscribePacket),
      );
    });
  }

  /** Sends a DISCONNECT and ends the socket. */
  end(): void {
    if (this.closed) return;
    this.sock.end(Buffer.from([0xe0, 0x00]));
  }

  /** Tears the connection down with a RST (no TIME_WAIT left on the generator's ports). */
  reset(): void {
    if (!this.closed) this.sock.resetAndDestroy();
    this.closed = true;
  }

  private scan(chunk: Buffer): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = null;
    let pos = 0;
    let acks: number[] | null = null;
    while (buf.length - pos >= 2) {
      const head = buf[pos]!;
      // remaining length: up to 4 bytes of 7-bit groups
      let len = 0;
      let mul = 1;
      let i = pos + 1;
      let complete = false;
      for (; i < buf.length && i < pos + 5; i++) {
        const b = buf[i]!;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if (!(b & 0x80)) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete || buf.length - i < len) break;
      const type = head >> 4;
      const body = i;
      if (type === 3) {
        const qos = (head >> 1) & 3;
        const topicLen = buf.readUInt16BE(body);
        let p = body + 2 + topicLen;
        if (qos > 0) {
          const id = buf.readUInt16BE(p);
          p += 2;
          if (this.ackPublishes) {
            acks ??= [];
            acks.push(id);
          }
        }
        if (this.onPublish && body + len - p >= 8) this.onPublish(buf.readDoubleLE(p));
      } else if (type === 4) {
        this.onPuback?.(buf.readUInt16BE(body));
      } else if (type === 2) {
        const cb = this.waiting.connack;
        this.waiting.connack = undefined;
        cb?.(buf[body + 1]!);
      } else if (type === 9) {
        const cb = this.waiting.suback;
        this.waiting.suback = undefined;
        cb?.([...buf.subarray(body + 2, body + len)]);
      }
      pos = body + len;
    }
    if (pos < buf.length) this.rest = Buffer.from(buf.subarray(pos));
    if (acks) {
      const out = Buffer.allocUnsafe(acks.length * 4);
      for (let k = 0; k < acks.length; k++) {
        out[k * 4] = PUBACK[0]!;
        out[k * 4 + 1] = PUBACK[1]!;
        out.writeUInt16BE(acks[k]!, k * 4 + 2);
      }
      this.sock.write(out);
    }
  }
}
