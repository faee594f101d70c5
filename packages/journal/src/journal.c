// guard-agent's reader of the systemd journal: libsystemd's sd-journal over descriptors that
// guard-helper opened (sd_journal_open_files_fd), turned into guard's event JSON lines here, in C,
// a batch per call. Not root surface: this runs in the unprivileged agent.
//
// libsystemd.so.0 is dlopen()ed, not linked (docs/decisions.md): the addon builds with no systemd
// headers or -dev package, the agent starts on a host without libsystemd (a journal source then
// fails with a clear error), and the library that reads the files is always the host's, the same
// version as the journald that wrote them.
//
// One sd_journal per handle, used by one thread at a time: the JS thread, or the pool thread of a
// readAsync() in flight (every other call then throws EBUSY). After sd_journal_open_files_fd()
// succeeds the descriptors belong to libsystemd (sd_journal_close closes them); when it fails they
// are still the caller's.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sd_journal sd_journal;
typedef struct {
  uint8_t bytes[16];
} sd_id128;

static struct {
  int loaded;
  int (*open_files_fd)(sd_journal **, int[], unsigned, int);
  void (*close)(sd_journal *);
  int (*next)(sd_journal *);
  int (*seek_head)(sd_journal *);
  int (*seek_tail)(sd_journal *);
  int (*previous)(sd_journal *);
  int (*seek_cursor)(sd_journal *, const char *);
  int (*get_cursor)(sd_journal *, char **);
  void (*restart_data)(sd_journal *);
  int (*enumerate_data)(sd_journal *, const void **, size_t *);
  int (*set_data_threshold)(sd_journal *, size_t);
} sd;

// The bytes of one cursor slot in the caller's cursor buffer (a cursor is at most 145 bytes).
#define CURSOR_STRIDE 160

// One field of the entry being encoded: its name and value within its slot's copy.
typedef struct {
  const char *name, *value;
  size_t name_len, value_len;
  // The entry's first field of this name (an index), how many it has (on the first), and the next
  // field of this name (0: none; a later field never has index 0).
  uint32_t first, count, next;
} field;

// The k-th field of the entries read, kept from one entry to the next: journald stores each
// distinct `NAME=value` once and entries of one stream hold the same fields in the same order,
// mostly with the same values (boot id, host, unit, command line...). A field whose bytes equal
// its slot's is not copied again, and its value's JSON (with its flags and trigger bit) is
// copied from the slot rather than escaped and scanned again.
typedef struct {
  char *raw;  // `NAME=value` as libsystemd gave it
  size_t raw_len, raw_cap, name_len;
  char *json;  // the value as put_value_text wrote it, when json_ok
  size_t json_len, json_cap;
  int json_ok, flags, slow, secret;
} slot;

// Buckets of the per-entry table that finds a field's earlier namesake (collect).
#define NAME_BUCKETS 64

typedef struct {
  sd_journal *j;
  // The entry's fields (each copied into its slot: libsystemd's data pointers last only until the
  // next enumerate call), and the entry's encoded JSON line. `layout_ok`: the namesake links and
  // known[] below are those of the entry's names (same names in the same places as the last one).
  field *fields;
  slot *slots;
  size_t n_fields, fields_cap;
  size_t last_n_fields;
  int layout_ok, names_changed;
  int no_cache;    // encoder()'s reference: every field copied, encoded and linked afresh
  int32_t *chain;  // per field: the next first-of-its-name field in its bucket (collect)
  uint32_t *last;  // per first field: the last field of its name
  char *line;
  size_t line_len, line_cap;
  // Where the KNOWN fields are in the entry, and how often each occurs.
  const field *known[16];
  int known_count[16];
  // The fields of the entry whose values went as base64.
  const field **b64;
  size_t n_b64;
  // An entry encoded but not yet handed out (it did not fit the caller's buffer).
  int pending;
  char pending_cursor[CURSOR_STRIDE];
  int32_t pending_meta[3];
  // What every event ends with (`,"source":…}\n`, from JS) and the longest value shipped whole.
  char *tail;
  size_t tail_len;
  size_t max_value;
  // Unit and identifier include/exclude lists, NUL-separated names.
  char **lists[4];
  size_t list_len[4];
  // Redaction's trigger words (lower case): an entry whose values hold one is marked BIT_SECRET.
  char **triggers;
  size_t n_triggers;
  unsigned char *trigger_pairs;  // [first << 8 | second], lower case: 1 where a trigger word starts
  int secret;                    // the entry being encoded holds a trigger word
  int mark_all;                  // a trigger word could not be taken: every entry is marked
  int oom;
  // A readAsync() is in flight (its thread owns the reader), and close() came meanwhile.
  int busy, close_pending;
} reader;

enum { INCLUDE_UNITS, EXCLUDE_UNITS, INCLUDE_IDS, EXCLUDE_IDS };

// Per-entry bits handed to JS in meta[3k+2].
enum { BIT_SLOW = 1, BIT_FLAGS = 2, BIT_SECRET = 4 };
// Event flags.
enum { F_ESCAPED = 1, F_BASE64 = 2, F_TRUNCATED = 4 };

// An Error for errno `err`: its `code` E<errno> (ENOMEM, EINVAL by name), `errno` the number.
static napi_value error_errno(napi_env env, int err, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error;
  const char *name = err == ENOMEM ? "ENOMEM" : err == EINVAL ? "EINVAL" : "EJOURNAL";
  char numbered[32];
  if (err != ENOMEM && err != EINVAL) {
    snprintf(numbered, sizeof numbered, "E%d", err);
    name = numbered;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errno_value;
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *what) {
  napi_throw(env, error_errno(env, err, what));
  return NULL;
}

static int load_libsystemd(char *why, size_t why_len) {
  if (sd.loaded) return 0;
  void *h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    snprintf(why, why_len, "cannot load libsystemd.so.0: %s", dlerror());
    return -1;
  }
#define SYM(field, name)                                                          \
  if ((*(void **)&sd.field = dlsym(h, name)) == NULL) {                           \
    snprintf(why, why_len, "libsystemd.so.0 has no %s (systemd too old?)", name); \
    return -1;                                                                    \
  }
  SYM(open_files_fd, "sd_journal_open_files_fd");
  SYM(close, "sd_journal_close");
  SYM(next, "sd_journal_next");
  SYM(seek_head, "sd_journal_seek_head");
  SYM(seek_tail, "sd_journal_seek_tail");
  SYM(previous, "sd_journal_previous");
  SYM(seek_cursor, "sd_journal_seek_cursor");
  SYM(get_cursor, "sd_journal_get_cursor");
  SYM(restart_data, "sd_journal_restart_data");
  SYM(enumerate_data, "sd_journal_enumerate_data");
  SYM(set_data_threshold, "sd_journal_set_data_threshold");
#undef SYM
  sd.loaded = 1;
  return 0;
}

