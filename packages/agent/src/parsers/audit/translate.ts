// Numbers auditd logs → names: arch, syscall (per arch), errno. Tables: tables.ts (generated).

import { ERRNO_NAMES, SYSCALLS_AARCH64, SYSCALLS_I386, SYSCALLS_X86_64 } from './tables';

/** AUDIT_ARCH_* values as logged in `arch=` (hex, no 0x) → the names ausearch uses. */
const ARCHES = new Map<string, string>(
  Object.entries({
    c000003e: 'x86_64',
    '40000003': 'i386',
    c00000b7: 'aarch64',
    '40000028': 'arm',
    '28': 'armeb',
    c0000015: 'ppc64le',
    '80000015': 'ppc64',
    '14': 'ppc',
    '80000016': 's390x',
    '16': 's390',
    c00000f3: 'riscv64',
    '400000f3': 'riscv32',
  }),
);

let x86: string[] | undefined;
let i386: string[] | undefined;
let aarch64: string[] | undefined;

/** 'c000003e' → 'x86_64'; undefined when unknown. Case-insensitive. */
export function archName(raw: string): string | undefined {
  return ARCHES.get(raw) ?? ARCHES.get(raw.toLowerCase());
}

/** Syscall number → name for x86_64, i386 and aarch64 (by arch name); undefined when unknown. */
export function syscallName(arch: string | undefined, nr: number): string | undefined {
  let table: string[] | undefined;
  switch (arch) {
    case 'x86_64':
      table = x86 ??= SYSCALLS_X86_64.split(' ');
      break;
    case 'i386':
      table = i386 ??= SYSCALLS_I386.split(' ');
      break;
    case 'aarch64':
      table = aarch64 ??= SYSCALLS_AARCH64.split(' ');
      break;
    default:
      return undefined;
  }
  const name = table[nr];
  return name === undefined || name === '' ? undefined : name;
}

let errnos: string[] | undefined;

/** 13 (or -13) → 'EACCES'; undefined when unknown. */
export function errnoName(n: number): string | undefined {
  errnos ??= ERRNO_NAMES.split(' ');
  const name = errnos[n < 0 ? -n : n];
  return name === undefined || name === '' ? undefined : name;
}
