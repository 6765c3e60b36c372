import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CHAT_CLOSE } from '@live/contracts';
import { ChatClient, type NatsServer, startNatsServer, waitFor } from '@live/testing';
import { SignJWT } from 'jose';
import { type ChatProcess, SECRET, startChat, token } from './fixture.js';

let nats: NatsServer;
let chat: ChatProcess;

before(async () => {
  nats = await startNatsServer('chat-limits');
  chat = await startChat(nats, {
    CHAT_FLOOD_STRIKES: '10',
    CHAT_JOIN_TIMEOUT_MS: '500',
    CHAT_MAX_FRAME_BYTES: '4096',
    CHAT_MAX_BUFFERED_BYTES: '65536',
    CHAT_MAX_CONNECTIONS: '40',
  });
});

after(async () => {
  await chat?.child.stop();
  await nats?.dispose();
});

/** A bystander's round trip: its own message comes back to it. */
async function roundTrip(client: ChatClient, text: string): Promise<number> {
  const started = performance.now();
  client.send({ type: 'send', text, cid: text });
  await client.waitFor((f) => f.type === 'msg' && f.text === text, `round trip of ${text}`);
  return performance.now() - started;
}

test('message length is counted in code points: 500 emoji pass, 501 characters do not', async () => {
  const room = 'length';
  const { client } = await ChatClient.join(chat.url(room), await token('u', room));
  const emoji = '😀'.repeat(500); // 1000 UTF-16 units, 500 code points
  client.send({ type: 'send', text: emoji, cid: 'ok' });
  await client.waitFor((f) => f.type === 'ack' && f.cid === 'ok', 'ack');
  client.send({ type: 'send', text: 'x'.repeat(501), cid: 'long' });
  const refused = await client.waitFor((f) => f.type === 'error' && f.cid === 'long', 'refusal');
  assert.equal(refused.code, 'too_long');
  client.close();
});

test('a flooder is throttled, then disconnected; a bystander in the same room is unaffected', async () => {
  const room = 'flood';
  const { client: bystander } = await ChatClient.join(chat.url(room), await token('calm', room));
  const { client: flooder } = await ChatClient.join(chat.url(room), await token('flooder', room));
  for (let i = 0; i < 40; i++) flooder.send({ type: 'send', text: `spam ${i}`, cid: `s${i}` });
  const limited = await flooder.waitFor((f) => f.type === 'error' && f.code === 'rate_limited', 'throttled');
  assert.ok(limited.retryMs > 0 && limited.retryMs <= 1000);
  assert.equal((await flooder.closed).code, CHAT_CLOSE.flooding);
  // The burst (5) got through; the rest did not.
  await bystander.waitFor((f) => f.type === 'msg' && f.text === 'spam 4', 'the burst');
  assert.equal(bystander.events().filter((e) => e.user.id === 'flooder').length, 5);
  assert.ok((await roundTrip(bystander, 'still here')) < 1000);
  bystander.close();
});

test('the per-room rate limit refuses without striking the sender', async () => {
  const limited = await startChat(nats, { CHAT_ROOM_BURST: '3', CHAT_ROOM_REFILL_MS: '60000' });
  try {
    const room = 'busy';
    const clients = await Promise.all(
      ['a', 'b', 'c', 'd'].map(
        async (u) => (await ChatClient.join(limited.url(room), await token(u, room))).client,
      ),
    );
    for (const [i, c] of clients.entries()) c.send({ type: 'send', text: `hi ${i}`, cid: 'x' });
    const answers = await Promise.all(clients.map((c) => c.waitFor((f) => f.cid === 'x', 'answer')));
    assert.deepEqual(answers.map((f) => f.type).sort(), ['ack', 'ack', 'ack', 'error']);
    const refusal = answers.find((f) => f.type === 'error');
    assert.equal(refusal?.code, 'rate_limited');
    assert.match(refusal?.message ?? '', /room is too busy/);
    for (const c of clients) c.close();
  } finally {
    await limited.child.stop();
  }
});

test('bad frames get a clear error and the connection lives; too many of them end it', async () => {
  const room = 'bad';
  const { client } = await ChatClient.join(chat.url(room), await token('bad', room));
  client.send('{not json');
  assert.match((await client.waitFor((f) => f.type === 'error', 'error 1')).message, /not JSON/);
  client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  await client.waitFor((f) => f.type === 'error' && /binary/.test(f.message), 'binary refused');
  client.send({ type: 'shout', text: 'x' });
  await client.waitFor(
    (f) => f.type === 'error' && /not a chat message/.test(f.message),
    'unknown type refused',
  );
  client.send({ type: 'send', text: 42 });
  await client.waitFor((f) => f.type === 'error' && /text/.test(f.message), 'wrong field type refused');
  client.send({ type: 'send', text: 'valid after all that', cid: 'v' });
  await client.waitFor((f) => f.type === 'ack' && f.cid === 'v', 'still works');
  for (let i = 0; i < 10; i++) client.send('nope');
  assert.equal((await client.closed).code, CHAT_CLOSE.flooding);
});

