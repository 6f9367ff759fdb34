// Shared subscriptions `$share/<group>/<filter>`, done in front of aedes: SUBSCRIBE/UNSUBSCRIBE
// packets are rewritten to the plain filter as they leave the parser (so aedes 2.0's v5 refusal
// and the ACL see the real filter), membership is recorded here, and at delivery time exactly one
// connected member of each group gets each message (round robin). Groups are per broker replica.
import { topicMatches } from './topic-match.js';

const SHARE = '$share/';

/** What identifies one published message across its per-subscriber copies. */
export interface SharedMessage {
  topic: string;
  brokerId?: string;
  brokerCounter?: number;
  messageId?: number;
}

interface Member {
  group: string;
  filter: string;
}

export class SharedSubscriptions {
  /** `online(clientId)`: only connected members take messages; offline persistent ones keep their seat. */
  constructor(private readonly online: (clientId: string) => boolean = () => true) {}

  /** clientId → (filter → group) */
  private readonly byClient = new Map<string, Map<string, string>>();
  /** `${group}\0${filter}` → members in join order */
  private readonly groups = new Map<string, string[]>();
  private readonly cursor = new Map<string, number>();
  /** per message (brokerId:brokerCounter; each subscriber sees its own packet copy) → group → chosen */
  private readonly choices = new Map<string, Map<string, string>>();

  /** Parses `$share/g/f`; null for a normal filter, 'invalid' for a malformed share. */
  static parse(topic: string): Member | null | 'invalid' {
    if (!topic.startsWith(SHARE)) return null;
    const rest = topic.slice(SHARE.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) return 'invalid';
    const group = rest.slice(0, slash);
    const filter = rest.slice(slash + 1);
    if (!filter || /[+#]/.test(group)) return 'invalid';
    return { group, filter };
  }

  /** Rewrites a SUBSCRIBE/UNSUBSCRIBE packet in place; call before aedes sees it. */
  rewrite(
    clientId: string,
    packet: { cmd: string; subscriptions?: Array<{ topic: string }>; unsubscriptions?: string[] },
  ): void {
    if (packet.cmd === 'subscribe' && packet.subscriptions) {
      for (const sub of packet.subscriptions) {
        const m = SharedSubscriptions.parse(sub.topic);
        if (m === null) continue;
        if (m === 'invalid') continue; // left as is: aedes/ACL refuse the literal `$share/...` filter
        sub.topic = m.filter;
        this.join(clientId, m);
      }
    } else if (packet.cmd === 'unsubscribe' && packet.unsubscriptions) {
      packet.unsubscriptions = packet.unsubscriptions.map((t) => {
        const m = SharedSubscriptions.parse(t);
        if (m === null || m === 'invalid') return t;
        this.leave(clientId, m.filter);
        return m.filter;
      });
    }
  }

  private join(clientId: string, m: Member): void {
    this.leave(clientId, m.filter);
    const mine = this.byClient.get(clientId) ?? new Map<string, string>();
    this.byClient.set(clientId, mine);
    mine.set(m.filter, m.group);
    const key = `${m.group}\0${m.filter}`;
    const list = this.groups.get(key) ?? [];
    if (!list.includes(clientId)) list.push(clientId);
    this.groups.set(key, list);
  }

  private leave(clientId: string, filter: string): void {
    const mine = this.byClient.get(clientId);
    const group = mine?.get(filter);
    if (group === undefined) return;
    mine!.delete(filter);
    const key = `${group}\0${filter}`;
    const list = (this.groups.get(key) ?? []).filter((c) => c !== clientId);
    if (list.length) this.groups.set(key, list);
    else this.groups.delete(key);
  }

  /** Forget a client whose session ended (clean session, or expired). */
  drop(clientId: string): void {
    const mine = this.byClient.get(clientId);
    if (!mine) return;
    for (const filter of [...mine.keys()]) this.leave(clientId, filter);
    this.byClient.delete(clientId);
  }

  /** Is this client's copy of `message` to be delivered? False only for shared members not chosen. */
  shouldDeliver(
    clientId: string,
    message: SharedMessage,
    plainMatch: (isShared: (f: string) => boolean) => boolean,
  ): boolean {
    const mine = this.byClient.get(clientId);
    if (!mine || plainMatch((f) => mine.has(f))) return true;
    let anyShared = false;
    for (const [filter, group] of mine) {
      if (!topicMatches(filter, message.topic)) continue;
      anyShared = true;
      if (this.choose(`${group}\0${filter}`, message) === clientId) return true;
    }
    return !anyShared;
  }

  private choose(key: string, message: SharedMessage): string | undefined {
    const id = `${message.brokerId ?? ''}:${message.brokerCounter ?? message.messageId ?? message.topic}`;
    const perMsg = this.choices.get(id) ?? new Map<string, string>();
    if (!this.choices.has(id)) {
      this.choices.set(id, perMsg);
      // Deliveries of one message happen together; a bounded memory of recent ones is enough.
      if (this.choices.size > 10_000) this.choices.delete(this.choices.keys().next().value!);
    }
    let chosen = perMsg.get(key);
    if (chosen === undefined) {
      const members = (this.groups.get(key) ?? []).filter((c) => this.online(c));
      if (!members.length) return undefined;
      const i = (this.cursor.get(key) ?? 0) % members.length;
      this.cursor.set(key, i + 1);
      chosen = members[i]!;
      perMsg.set(key, chosen);
    }
    return chosen;
  }

  snapshot(): Array<{ clientid: string; topic: string }> {
    const out: Array<{ clientid: string; topic: string }> = [];
    for (const [clientid, mine] of this.byClient) {
      for (const [filter, group] of mine) out.push({ clientid, topic: `${SHARE}${group}/${filter}` });
    }
    return out;
  }

  isShared(clientId: string, filter: string): string | undefined {
    return this.byClient.get(clientId)?.get(filter);
  }
}
