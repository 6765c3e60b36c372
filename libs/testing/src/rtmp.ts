// A raw RTMP client for tests that must send what real encoders never send (bad handshakes, odd names,
// huge metadata, silence). Speaks just enough of RTMP: handshake, AMF0 commands and data messages.
import { connect, type Socket } from 'node:net';

type Amf = number | boolean | string | null | { [key: string]: Amf };

function amf0(value: Amf): Buffer {
  if (value === null) return Buffer.from([0x05]);
  if (typeof value === 'number') {
    const b = Buffer.alloc(9);
    b[0] = 0x00;
    b.writeDoubleBE(value, 1);
    return b;
  }
  if (typeof value === 'boolean') return Buffer.from([0x01, value ? 1 : 0]);
  if (typeof value === 'string') {
    const s = Buffer.from(value, 'utf8');
    const head = Buffer.alloc(3);
    head[0] = 0x02;
    head.writeUInt16BE(s.length, 1);
    return Buffer.concat([head, s]);
  }
  const parts: Buffer[] = [Buffer.from([0x03])];
  for (const [key, v] of Object.entries(value)) {
    const k = Buffer.from(key, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(k.length);
    parts.push(len, k, amf0(v));
  }
  parts.push(Buffer.from([0x00, 0x00, 0x09]));
  return Buffer.concat(parts);
}

export class RawRtmpClient {
  readonly closed: Promise<void>;
  private received = Buffer.alloc(0);

  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => {
      this.received = Buffer.concat([this.received, d]);
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawRtmpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => resolve(new RawRtmpClient(socket)));
      socket.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readableEnded;
  }

  /** Bytes the server sent so far. */
  get bytesReceived(): number {
    return this.received.length;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** C0+C1, wait for S0+S1+S2, send C2; then raises the chunk size so each message is one chunk. */
  async handshake(): Promise<void> {
    const c1 = Buffer.alloc(1536);
    this.write(Buffer.concat([Buffer.from([0x03]), c1]));
    const deadline = Date.now() + 5000;
    while (this.received.length < 1 + 1536 * 2) {
      if (this.isClosed || Date.now() > deadline) throw new Error('RTMP handshake: no S0S1S2 from server');
      await new Promise((r) => setTimeout(r, 5));
    }
    this.write(this.received.subarray(1, 1537));
    this.received = this.received.subarray(1 + 1536 * 2);
    const size = Buffer.alloc(4);
    size.writeUInt32BE(0x00ffffff);
    this.message(2, 1, 0, size);
  }

  /** One RTMP message as a single type-0 chunk (after handshake() raised the chunk size). */
  message(csid: number, type: number, streamId: number, payload: Buffer, timestamp = 0): void {
    const header = Buffer.alloc(12);
    header[0] = csid & 0x3f;
    header.writeUIntBE(Math.min(timestamp, 0xffffff), 1, 3);
    header.writeUIntBE(payload.length, 4, 3);
    header[7] = type;
    header.writeUInt32LE(streamId, 8);
    this.write(Buffer.concat([header, payload]));
  }

  command(name: string, transactionId: number, ...args: Amf[]): void {
    const payload = Buffer.concat([amf0(name), amf0(transactionId), ...args.map(amf0)]);
    this.message(3, 20, name === 'publish' || name === 'play' ? 1 : 0, payload);
  }

  connectApp(app: string, port: number): void {
    this.command('connect', 1, { app, tcUrl: `rtmp://127.0.0.1:${port}/${app}`, flashVer: 'test' });
    this.command('createStream', 2, null);
  }

  /** An onMetaData data message of roughly `bytes` bytes. */
  metadata(bytes: number): void {
    // AMF0 strings hold at most 65535 bytes: spread the filler over several properties.
    const fields: Record<string, Amf> = { width: 640 };
    for (let i = 0; i * 60_000 < bytes; i++)
      fields[`filler${i}`] = 'x'.repeat(Math.min(60_000, bytes - i * 60_000));
    const payload = Buffer.concat([amf0('@setDataFrame'), amf0('onMetaData'), amf0(fields)]);
    this.message(4, 18, 1, payload);
  }

  close(): void {
    this.socket.destroy();
  }
}
