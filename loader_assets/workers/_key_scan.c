/* The integer key column of delimited text, as LOAD DATA reads it, in one pass over the bytes.

   `scan` reads whole records off a piece of a file (fields split by one delimiter byte, records by '\n', an escape
   byte making the next byte literal, no enclosing quotes) and writes each record's key as an int64. 64 bytes at a
   time become bit masks of newlines, delimiters and escapes (SSE2 where there is one), so a record costs a few
   instructions for its separators and a short walk to its key: about a third of Arrow's general CSV parser.

   Anything this path does not read exactly as `fingerprint._read_key` (Arrow) would — a carriage return, a record
   with another number of fields, a key that is not `-?digits` within int64 nor `\N` — returns
   None, and the caller reads the file with Arrow instead: the two paths never disagree, this one is only faster.

   Then what the loader does with a key column, a few ns a key where numpy and Arrow took tens: `mixed_sum` (the
   fingerprint's sum, one pass instead of numpy's eight over temporaries) and key sets (`fill_key_set`,
   `absent_keys`: a director chunk's keys hashed once, every child file of the chunk probed against them; Arrow's
   `is_in` built its set anew for each). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    uint64_t newline, delimiter, escape, other; /* `other`: a carriage return */
} Masks;

/* Bit i of each mask: byte i of p[0..63] is that byte. */
static inline Masks masks_of(const unsigned char *p, unsigned char delimiter, int escape) {
    Masks m = {0, 0, 0, 0};
#ifdef __SSE2__
    const __m128i newline = _mm_set1_epi8('\n'), separator = _mm_set1_epi8((char)delimiter),
                  escaping = _mm_set1_epi8((char)(escape >= 0 ? escape : '\n')), other = _mm_set1_epi8('\r');
    for (int lane = 0; lane < 4; lane++) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(p + 16 * lane));
        int shift = 16 * lane;
        m.newline |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, newline)) << shift;
        m.delimiter |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, separator)) << shift;
        m.escape |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, escaping)) << shift;
        m.other |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, other)) << shift;
    }
    if (escape < 0) m.escape = 0;
#else
    for (int i = 0; i < 64; i++) {
        uint64_t bit = (uint64_t)1 << i;
        m.newline |= p[i] == '\n' ? bit : 0;
        m.delimiter |= p[i] == delimiter ? bit : 0;
        m.escape |= escape >= 0 && p[i] == escape ? bit : 0;
        m.other |= p[i] == '\r' ? bit : 0;
    }
#endif
    return m;
}

/* Set bits of x, without the library call a compiler makes for __builtin_popcountll on baseline x86-64. */
static inline int64_t ones(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int64_t)((x * 0x0101010101010101ULL) >> 56);
}

typedef struct {
    const unsigned char *data;
    Py_ssize_t size;
    int columns, key_index, delimiter, escape;
    int64_t *keys;
    int64_t *null_at;
    Py_ssize_t records, nulls, capacity;
} Scan;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WORDS 1 /* 8 bytes at a time in a record's fields (the first byte is the lowest) */
#else
#define WORDS 0
#endif

static inline uint64_t word_at(const unsigned char *p) {
    uint64_t word;
    memcpy(&word, p, sizeof word);
    return word;
}

