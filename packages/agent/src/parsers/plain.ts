// Plain lines: the message is all there is.

import type { Parser } from '../event';

export const parsePlain: Parser = () => ({});