// ---- growable buffers ----

static int reserve(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  char *b = realloc(*buf, n);
  if (b == NULL) return -1;
  *buf = b;
  *cap = n;
  return 0;
}

// Appends to the entry's line; sets r->oom on failure (checked once per entry).
static void put(reader *r, const void *s, size_t n) {
  if (reserve(&r->line, &r->line_cap, r->line_len + n) < 0) {
    r->oom = 1;
    return;
  }
  memcpy(r->line + r->line_len, s, n);
  r->line_len += n;
}
#define PUTS(r, lit) put((r), (lit), sizeof(lit) - 1)

// ---- values → JSON strings ----

static const char HEX[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence at s (n bytes available), 0 when it is not one.
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c >= 0xc2 && c <= 0xdf) return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && s[1] < 0xa0) return 0;   // overlong
    if (c == 0xed && s[1] >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) return 0;
    if (c == 0xf0 && s[1] < 0x90) return 0;   // overlong
    if (c == 0xf4 && s[1] >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// Marks the entry when the JSON text just written, line[from, line_len), holds a trigger word in
// any case. The JSON text of a value holds every word its decoded string holds (escapes only add
// characters around copied ones, and no trigger word holds '"' or '\\'), so an entry not marked
// is one that redaction's built-in patterns leave alone (redact.ts, PREFILTER_TRIGGERS).
static inline unsigned lower(unsigned char c) { return c | ((unsigned)(c - 'A') < 26u ? 0x20 : 0); }

static int has_trigger(const reader *r, const unsigned char *t, size_t n) {
  if (r->n_triggers == 0 || n < 2) return 0;
  unsigned prev = lower(t[0]);
  for (size_t i = 1; i < n; i++) {
    unsigned c = lower(t[i]);
    unsigned pair = prev << 8 | c;
    prev = c;
    if (!r->trigger_pairs[pair]) continue;
    for (size_t k = 0; k < r->n_triggers; k++) {  // a word starting at i - 1
      const char *w = r->triggers[k];
      size_t j = 0;
      while (w[j] && i - 1 + j < n && lower(t[i - 1 + j]) == (unsigned char)w[j]) j++;
      if (w[j] == 0) return 1;
    }
  }
  return 0;
}

static void scan_secret(reader *r, size_t from) {
  if (!r->secret && has_trigger(r, (const unsigned char *)r->line + from, r->line_len - from))
    r->secret = 1;
}

static void put_base64(reader *r, const unsigned char *s, size_t n) {
  static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (reserve(&r->line, &r->line_cap, r->line_len + (n + 2) / 3 * 4 + 2) < 0) {
    r->oom = 1;
    return;
  }
  char *o = r->line + r->line_len;
  *o++ = '"';
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    *o++ = B64[v >> 18];
    *o++ = B64[(v >> 12) & 63];
    *o++ = B64[(v >> 6) & 63];
    *o++ = B64[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
    *o++ = B64[v >> 18];
    *o++ = B64[(v >> 12) & 63];
    *o++ = i + 1 < n ? B64[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o++ = '"';
  r->line_len = o - r->line;
}

// A value as a JSON string. Text as guard ships file lines (parsers/escape.ts): C0 controls but TAB
// and LF, DEL and every byte of an invalid UTF-8 sequence become the text \xHH, C1 controls the
// text \u00HH (flag `escaped`); a value holding a NUL is binary and goes as base64 (flag `base64`).
// Values longer than max_value are cut at a character boundary (flag `truncated`). Sets *slow when
// the JSON differs from the bytes (an escape, or any byte above 0x7f): redaction's fast scan then
// cannot read the event's text off the JSON.
static int put_value_text(reader *r, const unsigned char *s, size_t n, int *slow) {
  int flags = 0;
  if (n > r->max_value) {
    size_t cut = r->max_value;
    while (cut > 0 && (s[cut] & 0xc0) == 0x80 && r->max_value - cut < 3) cut--;
    n = cut;
    flags |= F_TRUNCATED;
  }
  if (memchr(s, 0, n) != NULL) {
    put_base64(r, s, n);
    return flags | F_BASE64;
  }
  // Worst case: every byte becomes \\xHH (5 bytes).
  if (reserve(&r->line, &r->line_cap, r->line_len + n * 5 + 2) < 0) {
    r->oom = 1;
    return flags;
  }
  char *o = r->line + r->line_len;
  *o++ = '"';
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      *o++ = (char)c;
      i++;
      continue;
    }
    *slow = 1;
    if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = (char)c;
      i++;
    } else if (c == '\n') {
      *o++ = '\\';
      *o++ = 'n';
      i++;
    } else if (c == '\t') {
      *o++ = '\\';
      *o++ = 't';
      i++;
    } else if (c < 0x80) {  // other C0, DEL
      *o++ = '\\';
      *o++ = '\\';
      *o++ = 'x';
      *o++ = HEX[c >> 4];
      *o++ = HEX[c & 15];
      flags |= F_ESCAPED;
      i++;
    } else {
      size_t len = utf8_seq(s + i, n - i);
      if (len == 2 && c == 0xc2 && s[i + 1] < 0xa0) {  // C1 control
        memcpy(o, "\\\\u00", 5);
        o += 5;
        *o++ = HEX[s[i + 1] >> 4];
        *o++ = HEX[s[i + 1] & 15];
        flags |= F_ESCAPED;
        i += 2;
      } else if (len > 0) {
        memcpy(o, s + i, len);
        o += len;
        i += len;
      } else {
        *o++ = '\\';
        *o++ = '\\';
        *o++ = 'x';
        *o++ = HEX[c >> 4];
        *o++ = HEX[c & 15];
        flags |= F_ESCAPED;
        i++;
      }
    }
  }
  *o++ = '"';
  r->line_len = o - r->line;
  return flags;
}

static int put_value(reader *r, const unsigned char *s, size_t n, int *slow) {
  size_t from = r->line_len;
  int flags = put_value_text(r, s, n, slow);
  scan_secret(r, from);
  return flags;
}

// ---- one entry ----

static int same_name(const field *a, const field *b) {
  return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0;
}

// The fields encode() and the filters look at, found in one pass over the entry (collect_end).
enum {
  K_MESSAGE,
  K_PRIORITY,
  K_UNIT,
  K_HOSTNAME,
  K_BOOT_ID,
  K_TRANSPORT,
  K_MACHINE_ID,
  K_IDENTIFIER,
  K_COMM,
  K_PID,
  N_KNOWN
};
static const char *const KNOWN[N_KNOWN] = {
    "MESSAGE",    "PRIORITY",    "_SYSTEMD_UNIT",     "_HOSTNAME", "_BOOT_ID",
    "_TRANSPORT", "_MACHINE_ID", "SYSLOG_IDENTIFIER", "_COMM",     "_PID"};
static const size_t KNOWN_LEN[N_KNOWN] = {7, 8, 13, 9, 8, 10, 11, 17, 5, 4};