/* The high bit of the bytes of `word` equal to `byte` (the lowest one exactly; above it, maybe others too). */
static inline uint64_t bytes_equal(uint64_t word, unsigned char byte) {
    uint64_t x = word ^ (0x0101010101010101ULL * byte);
    return (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
}

static inline int eight_digits(uint64_t word) {
    return ((word & 0xF0F0F0F0F0F0F0F0ULL) | (((word + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ==
           0x3333333333333333ULL;
}

static inline uint64_t eight_digits_value(uint64_t word) { /* simdjson's parse_eight_digits_unrolled */
    word -= 0x3030303030303030ULL;
    word = word * 10 + (word >> 8);
    return (((word & 0x000000FF000000FFULL) * 0x000F424000000064ULL) +
            (((word >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32;
}

/* The key of the record starting at `start` (its end, a real newline or the end of the data, at `end`);
   0: written, -1: not for this path. */
static int read_key(Scan *s, Py_ssize_t start, Py_ssize_t end) {
    const unsigned char *d = s->data;
    Py_ssize_t i = start;
    for (int field = 0; field < s->key_index; field++, i++) { /* past the fields before the key */
        while (i < end) {
            if (WORDS && i + 8 <= s->size) { /* to the first delimiter or escape of the next 8 bytes, if any */
                uint64_t word = word_at(d + i);
                uint64_t found = bytes_equal(word, (unsigned char)s->delimiter) |
                                 (s->escape >= 0 ? bytes_equal(word, (unsigned char)s->escape) : 0);
                if (!found) {
                    i += 8;
                    continue;
                }
                i += __builtin_ctzll(found) >> 3;
                if (i >= end) break;
            }
            if (d[i] == s->delimiter) break;
            i += d[i] == s->escape ? 2 : 1;
        }
        if (i >= end) return -1;
    }
    int negative = i < end && d[i] == '-';
    Py_ssize_t first = i += negative;
    uint64_t value = 0;
    /* 8 digits at a time: a run of digits ends before `end` (a newline, or the end of the data) */
    while (WORDS && i + 8 <= s->size && eight_digits(word_at(d + i))) {
        value = value * 100000000 + eight_digits_value(word_at(d + i));
        i += 8;
    }
    for (unsigned digit; i < end && (digit = (unsigned)d[i] - '0') <= 9; i++) value = value * 10 + digit;
    Py_ssize_t digits = i - first;
    if (i < end && d[i] != s->delimiter) { /* not a number: only `\N` (NULL) is read here */
        if (digits || negative || d[i] != s->escape || end - i < 2 || d[i + 1] != 'N' ||
            (i + 2 < end && d[i + 2] != s->delimiter))
            return -1;
        s->null_at[s->nulls++] = s->records;
        s->keys[s->records++] = 0;
        return 0;
    }
    /* 19 digits fit in 64 bits (more are refused, whatever their value wrapped to); beyond int64, Arrow reads the
       column as uint64 */
    if (digits < 1 || digits > 19 || value > (uint64_t)INT64_MAX + (uint64_t)negative) return -1;
    s->keys[s->records++] = negative ? (int64_t)(0 - value) : (int64_t)value;
    return 0;
}

/* The bytes an escape makes literal, given the escape bytes of a block, in order: an escape itself escaped (a
   literal one, `\\`) escapes nothing. `carry`: in, the block's first byte is escaped; out, the next block's is. */
static inline uint64_t escaped_bytes(uint64_t escapes, uint64_t *carry) {
    uint64_t escaped = *carry;
    *carry = 0;
    while (escapes) {
        int bit = __builtin_ctzll(escapes);
        escapes &= escapes - 1;
        if (escaped >> bit & 1) continue;
        if (bit == 63)
            *carry = 1;
        else
            escaped |= (uint64_t)1 << (bit + 1);
    }
    return escaped;
}

/* Whole records of s->data: returns the bytes they span (through their last newline, or to the end when `final`),
   or -1. */
static Py_ssize_t scan_records(Scan *s, int final) {
    unsigned char tail[64];
    Py_ssize_t line_start = 0, consumed = 0;
    int64_t delimiters = 0, at_line_start = 0; /* delimiters before the block, and before the current record */
    uint64_t carry = 0;                        /* the block's first byte is escaped */
    for (Py_ssize_t base = 0; base < s->size; base += 64) {
        Py_ssize_t left = s->size - base;
        const unsigned char *p = s->data + base;
        uint64_t valid = ~(uint64_t)0;
        if (left < 64) {
            memset(tail, 0, sizeof tail); /* the padding is masked out below */
            memcpy(tail, p, (size_t)left);
            p = tail;
            valid = ((uint64_t)1 << left) - 1;
        }
        Masks m = masks_of(p, (unsigned char)s->delimiter, s->escape);
        m.newline &= valid, m.delimiter &= valid, m.escape &= valid, m.other &= valid;
        if (m.other) return -1; /* a carriage return */
        uint64_t escaped = escaped_bytes(m.escape, &carry);
        uint64_t newlines = m.newline & ~escaped, separators = m.delimiter & ~escaped;
        while (newlines) {
            int bit = __builtin_ctzll(newlines);
            newlines &= newlines - 1;
            int64_t before = delimiters + ones(separators & (((uint64_t)1 << bit) - 1));
            if (before - at_line_start != s->columns - 1 || s->records == s->capacity) return -1;
            if (read_key(s, line_start, base + bit) < 0) return -1;
            line_start = consumed = base + bit + 1;
            at_line_start = before;
        }
        delimiters += ones(separators);
    }
    if (final && line_start < s->size) { /* the last record, without a newline */
        if (carry || delimiters - at_line_start != s->columns - 1 || s->records == s->capacity) return -1;
        if (read_key(s, line_start, s->size) < 0) return -1;
        consumed = s->size;
    }
    return consumed;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer data, keys, null_at;
    int columns, key_index, delimiter, escape, final;
    if (!PyArg_ParseTuple(args, "y*w*w*iiiip", &data, &keys, &null_at, &columns, &key_index, &delimiter, &escape,
                          &final))
        return NULL;
    Scan s = {data.buf, data.len, columns, key_index, delimiter, escape, keys.buf, null_at.buf, 0, 0,
              keys.len / (Py_ssize_t)sizeof(int64_t)};
    Py_ssize_t consumed = -1;
    if (columns >= 1 && key_index >= 0 && key_index < columns && null_at.len >= keys.len) {
        Py_BEGIN_ALLOW_THREADS /* the buffers are held: other streams' Python runs meanwhile */
        consumed = scan_records(&s, final);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&null_at);
    if (consumed < 0) Py_RETURN_NONE;
    return Py_BuildValue("nnn", consumed, s.records, s.nulls);
}

/* sum((low * f0) ^ (low * f1) ^ (high * f2)) over the keys' 32-bit halves, as two sums (of each hash's high and
   low 32 bits: exact up to 2^32 keys); `keys` as uint64 (an int64's two's complement bits, as MariaDB reads them). */
static PyObject *mixed_sum(PyObject *self, PyObject *args) {
    Py_buffer keys;
    unsigned long long f0, f1, f2;
    if (!PyArg_ParseTuple(args, "y*KKK", &keys, &f0, &f1, &f2)) return NULL;
    if (keys.len % (Py_ssize_t)sizeof(uint64_t)) {
        PyBuffer_Release(&keys);
        PyErr_SetString(PyExc_ValueError, "mixed_sum needs 8-byte keys");
        return NULL;
    }
    const uint64_t *k = keys.buf;
    Py_ssize_t n = keys.len / (Py_ssize_t)sizeof(uint64_t);
    uint64_t high_sum = 0, low_sum = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t low = k[i] & 0xFFFFFFFFULL, high = k[i] >> 32;
        uint64_t hashed = (low * f0) ^ (low * f1) ^ (high * f2);
        high_sum += hashed >> 32;
        low_sum += hashed & 0xFFFFFFFFULL;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&keys);
    return Py_BuildValue("KK", (unsigned long long)high_sum, (unsigned long long)low_sum);
}

/* A key set: a power of two of uint64 slots (linear probing, at most half full), then one word saying whether
   EMPTY, the mark of a free slot, is itself a key. */
#define EMPTY UINT64_MAX

/* The slot of `t` (of mask + 1 slots) holding `key` (not EMPTY), else the free slot where it would go. */
static inline size_t slot_of(const uint64_t *t, uint64_t key, int shift, size_t mask) {
    size_t at = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> shift) & mask; /* Fibonacci hashing: the high bits */
    while (t[at] != EMPTY && t[at] != key) at = (at + 1) & mask;
    return at;
}

/* The slots of `table` (its words but the last), or 0 when they are not a power of two; their log2 in *bits. */
static size_t slots_of(const Py_buffer *table, int *bits) {
    size_t words = (size_t)table->len / sizeof(uint64_t);
    if (words < 3 || ((words - 1) & (words - 2))) return 0;
    *bits = __builtin_ctzll((unsigned long long)(words - 1));
    return words - 1;
}

static PyObject *fill_key_set(PyObject *self, PyObject *args) {
    Py_buffer keys, table;
    if (!PyArg_ParseTuple(args, "y*w*", &keys, &table)) return NULL;
    int bits = 0;
    size_t slots = slots_of(&table, &bits), n = (size_t)keys.len / sizeof(uint64_t);
    if (!slots || n > slots / 2 || keys.len % (Py_ssize_t)sizeof(uint64_t)) {
        PyBuffer_Release(&keys);
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError,
                        "a key set needs 8-byte keys, a power of two of slots (twice its keys at least) and one word");
        return NULL;
    }
    const uint64_t *k = keys.buf;
    uint64_t *t = table.buf;
    Py_BEGIN_ALLOW_THREADS
    memset(t, 0xFF, (slots + 1) * sizeof(uint64_t));
    t[slots] = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] == EMPTY) {
            t[slots] = 1;
            continue;
        }
        t[slot_of(t, k[i], 64 - bits, slots - 1)] = k[i];
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&keys);
    PyBuffer_Release(&table);
    Py_RETURN_NONE;
}

static PyObject *absent_keys(PyObject *self, PyObject *args) {
    Py_buffer table, probes, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &table, &probes, &out)) return NULL;
    int bits = 0;
    size_t slots = slots_of(&table, &bits), n = (size_t)probes.len / sizeof(uint64_t), count = 0;
    if (!slots || out.len < probes.len || probes.len % (Py_ssize_t)sizeof(uint64_t)) {
        PyBuffer_Release(&table);
        PyBuffer_Release(&probes);
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "absent_keys needs a key set, 8-byte probes and room for each");
        return NULL;
    }
    const uint64_t *t = table.buf, *p = probes.buf;
    uint64_t *o = out.buf;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < n; i++) {
        int found = p[i] == EMPTY ? t[slots] != 0 : t[slot_of(t, p[i], 64 - bits, slots - 1)] == p[i];
        if (!found) o[count++] = p[i];
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&table);
    PyBuffer_Release(&probes);
    PyBuffer_Release(&out);
    return PyLong_FromSize_t(count);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, keys, null_at, columns, key_index, delimiter, escape, final) -> (bytes, records, nulls) | None\n\n"
     "The keys of the whole records of `data` into `keys` (int64; 0 for a NULL key, whose record number goes to "
     "`null_at`, as big). `escape` -1: none. None: a record this path does not read; read the file with Arrow."},
    {"mixed_sum", mixed_sum, METH_VARARGS,
     "mixed_sum(keys, f0, f1, f2) -> (high, low)\n\nThe sums of the high and low 32 bits of each key's hash "
     "(low * f0) ^ (low * f1) ^ (high * f2), its halves read as uint64: the sum is (high << 32) + low."},
    {"fill_key_set", fill_key_set, METH_VARARGS,
     "fill_key_set(keys, table)\n\nThe 8-byte `keys` into `table`, a writable array of 2^b + 1 words (2^b at "
     "least twice the keys)."},
    {"absent_keys", absent_keys, METH_VARARGS,
     "absent_keys(table, probes, out) -> count\n\nThe 8-byte `probes` not in the key set `table`, in order, "
     "into `out` (as big as `probes`); their number."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_key_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__key_scan(void) { return PyModule_Create(&module); }
