// Raw MQTT frames for tests that must send what no well-behaved client library would.
import net from 'node:net';
import mqttPacket from 'mqtt-packet';

export const gen = (p: Record<string, unknown>, protocolVersion = 4): Buffer =>
  mqttPacket.generate(p as never, { protocolVersion }) as Buffer;

export function connectFrame(
  clientId: string,
  protocolVersion = 4,
  extra: Record<string, unknown> = {},
): Buffer {
  return gen(
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: true, clientId, keepalive: 30, ...extra },
    protocolVersion,
  );
}

/** A PUBLISH whose topic bytes are taken as given (e.g. invalid UTF-8). */
export function rawPublish(topic: Buffer, payload: Buffer, qos = 0, messageId = 1): Buffer {
  const body = Buffer.concat([
    Buffer.from([topic.length >> 8, topic.length & 0xff]),
    topic,
    qos > 0 ? Buffer.from([messageId >> 8, messageId & 0xff]) : Buffer.alloc(0),
    payload,
  ]);
  return Buffer.concat([Buffer.from([0x30 | (qos << 1)]), remainingLength(body.length), body]);
}

export function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** Opens a socket, sends frames, collects decoded packets until the socket closes or the time is up. */
export function exchange(
  port: number,
  frames: Buffer[],
  opts: { waitMs?: number; protocolVersion?: number } = {},
): Promise<{ packets: Array<Record<string, any>>; closed: boolean }> {
  return new Promise((resolve) => {
    const packets: Array<Record<string, any>> = [];
    const parser = mqttPacket.parser({ protocolVersion: opts.protocolVersion ?? 4 });
    parser.on('packet', (p) => packets.push(p as never));
    parser.on('error', () => undefined);
    const sock = net.connect(port, '127.0.0.1');
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ packets, closed });
    };
    const timer = setTimeout(finish, opts.waitMs ?? 1500);
    sock.on('data', (d) => parser.parse(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.on('connect', async () => {
      for (const f of frames) {
        sock.write(f);
        await new Promise((r) => setTimeout(r, 30));
      }
    });
  });
}