// The one field KNOWN[i] (NULL when absent or repeated: a repeated field is shipped as it is).
static const field *single(const reader *r, int i) {
  return r->known_count[i] == 1 ? r->known[i] : NULL;
}

static int in_list(const reader *r, int which, const field *f) {
  if (f == NULL) return 0;
  for (size_t i = 0; i < r->list_len[which]; i++) {
    const char *s = r->lists[which][i];
    if (strlen(s) == f->value_len && memcmp(s, f->value, f->value_len) == 0) return 1;
  }
  return 0;
}

// collect: before the entry's first field.
static void collect_begin(reader *r) {
  r->names_changed = !r->layout_ok || r->no_cache;
  r->layout_ok = 0;  // until collect_end
  r->n_fields = 0;
}

// collect: the entry's next field, `NAME=value` (len bytes). Returns 0, or -ENOMEM.
static int collect_add(reader *r, const char *data, size_t len) {
  if (r->n_fields == r->fields_cap) {
    size_t cap = r->fields_cap ? r->fields_cap * 2 : 64;
    field *f = realloc(r->fields, cap * sizeof *f);
    if (f == NULL) return -ENOMEM;
    r->fields = f;
    slot *sl = realloc(r->slots, cap * sizeof *sl);
    if (sl == NULL) return -ENOMEM;
    memset(sl + r->fields_cap, 0, (cap - r->fields_cap) * sizeof *sl);
    r->slots = sl;
    const field **b = realloc(r->b64, (cap + 1) * sizeof *b);
    if (b == NULL) return -ENOMEM;
    r->b64 = b;
    int32_t *c = realloc(r->chain, cap * sizeof *c);
    if (c == NULL) return -ENOMEM;
    r->chain = c;
    uint32_t *l = realloc(r->last, cap * sizeof *l);
    if (l == NULL) return -ENOMEM;
    r->last = l;
    r->fields_cap = cap;
    r->names_changed = 1;  // known[] points into the old table
  }
  slot *sl = &r->slots[r->n_fields];
  if (r->no_cache || sl->raw_len == 0 || len != sl->raw_len || memcmp(data, sl->raw, len) != 0) {
    size_t name_len = sl->name_len;
    if (r->no_cache || sl->raw_len == 0 || len <= name_len || data[name_len] != '=' ||
        memcmp(data, sl->raw, name_len) != 0) {  // another name than this slot's last one
      const char *eq = memchr(data, '=', len);
      if (eq == NULL) return 0;  // not a field (libsystemd never returns one)
      name_len = (size_t)(eq - data);
      r->names_changed = 1;
    }
    sl->raw_len = 0;  // until the copy is whole
    sl->json_ok = 0;
    if (reserve(&sl->raw, &sl->raw_cap, len) < 0) return -ENOMEM;
    memcpy(sl->raw, data, len);
    sl->raw_len = len;
    sl->name_len = name_len;
  }
  field *f = &r->fields[r->n_fields++];
  f->name = sl->raw;
  f->name_len = sl->name_len;
  f->value = sl->raw + sl->name_len + 1;
  f->value_len = sl->raw_len - sl->name_len - 1;
  return 0;
}

// collect: after the entry's last field. Links each field to its first namesake and finds the
// KNOWN fields, unless the entry's names are the last entry's (then the links are the same).
static void collect_end(reader *r) {
  if (r->n_fields != r->last_n_fields) r->names_changed = 1;
  r->last_n_fields = r->n_fields;
  r->layout_ok = 1;
  if (!r->names_changed) return;
  // Each field's first namesake, in one pass: a small hash table of the names seen, by length and
  // first and last character (journald's names are upper case, digits and '_').
  int32_t bucket[NAME_BUCKETS];
  memset(bucket, -1, sizeof bucket);
  for (size_t k = 0; k < r->n_fields; k++) {
    field *f = &r->fields[k];
    const unsigned char *nm = (const unsigned char *)f->name;
    size_t h =
        (f->name_len * 31 + (f->name_len ? nm[0] * 7u + nm[f->name_len - 1] : 0)) % NAME_BUCKETS;
    f->first = (uint32_t)k;
    f->count = 1;
    f->next = 0;
    // the bucket's first fields, linked through chain[]
    int32_t j = bucket[h];
    while (j >= 0 && !same_name(&r->fields[j], f)) j = r->chain[j];
    if (j < 0) {
      r->chain[k] = bucket[h];
      bucket[h] = (int32_t)k;
      continue;
    }
    field *first = &r->fields[j];
    f->first = (uint32_t)j;
    first->count++;
    r->fields[first->next == 0 ? (uint32_t)j : r->last[j]].next = (uint32_t)k;
    r->last[j] = (uint32_t)k;
  }
  // The KNOWN fields: the first of each name, and how many there are.
  memset(r->known_count, 0, sizeof r->known_count);
  for (size_t k = 0; k < r->n_fields; k++) {
    const field *f = &r->fields[k];
    const char *name = f->name;
    if (f->name_len < 4 || (name[0] != '_' && name[0] != 'M' && name[0] != 'P' && name[0] != 'S'))
      continue;
    for (size_t i = 0; i < N_KNOWN; i++) {
      if (KNOWN_LEN[i] != f->name_len || memcmp(KNOWN[i], name, f->name_len) != 0) continue;
      if (r->known_count[i]++ == 0) r->known[i] = f;
      break;
    }
  }
}

// Copies the current entry's fields into their slots. Returns 0, or a negative errno.
static int collect(reader *r) {
  collect_begin(r);
  sd.restart_data(r->j);
  const void *data;
  size_t len;
  int e;
  while ((e = sd.enumerate_data(r->j, &data, &len)) > 0)
    if ((e = collect_add(r, data, len)) < 0) return e;
  if (e < 0) return e;
  collect_end(r);
  return 0;
}

// A field's value as a JSON string (put_value), from its slot when the value was encoded before.
static int put_field(reader *r, const field *f, int *slow) {
  slot *sl = &r->slots[f - r->fields];
  if (!sl->json_ok) {
    size_t from = r->line_len;
    int value_slow = 0;
    int flags = put_value_text(r, (const unsigned char *)f->value, f->value_len, &value_slow);
    if (r->oom) return flags;
    size_t n = r->line_len - from;
    sl->flags = flags;
    sl->slow = value_slow;
    sl->secret = has_trigger(r, (const unsigned char *)r->line + from, n);
    if (!r->no_cache && reserve(&sl->json, &sl->json_cap, n) == 0) {
      memcpy(sl->json, r->line + from, n);
      sl->json_len = n;
      sl->json_ok = 1;
    }
  } else {
    put(r, sl->json, sl->json_len);
  }
  *slow |= sl->slow;
  r->secret |= sl->secret;
  return sl->flags;
}