test('an oversized frame closes that connection (1009), nothing else', async () => {
  const room = 'big';
  const { client: bystander } = await ChatClient.join(chat.url(room), await token('calm', room));
  const { client } = await ChatClient.join(chat.url(room), await token('big', room));
  client.send({ type: 'send', text: 'y'.repeat(5000) });
  assert.equal((await client.closed).code, 1009);
  assert.ok((await roundTrip(bystander, 'unaffected')) < 1000);
  bystander.close();
});

test('forged, expired, garbage and wrong-room tokens are refused (4001) with the reason', async () => {
  const room = 'auth';
  const forged = await new SignJWT({ name: 'x', role: 'streamer', rooms: ['*'], caps: ['send', 'ban'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('x')
    .setIssuer('live-chat')
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode('another-secret-that-is-long-enough-000'));
  const expired = await new SignJWT({ name: 'x', role: 'viewer', rooms: [room], caps: ['send'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('x')
    .setIssuer('live-chat')
    .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
    .sign(new TextEncoder().encode(SECRET));
  const cases: [string, string, RegExp][] = [
    ['forged', forged, /signature verification failed/],
    ['expired', expired, /token expired/],
    ['garbage', 'not.a.jwt', /token refused/],
    ['other room', await token('x', 'elsewhere'), /not valid for room auth/],
  ];
  for (const [what, jwt, reason] of cases) {
    const client = await ChatClient.connect(chat.url(room));
    client.send({ type: 'join', token: jwt });
    const error = await client.waitFor((f) => f.type === 'error', what);
    assert.equal(error.code, 'unauthorized', what);
    assert.match(error.message, reason, what);
    assert.equal((await client.closed).code, CHAT_CLOSE.unauthorized, what);
  }
});

test('a connection that never joins is closed; frames before join are refused', async () => {
  const client = await ChatClient.connect(chat.url('idle'));
  client.send({ type: 'send', text: 'hello?' });
  assert.match((await client.waitFor((f) => f.type === 'error', 'refusal')).message, /send join first/);
  assert.equal((await client.closed).code, CHAT_CLOSE.joinTimeout);
});

test('bad paths are refused at the upgrade; beyond CHAT_MAX_CONNECTIONS too, and /readyz says so', async () => {
  await assert.rejects(ChatClient.connect(`ws://127.0.0.1:${chat.port}/chat/Bad%20Room`), /404/);
  await assert.rejects(ChatClient.connect(`ws://127.0.0.1:${chat.port}/elsewhere`), /404/);
  const held: ChatClient[] = [];
  try {
    while (held.length < 60) {
      const client = new ChatClient(chat.url('full'));
      const outcome = await client.opened.then(
        () => 'open',
        (error: Error) => error.message,
      );
      if (outcome !== 'open') {
        assert.match(outcome, /503/);
        break;
      }
      held.push(client);
    }
    assert.ok(held.length <= 40, `${held.length} connections held`);
    const ready = await fetch(`http://127.0.0.1:${chat.port}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /CHAT_MAX_CONNECTIONS/);
  } finally {
    for (const c of held) c.close();
  }
  await waitFor(async () => (await fetch(`http://127.0.0.1:${chat.port}/readyz`)).ok, {
    what: 'ready again',
  });
});

test('a client that never reads is dropped when its buffer fills; the others are not delayed', async () => {
  const room = 'slowreader';
  const { client: writer } = await ChatClient.join(chat.url(room), await token('writer', room, 'moderator'));
  for (let i = 0; i < 5; i++) {
    writer.send({ type: 'send', text: `${i} ${'z'.repeat(480)}`, cid: `w${i}` });
  }
  await writer.waitFor((f) => f.type === 'ack' && f.cid === 'w4', 'room filled');
  const { client: stuck } = await ChatClient.join(chat.url(room), await token('stuck', room));
  // Stop reading from the socket: everything the server sends now piles up in its buffer for this client.
  (stuck.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const requests = JSON.stringify({ type: 'history', limit: 200 });
  for (let i = 0; i < 3000; i++) stuck.ws.send(requests);
  const { client: bystander } = await ChatClient.join(chat.url(room), await token('bystander', room));
  await waitFor(() => chat.lines.some((l) => /dropped a client that does not read/.test(l)), {
    what: 'the slow consumer dropped',
    timeoutMs: 20_000,
  });
  assert.ok((await roundTrip(bystander, 'not delayed')) < 1000);
  for (const c of [writer, bystander, stuck]) c.close();
});

test('the process survived all of it', async () => {
  assert.equal(chat.child.hasExited(), false);
  assert.equal((await fetch(`http://127.0.0.1:${chat.opsPort}/healthz`)).status, 200);
});
