// A NATS node dies under a room (the chaos soak's finding): two chat pods on a 3-node JetStream cluster,
// streams R3, a member on each pod sending; each node in turn is SIGKILLed, the room keeps taking messages
// on the two nodes left, then the node comes back. Every acknowledged message must reach every member
// while the node is still dead, in order, once, without their WebSockets closing: a pod whose room
// consumer lived on the dead node must follow the room again by itself.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connectBus, type NatsConnection } from '@live/bus';
import { buckets, streams } from '@live/contracts';
import { ChatClient, type Frame, type NatsCluster, startNatsCluster, waitFor } from '@live/testing';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import { type ChatProcess, startChat, token } from './fixture.js';

const ROOM = 'survivor';
/** Each member sends a message this often (faster than the soak's 3 s, to keep the test short). */
const SEND_EVERY_MS = 300;

/** A member that sends a message every SEND_EVERY_MS and keeps the seqs the server acknowledged. */
class Member {
  readonly acked = new Set<number>();
  sent = 0;
  /** Sends answered, by an ack or by an error (a write refused while the stream had no leader). */
  answered = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    readonly client: ChatClient,
  ) {
    client.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame | Frame[];
      if (Array.isArray(frame) || !frame.cid) return;
      if (frame.type === 'ack') this.acked.add(frame.seq);
      if (frame.type === 'ack' || frame.type === 'error') this.answered++;
    });
  }

  startSending(): void {
    this.timer = setInterval(() => {
      this.sent++;
      this.client.send({ type: 'send', text: `${this.name} ${this.sent}`, cid: `${this.name}-${this.sent}` });
    }, SEND_EVERY_MS);
  }

  stopSending(): void {
    clearInterval(this.timer);
  }

  /** The room events this member received, by seq, in the order received. */
  seqs(): number[] {
    return this.client.events().map((e) => e.seq as number);
  }
}

let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
let pods: ChatProcess[] = [];
let members: Member[] = [];

before(async () => {
  cluster = await startNatsCluster(3);
  nc = await connectBus({
    servers: cluster.urls,
    name: 'nats-node-loss-test',
    logger: pino({ level: 'silent' }),
  });
  jsm = await jetstreamManager(nc);
  const env = {
    NATS_REPLICAS: '3',
    LOG_LEVEL: 'info',
    // A message per member every SEND_EVERY_MS stays within the per-user rate limit.
    CHAT_USER_REFILL_MS: '100',
  };
  pods = await Promise.all([startChat(cluster, env), startChat(cluster, env)]);
  members = await Promise.all(
    pods.map(async (pod, i) => {
      const name = `member${i + 1}`;
      const { client } = await ChatClient.join(pod.url(ROOM), await token(name, ROOM));
      return new Member(name, client);
    }),
  );
});

after(async () => {
  for (const m of members) {
    m.stopSending();
    m.client.close();
  }
  await Promise.all(pods.map((p) => p.child.stop()));
  await nc?.close();
  await cluster?.dispose();
});

const allAcked = () => new Set(members.flatMap((m) => [...m.acked]));

/** The pods' recent lines about NATS, consumers and writes: what a failure message shows. */
function podLogs(): string {
  return pods
    .map(
      (p, i) =>
        `pod ${i + 1}:\n${p.lines
          .filter((l) => /NATS|consumer|following|write/i.test(l))
          .slice(-12)
          .join('\n')}`,
    )
    .join('\n');
}

/** waitFor, with what is missing and the pods' recent lines in the error. */
async function waitExplained<T>(
  condition: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: { timeoutMs: number; what: string; detail?: () => string },
): Promise<T> {
  return waitFor(condition, { intervalMs: 100, ...options }).catch((error: Error) => {
    throw new Error(`${error.message}\n${options.detail?.() ?? ''}\n${podLogs()}`);
  });
}

/** Waits until every member has received every message acknowledged so far (to either member). */
async function everyoneHasEverythingAcked(what: string): Promise<void> {
  const acked = [...allAcked()];
  const missing = (m: Member) => acked.filter((seq) => !m.seqs().includes(seq));
  await waitExplained(() => members.every((m) => missing(m).length === 0), {
    timeoutMs: 20_000,
    what,
    detail: () => `missing: ${members.map((m) => `${m.name} [${missing(m).join(',')}]`).join('; ')}`,
  });
}

/**
 * The cluster is whole again: every node answers /healthz, and the chat's streams have a leader and both
 * other replicas current (killing the next node before that could leave a stream without a quorum).
 */
async function clusterWhole(): Promise<void> {
  await waitExplained(
    async () => {
      for (const s of cluster.servers) if (!(await fetch(`${s.monitorUrl}/healthz`)).ok) return false;
      for (const name of [streams.chat, `KV_${buckets.chatNodes}`, `KV_${buckets.chatModeration}`]) {
        const { cluster: info } = await jsm.streams.info(name);
        if (!info?.leader || info.replicas?.length !== 2) return false;
        if (info.replicas.some((r) => !r.current || r.offline)) return false;
      }
      return true;
    },
    { timeoutMs: 30_000, what: 'every NATS node up and every stream replica current' },
  );
}

test('a room keeps delivering to every member through the SIGKILL of each NATS node in turn', {
  timeout: 150_000,
}, async () => {
  for (const m of members) m.startSending();
  await waitFor(() => members.every((m) => m.acked.size >= 2), { what: 'messages flowing on both pods' });
  await everyoneHasEverythingAcked('every member has the first messages');

  // Each node in turn, so the one holding each pod's room consumer dies at some point (and the one each
  // pod is connected to, and the stream's leader).
  const rounds: string[] = [];
  for (const node of cluster.servers) {
    const ackedBefore = members.map((m) => m.acked.size);
    const killedAt = Date.now();
    const since = () => `${((Date.now() - killedAt) / 1000).toFixed(1)} s`;
    await node.kill();
    // The stream keeps a quorum on the two nodes left: writes go on (after a leader election if needed).
    await waitExplained(() => members.every((m, i) => m.acked.size >= (ackedBefore[i] as number) + 2), {
      timeoutMs: 20_000,
      what: `messages acknowledged on both pods with ${node.url} dead`,
    });
    const acked = since();
    await everyoneHasEverythingAcked(`every acknowledged message on every member with ${node.url} dead`);
    const delivered = since();
    await node.start();
    await clusterWhole();
    rounds.push(`${node.child.name}: acked ${acked}, delivered ${delivered}, whole again ${since()}`);
  }

  for (const m of members) m.stopSending();
  // The last sends are answered (acked or refused) before the final count.
  await waitFor(() => members.every((m) => m.answered === m.sent), { what: 'every send answered' });
  await everyoneHasEverythingAcked('every acknowledged message on every member at the end');
  for (const m of members) {
    const seqs = m.seqs();
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i + 1),
      `${m.name} received the room's events in order, once each, without a gap`,
    );
    assert.ok(m.client.isOpen, `${m.name}'s WebSocket stayed open`);
  }
  const replaced = pods.map(
    (p) => p.lines.filter((l) => /consumer stopped delivering: replaced/.test(l)).length,
  );
  console.log(
    `${allAcked().size} messages acknowledged through 3 node kills, each member received ${members
      .map((m) => m.seqs().length)
      .join(' / ')} events; consumers replaced on the pods: ${replaced.join(' / ')}\n${rounds.join('\n')}`,
  );
});