static int note_b64(reader *r, const field *f, int flags) {
  if (flags & F_BASE64) r->b64[r->n_b64++] = f;
  return flags;
}

static void put_time(reader *r, uint64_t usec) {
  // `"YYYY-MM-DDTHH:MM:SS` of the last second formatted: entries come many to a second
  static __thread time_t cached = -1;
  static __thread char head[64];
  time_t secs = (time_t)(usec / 1000000);
  if (secs != cached) {
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(head, sizeof head, "\"%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached = secs;
  }
  char buf[48];
  size_t n = strlen(head);
  memcpy(buf, head, n);
  buf[n++] = '.';
  unsigned frac = (unsigned)(usec % 1000000);
  for (int d = 5; d >= 0; d--, frac /= 10) buf[n + (size_t)d] = (char)('0' + frac % 10);
  n += 6;
  buf[n++] = 'Z';
  buf[n++] = '"';
  put(r, buf, n);
}

static void put_key(reader *r, const char *key, int *first) {
  if (!*first) PUTS(r, ",");
  *first = 0;
  PUTS(r, "\"");
  put(r, key, strlen(key));
  PUTS(r, "\":");
}

static int is_field_name(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')) return 0;
  return 1;
}

static const char *const SEVERITIES[] = {"emerg",   "alert",  "crit", "err",
                                         "warning", "notice", "info", "debug"};

// The mapped fields, shipped under guard's names rather than the journal's.
static const struct {
  int known;
  const char *key;
} MAPPED[] = {
    {K_UNIT, "unit"},           {K_HOSTNAME, "hostname"},     {K_BOOT_ID, "boot_id"},
    {K_TRANSPORT, "transport"}, {K_MACHINE_ID, "machine_id"}, {K_IDENTIFIER, "program"},
};
#define N_MAPPED (sizeof MAPPED / sizeof MAPPED[0])

// Writes n in decimal at o; returns the length.
static size_t put_u64(char *o, uint64_t n) {
  char tmp[24];
  size_t len = 0;
  do tmp[len++] = (char)('0' + n % 10);
  while ((n /= 10) != 0);
  for (size_t k = 0; k < len; k++) o[k] = tmp[len - 1 - k];
  return len;
}

// The value of hex digits at s (up to the first non-hex character).
static uint64_t parse_hex(const char *s) {
  uint64_t v = 0;
  for (;; s++) {
    unsigned c = (unsigned char)*s, d;
    if (c - '0' < 10u)
      d = c - '0';
    else if ((c | 0x20) - 'a' < 6u)
      d = (c | 0x20) - 'a' + 10;
    else
      return v;
    v = v << 4 | d;
  }
}

// Encodes the current entry (its fields collected) as one event line. `cursor` is its cursor.
// Returns the event's flags; meta gets the message's place in the line and the entry's bits.
static void encode(reader *r, const char *cursor, uint64_t usec, int32_t meta[3]) {
  int slow = 0, flags = 0;
  r->line_len = 0;
  r->secret = 0;
  // id and offset from the cursor's seqnum id (s=) and seqnum (i=, hex); libsystemd writes them
  // first, as `s=…;i=…;`
  const char *s = NULL, *i = NULL;
  size_t s_len = 0;
  if (cursor[0] == 's' && cursor[1] == '=') {
    s = cursor;
    s_len = strcspn(s + 2, ";");
    if (s[2 + s_len] == ';' && s[3 + s_len] == 'i' && s[4 + s_len] == '=') i = s + 2 + s_len;
  }
  if (s == NULL) s = strstr(cursor, "s=");
  if (i == NULL) i = strstr(cursor, ";i=");
  if (s != NULL) s_len = strcspn(s + 2, ";");
  uint64_t seqnum = i ? parse_hex(i + 3) : 0;
  char num[24];
  size_t num_len = put_u64(num, seqnum);
  PUTS(r, "{\"id\":\"");
  if (s) put(r, s + 2, s_len);
  PUTS(r, ":");
  put(r, num, num_len);
  PUTS(r, "\",\"time\":");
  put_time(r, usec);
  PUTS(r, ",\"offset\":");
  put(r, num, num_len);
  PUTS(r, ",\"message\":");
  const field *message = r->known_count[K_MESSAGE] ? r->known[K_MESSAGE] : NULL;
  int message_single = r->known_count[K_MESSAGE] == 1;
  meta[0] = (int32_t)r->line_len;
  r->n_b64 = 0;
  if (message)
    flags |= note_b64(r, message, put_field(r, message, &slow));
  else
    PUTS(r, "\"\"");
  meta[1] = (int32_t)r->line_len;
  PUTS(r, ",\"fields\":{");
  int first = 1;
  const field *prio = single(r, K_PRIORITY);
  int severity = prio && prio->value_len == 1 && prio->value[0] >= '0' && prio->value[0] <= '7';
  if (severity) {
    put_key(r, "severity", &first);
    PUTS(r, "\"");
    const char *name = SEVERITIES[prio->value[0] - '0'];
    put(r, name, strlen(name));
    PUTS(r, "\"");
  }
  const field *mapped[N_MAPPED];
  for (size_t m = 0; m < N_MAPPED; m++) {
    mapped[m] = single(r, MAPPED[m].known);
    if (mapped[m] == NULL) continue;
    put_key(r, MAPPED[m].key, &first);
    flags |= note_b64(r, mapped[m], put_field(r, mapped[m], &slow));
  }
  if (mapped[N_MAPPED - 1] == NULL) {  // no SYSLOG_IDENTIFIER: the program is the process's name
    const field *comm = single(r, K_COMM);
    if (comm) {
      put_key(r, "program", &first);
      flags |= put_field(r, comm, &slow);
    }
  }
  const field *pid = single(r, K_PID);
  int pid_numeric = pid && pid->value_len > 0 && pid->value_len <= 10;
  for (size_t k = 0; pid_numeric && k < pid->value_len; k++)
    if (pid->value[k] < '0' || pid->value[k] > '9') pid_numeric = 0;
  if (pid_numeric) {
    put_key(r, "pid", &first);
    put(r, pid->value, pid->value_len);
  }
  // Every other field by its journal name (upper case: no clash with the names above); a repeated
  // one as an array of its values in the order the entry holds them.
  for (size_t k = 0; k < r->n_fields; k++) {
    const field *f = &r->fields[k];
    if (f == message && message_single) continue;
    if ((f == prio && severity) || (f == pid && pid_numeric)) continue;
    if (f->first != k) continue;  // with its first namesake
    int skip = 0;
    for (size_t m = 0; m < N_MAPPED && !skip; m++) skip = f == mapped[m];
    if (skip) continue;
    size_t count = f->count;
    if (!first) PUTS(r, ",");
    first = 0;
    if (is_field_name(f->name, f->name_len)) {
      PUTS(r, "\"");
      put(r, f->name, f->name_len);
      PUTS(r, "\"");
    } else {  // not a name journald accepts: a damaged or forged file
      flags |= F_ESCAPED | put_value(r, (const unsigned char *)f->name, f->name_len, &slow);
    }
    PUTS(r, ":");
    if (count > 1) PUTS(r, "[");
    size_t done = 0;
    int binary = 0;
    for (size_t q = k; done < count; q = r->fields[q].next) {
      if (done++) PUTS(r, ",");
      binary |= put_field(r, &r->fields[q], &slow);
    }
    flags |= binary;
    if (binary & F_BASE64) r->b64[r->n_b64++] = f;
    if (count > 1) PUTS(r, "]");
  }
  if (r->n_b64 > 0) {  // which values are base64: the journal's names of their fields
    put_key(r, "base64", &first);
    PUTS(r, "[");
    for (size_t k = 0; k < r->n_b64; k++) {
      int ignored = 0;
      if (k) PUTS(r, ",");
      put_value(r, (const unsigned char *)r->b64[k]->name, r->b64[k]->name_len, &ignored);
    }
    PUTS(r, "]");
  }
  PUTS(r, "}");
  if (flags) {
    PUTS(r, ",\"flags\":[");
    int n = 0;
    if (flags & F_ESCAPED) PUTS(r, "\"escaped\""), n++;
    if (flags & F_BASE64) {
      if (n++) PUTS(r, ",");
      PUTS(r, "\"base64\"");
    }
    if (flags & F_TRUNCATED) {
      if (n++) PUTS(r, ",");
      PUTS(r, "\"truncated\"");
    }
    PUTS(r, "]");
  }
  put(r, r->tail, r->tail_len);
  meta[2] =
      (slow ? BIT_SLOW : 0) | (flags ? BIT_FLAGS : 0) | (r->secret || r->mark_all ? BIT_SECRET : 0);
}

// After collect(): 0 when the include/exclude lists leave the entry out, else 1 with the entry
// encoded in r->line (meta: see read), or -ENOMEM.
static int filter_encode(reader *r, const char *cursor, int32_t meta[3]) {
  const field *unit = single(r, K_UNIT);
  const field *ident = single(r, K_IDENTIFIER);
  int keep = 1;
  if (r->list_len[INCLUDE_UNITS] || r->list_len[INCLUDE_IDS])
    keep = in_list(r, INCLUDE_UNITS, unit) || in_list(r, INCLUDE_IDS, ident);
  if (in_list(r, EXCLUDE_UNITS, unit) || in_list(r, EXCLUDE_IDS, ident)) keep = 0;
  if (!keep) return 0;
  // the entry's realtime, as sd_journal_get_realtime_usec would read it again
  const char *t = strstr(cursor, ";t=");
  r->oom = 0;
  encode(r, cursor, t ? parse_hex(t + 3) : 0, meta);
  return r->oom ? -ENOMEM : 1;
}

// ---- N-API ----

static void reader_free(reader *r) {
  if (r->j) sd.close(r->j);
  r->j = NULL;
  for (size_t k = 0; k < r->fields_cap; k++) {
    free(r->slots[k].raw);
    free(r->slots[k].json);
  }
  free(r->slots);
  free(r->fields);
  free(r->chain);
  free(r->last);
  free(r->b64);
  free(r->line);
  free(r->tail);
  for (int w = 0; w < 4; w++) {
    for (size_t i = 0; i < r->list_len[w]; i++) free(r->lists[w][i]);
    free(r->lists[w]);
  }
  for (size_t i = 0; i < r->n_triggers; i++) free(r->triggers[i]);
  free(r->triggers);
  free(r->trigger_pairs);
  memset(r, 0, sizeof *r);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  // A read in flight references the handle, so this runs while one is only when the environment
  // goes away (the process exits): the thread may still be in the reader, which is left to the
  // exit.
  if (((reader *)data)->busy) return;
  reader_free(data);
  free(data);
}

static reader *get_reader(napi_env env, napi_value v) {
  reader *r = NULL;
  if (napi_get_value_external(env, v, (void **)&r) != napi_ok || r == NULL) {
    napi_throw_type_error(env, NULL, "expected a journal handle");
    return NULL;
  }
  if (r->j == NULL || r->close_pending) {
    napi_throw_error(env, "ECLOSED", "journal handle is closed");
    return NULL;
  }
  if (r->busy) {
    napi_throw_error(env, "EBUSY", "a read of this journal handle is in flight");
    return NULL;
  }
  return r;
}

// The arguments of a call on a reader (up to n; those not given are undefined) and the reader its
// first one is the handle of; NULL, with an exception pending, when it is none.
static reader *reader_call(napi_env env, napi_callback_info info, napi_value *argv, size_t n) {
  napi_get_cb_info(env, info, &n, argv, NULL, NULL);
  return get_reader(env, argv[0]);
}

static char *get_string(napi_env env, napi_value v) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return NULL;
  char *s = malloc(n + 1);
  if (s == NULL) return NULL;
  napi_get_value_string_utf8(env, v, s, n + 1, &n);
  return s;
}

