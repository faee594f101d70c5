// Throwaway system users and groups (guardt-<role>-<suffix>), removed again by the after hooks.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { RunAs } from './proc';

export interface TestUser extends RunAs {
  name: string;
  uid: number;
  gid: number;
  /** primary group name */
  group: string;
}

export class TestUsers {
  readonly suffix = randomBytes(3).toString('hex');
  private readonly users: string[] = [];
  private readonly groups: string[] = [];

  private name(role: string): string {
    const n = `guardt-${role}-${this.suffix}`;
    if (n.length > 32) throw new Error(`name too long: ${n}`);
    return n;
  }

  /** A system group of its own. */
  group(role: string): { name: string; gid: number } {
    const name = this.name(role);
    execFileSync('groupadd', ['--system', name], { stdio: 'pipe' });
    this.groups.push(name);
    const line = execFileSync('getent', ['group', name], { encoding: 'utf8' });
    return { name, gid: Number(line.split(':')[2]) };
  }

  /** A system user (no home, nologin) whose primary group is a new group of the same name. */
  user(role: string, supplementary: string[] = []): TestUser {
    const name = this.name(role);
    const g = this.group(role);
    const args = ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--gid', g.name];
    if (supplementary.length) args.push('--groups', supplementary.join(','));
    execFileSync('useradd', [...args, name], { stdio: 'pipe' });
    this.users.push(name);
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    return { name, uid, gid: g.gid, group: g.name, groups: 'init' };
  }

  /** Removes every user, then every group, this object created. Never throws. */
  cleanup(): string[] {
    const problems: string[] = [];
    for (const u of this.users.splice(0).reverse()) {
      try {
        execFileSync('userdel', [u], { stdio: 'pipe' });
      } catch (e) {
        problems.push(`userdel ${u}: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
      }
    }
    for (const g of this.groups.splice(0).reverse()) {
      try {
        execFileSync('getent', ['group', g], { stdio: 'pipe' });
      } catch {
        continue;
      }
      try {
        execFileSync('groupdel', [g], { stdio: 'pipe' });
      } catch (e) {
        problems.push(`groupdel ${g}: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
      }
    }
    return problems;
  }
}
