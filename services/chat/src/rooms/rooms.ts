// The rooms this pod serves: a room starts following CHAT when its first member arrives here and stops a
// while after its last one leaves (so a viewer reloading the page does not make the pod re-read the room).
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { Room, type RoomOptions } from './room.js';

/** An empty room is kept this long before its consumer stops. */
const EMPTY_ROOM_LINGER_MS = 30_000;

export class Rooms {
  private readonly rooms = new Map<string, Promise<Room>>();
  private readonly opened = new Map<string, Room>();
  private readonly lingering = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly logger: Logger,
    private readonly roomOptions: RoomOptions,
  ) {}

  get count(): number {
    return this.rooms.size;
  }

  /** The room, started and caught up. Call `release` when the member leaves. */
  async acquire(id: string): Promise<Room> {
    const linger = this.lingering.get(id);
    if (linger) {
      clearTimeout(linger);
      this.lingering.delete(id);
    }
    let room = this.rooms.get(id);
    if (!room) {
      room = this.open(id);
      this.rooms.set(id, room);
      room.catch(() => this.rooms.delete(id));
    }
    const opened = await room;
    await opened.ready;
    return opened;
  }

  /** The room if this pod serves it now. */
  served(id: string): Room | undefined {
    return this.opened.get(id);
  }

  release(room: Room): void {
    if (room.members.size > 0 || this.lingering.has(room.id)) return;
    this.lingering.set(
      room.id,
      setTimeout(() => {
        this.lingering.delete(room.id);
        if (room.members.size > 0) return;
        this.rooms.delete(room.id);
        this.opened.delete(room.id);
        void room.stop();
        this.logger.debug({ room: room.id }, 'room closed on this pod');
      }, EMPTY_ROOM_LINGER_MS).unref(),
    );
  }

  /** Every room's members (for shedding and shutdown). */
  async all(): Promise<Room[]> {
    return Promise.all([...this.rooms.values()].map((r) => r.catch(() => undefined))).then((rs) =>
      rs.filter((r): r is Room => r !== undefined),
    );
  }

  async stop(): Promise<void> {
    for (const timer of this.lingering.values()) clearTimeout(timer);
    this.lingering.clear();
    await Promise.all((await this.all()).map((room) => room.stop()));
    this.rooms.clear();
    this.opened.clear();
  }

  private async open(id: string): Promise<Room> {
    const room = new Room(id, this.nc, this.jsm, this.logger.child({ room: id }), this.roomOptions);
    await room.start();
    this.opened.set(id, room);
    return room;
  }
}