// A reader's encoding options from open()'s arguments (tail, maxValueBytes, lists, triggers, at
// argv[0..3]); NULL when out of memory.
static reader *reader_new(napi_env env, napi_value *argv, size_t argc) {
  reader *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->tail = get_string(env, argv[0]);
  r->tail_len = r->tail ? strlen(r->tail) : 0;
  int64_t max_value = 0;
  napi_get_value_int64(env, argv[1], &max_value);
  r->max_value = max_value > 0 ? (size_t)max_value : 65536;
  for (int w = 0; w < 4; w++) {
    napi_value list;
    uint32_t len = 0;
    if (napi_get_element(env, argv[2], w, &list) != napi_ok ||
        napi_get_array_length(env, list, &len) != napi_ok)
      len = 0;
    r->lists[w] = calloc(len + 1, sizeof(char *));
    for (uint32_t i = 0; i < len && r->lists[w]; i++) {
      napi_value e;
      napi_get_element(env, list, i, &e);
      char *s = get_string(env, e);
      if (s) r->lists[w][r->list_len[w]++] = s;
    }
  }
  // Fails closed: a word that cannot be taken (no memory, not a string, shorter than two bytes)
  // marks every entry, so that none escapes redaction unlooked at.
  uint32_t n_triggers = 0;
  if (argc >= 4 && napi_get_array_length(env, argv[3], &n_triggers) == napi_ok && n_triggers > 0) {
    r->triggers = calloc(n_triggers, sizeof(char *));
    if (r->triggers == NULL) r->mark_all = 1;
    for (uint32_t i = 0; i < n_triggers && r->triggers; i++) {
      napi_value e;
      napi_get_element(env, argv[3], i, &e);
      char *w = get_string(env, e);
      if (w == NULL || w[0] == 0 || w[1] == 0 ||
          (r->trigger_pairs == NULL && (r->trigger_pairs = calloc(1, 65536)) == NULL)) {
        free(w);
        r->mark_all = 1;
        continue;
      }
      for (char *c = w; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c |= 0x20;
      r->trigger_pairs[(unsigned char)w[0] << 8 | (unsigned char)w[1]] = 1;
      r->triggers[r->n_triggers++] = w;
    }
  }
  return r;
}

// open(fds: number[], tail: string, maxValueBytes: number, lists: string[][4], triggers: string[])
// → handle
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char why[512];
  if (load_libsystemd(why, sizeof why) < 0) {
    napi_throw_error(env, "ENOLIBSYSTEMD", why);
    return NULL;
  }
  uint32_t n_fds = 0;
  if (argc < 4 || napi_get_array_length(env, argv[0], &n_fds) != napi_ok || n_fds == 0 ||
      n_fds > 4096) {
    napi_throw_type_error(env, NULL, "open(fds, tail, maxValueBytes, lists)");
    return NULL;
  }
  int fds[4096];
  for (uint32_t i = 0; i < n_fds; i++) {
    napi_value e;
    napi_get_element(env, argv[0], i, &e);
    if (napi_get_value_int32(env, e, &fds[i]) != napi_ok || fds[i] < 0) {
      napi_throw_type_error(env, NULL, "fds must be descriptors");
      return NULL;
    }
  }
  reader *r = reader_new(env, argv + 1, argc - 1);
  if (r == NULL) return throw_errno(env, ENOMEM, "open");
  int e = sd.open_files_fd(&r->j, fds, n_fds, 0);
  if (e < 0) {  // the descriptors are still ours (the caller's) to close
    r->j = NULL;
    reader_free(r);
    free(r);
    return throw_errno(env, -e, "sd_journal_open_files_fd");
  }
  // libsystemd would silently cut compressed values at 64 KiB; this reader cuts (and flags) itself.
  sd.set_data_threshold(r->j, 0);
  napi_value handle;
  napi_create_external(env, r, finalize, NULL, &handle);
  return handle;
}

