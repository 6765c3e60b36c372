// Local filesystem storage: the embedded default. Writes go to a temp file renamed into place, so a
// reader (the origin, a player) never sees half an object.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
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
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.${this.counter++}.tmp`;
    await writeFile(temp, data);
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
    await rm(this.pathOf(key), { force: true });
  }
}
