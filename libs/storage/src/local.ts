// Local filesystem storage: the embedded default. Writes go to a temp file renamed into place, so a
// reader (the origin, a player) never sees half an object.
//
// Each fs call is a round trip through libuv's thread pool (~0.1 ms of CPU on a small VM, more than the write
// itself), so a put makes as few as it can: no mkdir unless the folder is missing. The calls stay
// asynchronous even so (synchronous ones measured ~half the CPU): a write stuck behind a busy disk must
// never stop the event loop, or a worker's heartbeats would stop with it and its streams fail over.
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkKey, type PutOptions, type Storage } from './storage.js';

export class LocalStorage implements Storage {
  readonly kind = 'local' as const;
  private counter = 0;

  constructor(readonly root: string) {}

  pathOf(key: string): string {
    return join(this.root, checkKey(key));
  }

  async put(key: string, data: Buffer, _options: PutOptions): Promise<void> {
    const path = this.pathOf(key);
    const temp = `${path}.${process.pid}.${this.counter++}.tmp`;
    try {
      await writeFile(temp, data);
    } catch (error) {
      // The object's folder does not exist yet (the first object of a stream or rendition): make it, once.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await mkdir(dirname(path), { recursive: true });
      await writeFile(temp, data);
    }
    await rename(temp, path);
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}