static napi_value cursor_value(napi_env env, reader *r) {
  char *c = NULL;
  int e = sd.get_cursor(r->j, &c);
  if (e < 0) return throw_errno(env, -e, "sd_journal_get_cursor");
  napi_value v;
  napi_create_string_utf8(env, c, NAPI_AUTO_LENGTH, &v);
  free(c);
  return v;
}

// seekHead(h); seekTail(h) → the last entry's cursor (the reader is on it: read() goes on after
// it), or null when the journal is empty (then from the head).
static napi_value js_seek_head(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  reader *r = reader_call(env, info, argv, 1);
  if (r == NULL) return NULL;
  r->pending = 0;
  int e = sd.seek_head(r->j);
  if (e < 0) return throw_errno(env, -e, "sd_journal_seek_head");
  return NULL;
}

static napi_value js_seek_tail(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  reader *r = reader_call(env, info, argv, 1);
  if (r == NULL) return NULL;
  r->pending = 0;
  int e = sd.seek_tail(r->j);
  if (e < 0) return throw_errno(env, -e, "sd_journal_seek_tail");
  e = sd.previous(r->j);
  if (e < 0) return throw_errno(env, -e, "sd_journal_previous");
  napi_value out;
  if (e == 0) {
    sd.seek_head(r->j);
    napi_get_null(env, &out);
    return out;
  }
  return cursor_value(env, r);
}

// The value of part `key` (s, i, b, m, t, x) of a cursor: its length, *v at its start.
static size_t cursor_part(const char *c, char key, const char **v) {
  for (const char *p = c; *p; p++) {
    if ((p == c || p[-1] == ';') && p[0] == key && p[1] == '=') {
      *v = p + 2;
      return strcspn(p + 2, ";");
    }
  }
  *v = "";
  return 0;
}

static int same_part(const char *a, const char *b, char key) {
  const char *va, *vb;
  size_t na = cursor_part(a, key, &va), nb = cursor_part(b, key, &vb);
  return na == nb && memcmp(va, vb, na) == 0;
}

// The same entry under another seqnum id: journald's flush of /run to /var gives the copies a new
// s= and keeps boot id, timestamps and hash.
static int same_copy(const char *a, const char *b) {
  return same_part(a, b, 'b') && same_part(a, b, 'm') && same_part(a, b, 't') &&
         same_part(a, b, 'x');
}

// Entries sharing a timestamp looked through for the copy of a saved entry (see js_seek_cursor).
#define MAX_SAME_TIME 1000000

// seekCursor(h, cursor) → the cursor of the entry it landed on (or null: nothing at or after it).
// The reader stays *before* that entry: the caller decides whether it is the saved one (skip it
// with skipOne) — libsystemd's own test_cursor misses an entry whose seqnum id changed when
// journald flushed /run to /var. When the saved seqnum id is in no file held (the /run journal
// was flushed), libsystemd lands on the first entry of the saved timestamp, and entries sharing it
// are in hash order there: this looks on through them for the saved entry's copy and lands on it
// when it is there.
static napi_value js_seek_cursor(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  reader *r = reader_call(env, info, argv, 2);
  if (r == NULL) return NULL;
  r->pending = 0;
  char *cursor = get_string(env, argv[1]);
  if (cursor == NULL) return throw_errno(env, EINVAL, "cursor");
  int e = sd.seek_cursor(r->j, cursor);
  if (e >= 0) e = sd.next(r->j);
  char *landing = NULL;
  if (e > 0) {
    int g = sd.get_cursor(r->j, &landing);
    if (g < 0) e = g;
  }
  if (e > 0 && !same_part(cursor, landing, 's') && !same_copy(cursor, landing) &&
      same_part(cursor, landing, 't')) {
    for (int k = 0; k < MAX_SAME_TIME; k++) {
      char *c = NULL;
      if (sd.next(r->j) <= 0 || sd.get_cursor(r->j, &c) < 0) break;
      int same_time = same_part(cursor, c, 't');
      if (same_time && same_copy(cursor, c)) {
        free(landing);
        landing = c;
        break;
      }
      free(c);
      if (!same_time) break;
    }
  }
  free(cursor);
  if (e < 0) {
    free(landing);
    return throw_errno(env, -e, "seeking the cursor");
  }
  napi_value out;
  if (e == 0 || landing == NULL) {
    free(landing);
    napi_get_null(env, &out);
    return out;
  }
  // back before the landing entry, by its own cursor (previous() would lose it at the head)
  e = sd.seek_cursor(r->j, landing);
  napi_create_string_utf8(env, landing, NAPI_AUTO_LENGTH, &out);
  free(landing);
  if (e < 0) return throw_errno(env, -e, "sd_journal_seek_cursor");
  return out;
}

// skipOne(h): steps over the next entry without shipping it (the saved entry found again).
static napi_value js_skip_one(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  reader *r = reader_call(env, info, argv, 1);
  if (r == NULL) return NULL;
  int e = sd.next(r->j);
  if (e < 0) return throw_errno(env, -e, "sd_journal_next");
  return NULL;
}

