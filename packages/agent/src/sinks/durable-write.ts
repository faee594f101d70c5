// Writing files that must survive a crash: temp file, fsync, rename, fsync of the directory.
// A reader (or the next start) sees the old state or the whole new file, never half of one.

import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** fsync a directory, so that a rename or a create in it is on disk too. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` atomically (the directory must exist); the directory is NOT fsynced. */
export async function writeFileAtomic(
  path: string,
  data: Buffer | string,
  mode: number,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  // O_EXCL: never write through a file (or symlink) someone else put at the temporary name.
  const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}