// One read()'s buffers and what it found; read_chunk() touches nothing of N-API, so that
// readAsync() can run it on a thread of libuv's pool.
typedef struct {
  char *out;
  size_t out_len;
  double *sizes;
  int32_t *meta;
  char *cursors;
  uint32_t max_entries;
  uint32_t count, filtered, at_end;
  double need;
  int err;  // an errno, when nothing was read or filtered
} chunk;

// read()'s and readAsync()'s arguments after the handle (argv[1..5]); 0, or -1 with a TypeError
// pending.
static int chunk_args(napi_env env, napi_value *argv, chunk *c) {
  size_t out_len, sizes_len, meta_len, cur_len;
  napi_typedarray_type t1, t2;
  napi_value ab;
  size_t off;
  memset(c, 0, sizeof *c);
  if (napi_get_buffer_info(env, argv[1], (void **)&c->out, &out_len) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &t1, &sizes_len, (void **)&c->sizes, &ab, &off) !=
          napi_ok ||
      t1 != napi_float64_array ||
      napi_get_typedarray_info(env, argv[3], &t2, &meta_len, (void **)&c->meta, &ab, &off) !=
          napi_ok ||
      t2 != napi_int32_array ||
      napi_get_buffer_info(env, argv[4], (void **)&c->cursors, &cur_len) != napi_ok ||
      napi_get_value_uint32(env, argv[5], &c->max_entries) != napi_ok) {
    napi_throw_type_error(env, NULL, "read(h, out, sizes, meta, cursors, maxEntries)");
    return -1;
  }
  c->out_len = out_len;
  if (c->max_entries > sizes_len) c->max_entries = sizes_len;
  if (c->max_entries > meta_len / 3) c->max_entries = meta_len / 3;
  if (cur_len / CURSOR_STRIDE < 1)
    c->max_entries = 0;
  else if (c->max_entries > cur_len / CURSOR_STRIDE - 1)
    c->max_entries = cur_len / CURSOR_STRIDE - 1;
  return 0;
}

// The entries after the reader's position into the chunk's buffers (see read() below). An error
// after some entries ends the chunk there (the next read meets it again); with none, c->err.
static void read_chunk(reader *r, chunk *c) {
  size_t used = 0;
  char consumed[CURSOR_STRIDE] = "";
  int consumed_emitted = 0;  // the last entry consumed is slot count - 1's (else `consumed`)
  int err = 0;
  while (c->count < c->max_entries) {
    if (!r->pending) {
      int e = sd.next(r->j);
      if (e < 0) {
        err = -e;
        break;
      }
      if (e == 0) {
        c->at_end = 1;
        break;
      }
      char *cur = NULL;
      e = sd.get_cursor(r->j, &cur);
      if (e < 0) {
        err = -e;
        break;
      }
      if (strlen(cur) >= CURSOR_STRIDE) {
        free(cur);
        err = EBADMSG;
        break;
      }
      strcpy(r->pending_cursor, cur);
      free(cur);
      e = collect(r);
      if (e < 0) {
        err = -e;
        break;
      }
      e = filter_encode(r, r->pending_cursor, r->pending_meta);
      if (e < 0) {
        err = -e;
        break;
      }
      if (e == 0) {
        c->filtered++;
        strcpy(consumed, r->pending_cursor);
        consumed_emitted = 0;
        continue;
      }
      r->pending = 1;
    }
    if (used + r->line_len > c->out_len) {
      if (c->count == 0 && used == 0) c->need = (double)r->line_len;
      break;
    }
    memcpy(c->out + used, r->line, r->line_len);
    used += r->line_len;
    c->sizes[c->count] = (double)r->line_len;
    memcpy(c->meta + 3 * c->count, r->pending_meta, sizeof r->pending_meta);
    strcpy(c->cursors + (size_t)c->count * CURSOR_STRIDE, r->pending_cursor);  // NUL-terminated
    consumed_emitted = 1;
    r->pending = 0;
    c->count++;
  }
  if (err && c->count == 0 && c->filtered == 0) {
    c->err = err;
    return;
  }
  if (consumed_emitted) strcpy(consumed, c->cursors + (size_t)(c->count - 1) * CURSOR_STRIDE);
  memset(c->cursors + (size_t)c->count * CURSOR_STRIDE, 0, CURSOR_STRIDE);
  strcpy(c->cursors + (size_t)c->count * CURSOR_STRIDE, consumed);
}

static napi_value chunk_result(napi_env env, const chunk *c) {
  napi_value result, v;
  napi_create_array_with_length(env, 4, &result);
  napi_create_uint32(env, c->count, &v);
  napi_set_element(env, result, 0, v);
  napi_create_uint32(env, c->filtered, &v);
  napi_set_element(env, result, 1, v);
  napi_get_boolean(env, c->at_end != 0, &v);
  napi_set_element(env, result, 2, v);
  napi_create_double(env, c->need, &v);
  napi_set_element(env, result, 3, v);
  return result;
}

// read(h, out, sizes, meta, cursors, maxEntries) → [count, filtered, atEnd, need]
// Event lines go one after another into `out`; sizes[k] is line k's length, meta[3k..3k+2] its
// message's [start, end) within the line and its bits, cursors[k*160…] its cursor (NUL-terminated);
// slot `count` holds the cursor of the last entry consumed (a filtered-out one included), or "".
// need > 0: the next entry alone needs that many bytes of `out` (call again with a bigger one).
static napi_value js_read(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  reader *r = reader_call(env, info, argv, 6);
  chunk c;
  if (r == NULL || chunk_args(env, argv, &c) < 0) return NULL;
  read_chunk(r, &c);
  if (c.err) return throw_errno(env, c.err, "reading the journal");
  return chunk_result(env, &c);
}

// A readAsync() in flight: the handle, the four buffers and the callback are referenced until it
// completes, so that none is collected (or moved) while the thread writes into them.
typedef struct {
  reader *r;
  chunk c;
  napi_ref refs[7];  // handle, out, sizes, meta, cursors, (maxEntries: unused), done
  napi_async_work work;
} read_job;

static void job_execute(napi_env env, void *data) {
  (void)env;
  read_job *job = data;
  read_chunk(job->r, &job->c);
}

static void job_complete(napi_env env, napi_status status, void *data) {
  read_job *job = data;
  reader *r = job->r;
  r->busy = 0;
  if (r->close_pending && r->j) sd.close(r->j);  // close() came while the thread read
  if (r->close_pending) r->j = NULL;
  r->close_pending = 0;
  napi_value args[2], done, undefined;
  napi_get_undefined(env, &undefined);
  napi_get_null(env, &args[0]);
  args[1] = undefined;
  if (status != napi_ok) {
    args[0] = error_errno(env, ECANCELED, "reading the journal");
  } else if (job->c.err) {
    args[0] = error_errno(env, job->c.err, "reading the journal");
  } else {
    args[1] = chunk_result(env, &job->c);
  }
  napi_get_reference_value(env, job->refs[6], &done);
  for (int k = 0; k < 7; k++)
    if (job->refs[k]) napi_delete_reference(env, job->refs[k]);
  napi_delete_async_work(env, job->work);
  free(job);
  napi_call_function(env, undefined, done, 2, args, NULL);
}

// readAsync(h, out, sizes, meta, cursors, maxEntries, done(err, [count, filtered, atEnd, need]))
// read() on a thread of libuv's pool, so that the next chunk is read while JavaScript ships the
// last one. Until `done` is called the buffers are the thread's, and every other call on the
// handle throws EBUSY except close(), which then closes when the read ends.
static napi_value js_read_async(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  reader *r = reader_call(env, info, argv, 7);
  if (r == NULL) return NULL;
  napi_valuetype type;
  if (napi_typeof(env, argv[6], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "readAsync(h, out, sizes, meta, cursors, maxEntries, done)");
    return NULL;
  }
  read_job *job = calloc(1, sizeof *job);
  if (job == NULL) return throw_errno(env, ENOMEM, "readAsync");
  if (chunk_args(env, argv, &job->c) < 0) {
    free(job);
    return NULL;
  }
  job->r = r;
  napi_value name;
  napi_create_string_utf8(env, "guard:journal-read", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, job_execute, job_complete, job, &job->work) !=
      napi_ok) {
    free(job);
    return throw_errno(env, ENOMEM, "readAsync");
  }
  int refs_ok = 1;
  for (int k = 0; k < 7; k++)
    if (k != 5 && napi_create_reference(env, argv[k], 1, &job->refs[k]) != napi_ok) refs_ok = 0;
  if (!refs_ok || napi_queue_async_work(env, job->work) != napi_ok) {
    for (int k = 0; k < 7; k++)
      if (job->refs[k]) napi_delete_reference(env, job->refs[k]);
    napi_delete_async_work(env, job->work);
    free(job);
    return throw_errno(env, EAGAIN, "readAsync");
  }
  r->busy = 1;
  return NULL;
}

// For the unit tests of the encoding (no journal needed): encoder(tail, maxValueBytes, lists,
// triggers, cache) → a handle encodeEntry() takes, with the slots' cache on or off (off: every
// field copied, escaped and scanned afresh, the encoder as it was before the cache).
static napi_value js_encoder(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool cache = true;
  if (argc < 5 || napi_get_value_bool(env, argv[4], &cache) != napi_ok) {
    napi_throw_type_error(env, NULL, "encoder(tail, maxValueBytes, lists, triggers, cache)");
    return NULL;
  }
  reader *r = reader_new(env, argv, 4);
  if (r == NULL) return throw_errno(env, ENOMEM, "encoder");
  r->no_cache = !cache;
  napi_value handle;
  napi_create_external(env, r, finalize, NULL, &handle);
  return handle;
}

// encodeEntry(encoder, cursor, fields: Buffer[]) → [line, messageStart, messageEnd, bits], or null
// when the include/exclude lists leave the entry out. `fields` are `NAME=value`, as libsystemd
// hands them out (one that holds no '=' is skipped, as read() skips it).
static napi_value js_encode_entry(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  reader *r = NULL;
  uint32_t n = 0;
  char *cursor = argc >= 3 ? get_string(env, argv[1]) : NULL;
  if (argc < 3 || napi_get_value_external(env, argv[0], (void **)&r) != napi_ok || r == NULL ||
      r->j != NULL || cursor == NULL || napi_get_array_length(env, argv[2], &n) != napi_ok) {
    free(cursor);
    napi_throw_type_error(env, NULL, "encodeEntry(encoder, cursor, fields)");
    return NULL;
  }
  collect_begin(r);
  int e = 0;
  for (uint32_t k = 0; k < n && e == 0; k++) {
    napi_value v;
    void *data;
    size_t len;
    if (napi_get_element(env, argv[2], k, &v) != napi_ok ||
        napi_get_buffer_info(env, v, &data, &len) != napi_ok) {
      free(cursor);
      napi_throw_type_error(env, NULL, "fields must be Buffers");
      return NULL;
    }
    e = collect_add(r, data, len);
  }
  int32_t meta[3] = {0, 0, 0};
  if (e == 0) {
    collect_end(r);
    e = filter_encode(r, cursor, meta);
  }
  free(cursor);
  if (e < 0) return throw_errno(env, -e, "encodeEntry");
  napi_value out, v;
  if (e == 0) {
    napi_get_null(env, &out);
    return out;
  }
  napi_create_array_with_length(env, 4, &out);
  napi_create_buffer_copy(env, r->line_len, r->line, NULL, &v);
  napi_set_element(env, out, 0, v);
  for (int k = 0; k < 3; k++) {
    napi_create_int32(env, meta[k], &v);
    napi_set_element(env, out, (uint32_t)k + 1, v);
  }
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  reader *r = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&r) == napi_ok && r != NULL && r->j != NULL) {
    if (r->busy) {
      r->close_pending = 1;  // the read's completion closes it
      return NULL;
    }
    sd.close(r->j);  // closes the descriptors libsystemd was given
    r->j = NULL;
  }
  return NULL;
}

// dup(fd) → a new descriptor (close-on-exec) for the same open file: libsystemd gets the copy and
// closes it, the caller keeps the original to hand over again at the next re-open.
static napi_value js_dup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "dup(fd)");
    return NULL;
  }
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return throw_errno(env, errno, "dup");
  napi_value v;
  napi_create_int32(env, copy, &v);
  return v;
}

static napi_value js_available(napi_env env, napi_callback_info info) {
  (void)info;
  char why[512];
  napi_value v;
  if (load_libsystemd(why, sizeof why) < 0)
    napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &v);
  else
    napi_get_null(env, &v);
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"seekHead", NULL, js_seek_head, NULL, NULL, NULL, napi_default, NULL},
      {"seekTail", NULL, js_seek_tail, NULL, NULL, NULL, napi_default, NULL},
      {"seekCursor", NULL, js_seek_cursor, NULL, NULL, NULL, napi_default, NULL},
      {"skipOne", NULL, js_skip_one, NULL, NULL, NULL, napi_default, NULL},
      {"read", NULL, js_read, NULL, NULL, NULL, napi_default, NULL},
      {"readAsync", NULL, js_read_async, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"dup", NULL, js_dup, NULL, NULL, NULL, napi_default, NULL},
      {"unavailable", NULL, js_available, NULL, NULL, NULL, napi_default, NULL},
      {"encoder", NULL, js_encoder, NULL, NULL, NULL, napi_default, NULL},
      {"encodeEntry", NULL, js_encode_entry, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
