/* fuzz_config: libFuzzer target for ru_cfgfile_load (through libconfig), the Redis URL
 * parser and ru_redact.
 *
 * Each input is used three ways:
 *   1. as a configuration file: written to a memfd and loaded by path (/proc/self/fd/N)
 *      with ru_cfgfile_load. On success the loaded configuration must satisfy every
 *      documented range and cross-key rule, and ru_config_deinit must free it (LeakSanitizer
 *      checks); on failure err is one non-empty line and cfg is left zeroed.
 *      @include directives are allowed only for the fixed files this target writes into
 *      INC_DIR (a few valid and invalid snippets); an input including anything else is not
 *      loaded, so the fuzzer cannot make libconfig read /dev/zero or a FIFO.
 *   2. as a Redis URL (up to the first NUL) for ru_redisurl_parse: the parsed address
 *      must be consistent, and a refusal leaves it zeroed with a reason.
 *   3. as a string to redact (ru_redact), into exact-size buffers of several sizes:
 *      the output never overflows, it never contains a password (>= 3 bytes) that the
 *      URL parser extracted from the same input, and for a string libpq's
 *      PQconninfoParse (the authority on conninfo) reads, libpq reads the output as the
 *      same options with every secret one "***" (check_libpq_round_trip). The loaded
 *      configuration's redis.url and postgres.conninfo get the same checks.
 *
 * A Redis URL's password "leaks" when redaction changed nothing at all, or when the redacted text
 * contains it as many times as the input does: redaction only replaces spans by "***", so
 * it can only remove occurrences, and removing the password's own span removes at least
 * one. That count is compared when the password holds no '*' and the input no '%' or '\\'
 * (which could encode the password, so that it occurs literally only elsewhere). */
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rollupd/cfgfile.h"
#include "rollupd/config.h"
#include "rollupd/redact.h"
#include "rollupd/util.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__lsan_default_suppressions(void);
const char *__asan_default_options(void);

/* libconfig 1.5 (not ours) leaks a string token's buffer when the parser stops on a syntax
 * error right after it: a file holding just "" or "=" does it. The buffer comes from its
 * scanner (libconfig_yylex, strbuf_append); a missing config_destroy would still show up
 * through the settings the parser allocates. */
const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig_yylex\nleak:strbuf_append\n";
}

/* Those leaks make libFuzzer run a leak check (a scan of the whole heap, ASan's quarantine
 * included) after many inputs; a 16 MB quarantine keeps that cheap (about 2.5x more
 * executions per second) and is still far more than one input frees. ASAN_OPTIONS
 * overrides it. */
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16";
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fixed, so that corpus files can name the snippets. */
#define INC_DIR "/tmp/rollupd-fuzz-inc"

/* Known findings in src/ (tests/fuzz/crashes/README.md). Their checks abort like any other,
 * unless RU_FUZZ_IGNORE_KNOWN=1 is in the environment (fuzz.h): then each kind is reported
 * once on stderr and the run goes on, so that a long run can look for new findings before
 * src/ is fixed. Only inputs matching a finding's exact pattern are let through. */
enum known { KNOWN_REDACT_QUERY_AT, KNOWN_IPV6_ZONE, KNOWN_INCLUDE_DIR, KNOWN_COUNT };
static const char *const known_names[KNOWN_COUNT] = {
    [KNOWN_REDACT_QUERY_AT] = "redact-query-at",
    [KNOWN_IPV6_ZONE] = "ipv6-zone",
    [KNOWN_INCLUDE_DIR] = "include-dir",
};
static bool ignore_known;

static void known_finding(enum known k, int line, const char *what)
{
    static bool reported[KNOWN_COUNT];
    fuzz_known(__FILE__, line, known_names[k], &reported[k], what);
}

static int conf_fd = -1;
static char conf_path[64];
static bool includes_ok;

static const struct {
    const char *name;
    const char *text;
} snippets[] = {
    {"redis.conf",
     "redis: {\n  url = \"redis://:hunter22@localhost:6380/3\";\n  count = 10;\n};\n"},
    {"postgres.conf", "postgres: { conninfo = \"host=db password='s3cret pw' dbname=x\";\n"
                      "  raw_table = \"raw\"; };\n"},
    {"wide.conf", "redis: {\n  claim_idle_ms = 5000000000;\n  count =\n    5000000000;\n};\n"},
    {"syntax.conf", "redis: { count = ; };\n"},
    {"unknown.conf", "redis: { colour = \"blue\"; };\n"},
    {"nested.conf", "@include \"" INC_DIR "/redis.conf\"\nlog: { level = \"debug\"; };\n"},
    {"self.conf", "@include \"" INC_DIR "/self.conf\"\n"},
};

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

/* Writes the snippets (atomically: concurrent -jobs share the directory). */
static bool setup_includes(void)
{
    struct stat st;
    if (mkdir(INC_DIR, 0700) != 0 &&
        (lstat(INC_DIR, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()))
        return false;
    for (size_t i = 0; i < sizeof(snippets) / sizeof(snippets[0]); i++) {
        char tmp[256], dst[256];
        snprintf(dst, sizeof(dst), "%s/%s", INC_DIR, snippets[i].name);
        snprintf(tmp, sizeof(tmp), "%s/.%s.%ld", INC_DIR, snippets[i].name, (long)getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return false;
        bool ok = write_all(fd, snippets[i].text, strlen(snippets[i].text));
        close(fd);
        if (!ok || rename(tmp, dst) != 0) {
            unlink(tmp);
            return false;
        }
    }
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    conf_fd = memfd_create("rollupd-fuzz.conf", MFD_CLOEXEC);
    if (conf_fd < 0) {
        perror("fuzz_config: memfd_create");
        abort();
    }
    snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", conf_fd);
    ignore_known = fuzz_ignore_known();
    includes_ok = setup_includes();
    if (!includes_ok)
        fprintf(stderr, "fuzz_config: cannot use %s; inputs with @include are skipped\n", INC_DIR);
    return 0;
}

/* Every "@include" (any case) must be followed by white space and "INC_DIR/NAME", NAME
 * made of [A-Za-z0-9_.-] without "..". */
static bool include_allowed(const uint8_t *d, size_t n)
{
    static const char kw[] = "@include";
    static const char dir[] = INC_DIR "/";
    const size_t kwlen = sizeof(kw) - 1, dirlen = sizeof(dir) - 1;
    for (size_t i = 0; i + kwlen <= n; i++) {
        if (d[i] != '@' || strncasecmp((const char *)d + i, kw, kwlen) != 0)
            continue;
        if (!includes_ok)
            return false;
        size_t j = i + kwlen;
        while (j < n && memchr(" \t\r\n\v\f", d[j], 6) != NULL)
            j++;
        if (j >= n || d[j] != '"')
            return false;
        j++;
        if (n - j < dirlen || memcmp(d + j, dir, dirlen) != 0)
            return false;
        j += dirlen;
        size_t name = j;
        while (j < n && d[j] != '"') {
            unsigned c = d[j];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-'))
                return false;
            j++;
        }
        if (j >= n || j == name || memmem(d + name, j - name, "..", 2) != NULL)
            return false;
        /* "INC_DIR/." is the directory: libconfig's scanner then calls exit(2) (finding
         * include-dir; libFuzzer reports "fuzz target exited") */
        if (j - name == 1 && d[name] == '.' && ignore_known) {
            known_finding(KNOWN_INCLUDE_DIR, __LINE__, "@include of a directory (skipped)");
            return false;
        }
    }
    return true;
}

/* ---- redaction -------------------------------------------------------------------- */

static size_t count_occurrences(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* The pattern of finding redact-query-at: a ':' before the last '@' of a URI, with a '?'
 * before that '@' (the query then loses its '?' and goes out unredacted). */
static bool query_at_pattern(const char *s)
{
    const char *auth = strstr(s, "://");
    if (auth == NULL)
        return false;
    const char *at = strrchr(auth, '@'), *q = strchr(auth, '?');
    return at != NULL && q != NULL && q < at && memchr(auth + 3, ':', (size_t)(at - auth - 3));
}

/* abort() when redacted (of input) still shows pw; see the top of the file. */
static void check_no_leak(const char *input, const char *redacted, const char *pw, const char *who)
{
    if (pw == NULL || strlen(pw) < 3)
        return;
    /* nothing redacted at all: the password is there, literally or encoded */
    bool leak = strcmp(input, redacted) == 0 && strspn(pw, "*") < strlen(pw);
    if (!leak && strchr(pw, '*') == NULL && strpbrk(input, "%\\") == NULL) {
        size_t in = count_occurrences(input, pw);
        leak = in > 0 && count_occurrences(redacted, pw) >= in;
    }
    if (!leak)
        return;
    bool known = query_at_pattern(input);
    if (!known || !ignore_known) {
        fprintf(stderr, "fuzz_config: %s password leaks through ru_redact\n", who);
        fprintf(stderr, "  input:    %s\n  redacted: %s\n  password: %s\n", input, redacted, pw);
    }
    if (known)
        known_finding(KNOWN_REDACT_QUERY_AT, __LINE__, "redacted output shows the password");
    else
        fuzz_fail(__FILE__, __LINE__, "redacted output shows the password");
}

/* A string libpq reads (never a Redis URL: libpq refuses its scheme as a keyword) is
 * redacted from libpq's own reading: the output, read by libpq again, holds exactly the
 * input's options with the same values, except that every option libpq marks secret
 * (dispchar '*') is "***". Stricter than counting occurrences, which key names written
 * out ("user=" holds "ser") would confuse. */
static void check_libpq_round_trip(const char *s, const char *redacted)
{
    char *errmsg = NULL;
    PQconninfoOption *in = PQconninfoParse(s, &errmsg);
    PQfreemem(errmsg);
    if (in == NULL)
        return;
    errmsg = NULL;
    PQconninfoOption *out = PQconninfoParse(redacted, &errmsg);
    PQfreemem(errmsg);
    if (out == NULL) {
        fprintf(stderr,
                "fuzz_config: libpq cannot read the redacted conninfo\n  input:    %s\n"
                "  redacted: %s\n",
                s, redacted);
        fuzz_fail(__FILE__, __LINE__, "redacted conninfo is not a connection string");
    }
    for (size_t i = 0; in[i].keyword != NULL; i++) {
        CHECK(out[i].keyword != NULL && strcmp(in[i].keyword, out[i].keyword) == 0);
        bool secret = in[i].dispchar != NULL && in[i].dispchar[0] == '*';
        const char *want = in[i].val == NULL ? NULL : secret ? "***" : in[i].val;
        bool same =
            want == NULL ? out[i].val == NULL : out[i].val != NULL && strcmp(want, out[i].val) == 0;
        if (!same) {
            fprintf(stderr,
                    "fuzz_config: %s %s through ru_redact\n  input:    %s\n"
                    "  redacted: %s\n",
                    in[i].keyword, secret ? "leaks" : "changes", s, redacted);
            fuzz_fail(__FILE__, __LINE__,
                      secret ? "redacted output shows a secret"
                             : "redacted output changes an option");
        }
    }
    PQconninfoFree(in);
    PQconninfoFree(out);
}

/* Redacts s into a buffer of exactly outlen bytes; returns the output (malloc'd). */
static char *redact_into(const char *s, size_t outlen)
{
    char *out = malloc(outlen);
    if (out == NULL)
        abort();
    memset(out, 'X', outlen);
    ru_redact(s, out, outlen);
    CHECK(memchr(out, '\0', outlen) != NULL);
    return out;
}

/* Redaction of s: bounded in every buffer size, and no password leaks. */
static void check_redact(const char *s, const char *url_password)
{
    size_t len = strlen(s);
    /* the only growth is "***" replacing a secret (3 bytes at most, for an empty one), and
     * each secret needs a key or separator of its own, so this is never reached */
    size_t big = 3 * len + 64;
    char *full = redact_into(s, big);
    CHECK(strlen(full) < big - 1);
    for (size_t outlen = 1; outlen <= 13; outlen += 12) {
        char *small = redact_into(s, outlen);
        /* truncation keeps a prefix of the full output */
        CHECK(strncmp(small, full, outlen - 1) == 0 && strlen(small) <= outlen - 1);
        free(small);
    }

    check_no_leak(s, full, url_password, "Redis URL");
    check_libpq_round_trip(s, full);
    free(full);
}

/* ---- Redis URLs ------------------------------------------------------------------- */

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return false;
    return true;
}

/* A host name ([A-Za-z0-9._-]), or an IPv6 address ([0-9A-Fa-f:.]) with an optional zone,
 * an interface name or number ("%eth0"). */
static void check_host(const char *h)
{
    size_t n = strlen(h);
    CHECK(n > 0);
    if (strchr(h, ':') == NULL) {
        CHECK(strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n);
        return;
    }
    size_t addr = strcspn(h, "%");
    CHECK(addr > 0 && strspn(h, "0123456789ABCDEFabcdef:.") == addr);
    if (h[addr] == '%') {
        const char *zone = h + addr + 1;
        size_t zn = strlen(zone);
        bool name =
            zn > 0 && zn < 16 &&
            strspn(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == zn;
        if (!name) {
            if (!ignore_known)
                fprintf(stderr, "fuzz_config: parsed host \"%s\"\n", h);
            known_finding(KNOWN_IPV6_ZONE, __LINE__, "IPv6 zone is not an interface name");
        }
    }
}

static void check_addr(const struct ru_redis_addr *a)
{
    CHECK((a->host == NULL) != (a->path == NULL));
    if (a->host != NULL) {
        check_host(a->host);
        CHECK(a->port >= 1 && a->port <= 65535);
    } else {
        CHECK(a->path[0] == '/');
        CHECK(strlen(a->path) < 108); /* sun_path */
        CHECK(strchr(a->path, '?') == NULL);
        CHECK(a->port == 0);
    }
    CHECK(a->db >= 0);
    CHECK(a->user == NULL || a->user[0] != '\0');
    CHECK(a->password == NULL || a->password[0] != '\0');
}

static bool same_opt_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Parses url; returns a copy of the password (or NULL). */
static char *check_url(const char *url)
{
    struct ru_redis_addr a;
    char err[256];
    err[0] = '\0';
    memset(&a, 0x5a, sizeof(a));
    int rc = ru_redisurl_parse(url, &a, err, sizeof(err));
    CHECK(rc == 0 || rc == -1);
    if (rc < 0) {
        CHECK(all_zero(&a, sizeof(a)));
        CHECK(err[0] != '\0');
        return NULL;
    }
    check_addr(&a);
    /* again, without an error buffer: the same address */
    struct ru_redis_addr b;
    CHECK(ru_redisurl_parse(url, &b, NULL, 0) == 0);
    CHECK(same_opt_str(a.host, b.host) && same_opt_str(a.path, b.path) &&
          same_opt_str(a.user, b.user) && same_opt_str(a.password, b.password) &&
          a.port == b.port && a.db == b.db);
    ru_redisurl_addr_deinit(&b);
    char *pw = a.password != NULL ? ru_xstrdup(a.password) : NULL;
    ru_redisurl_addr_deinit(&a);
    CHECK(all_zero(&a, sizeof(a)));
    return pw;
}

/* ---- the configuration ------------------------------------------------------------ */

static bool ident_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '$'))
            return false;
    }
    return true;
}

/* "name" or "schema.name", each part [A-Za-z_][A-Za-z0-9_$]* of at most 63 bytes. */
static bool table_ok(const char *t)
{
    const char *dot = strchr(t, '.');
    if (dot == NULL)
        return ident_ok(t, strlen(t));
    return ident_ok(t, (size_t)(dot - t)) && ident_ok(dot + 1, strlen(dot + 1));
}

static void check_config(const struct ru_config *c)
{
    CHECK(c->path != NULL && strcmp(c->path, conf_path) == 0);

    CHECK(c->redis.url != NULL && c->redis.stream != NULL && c->redis.group != NULL &&
          c->redis.consumer != NULL && c->redis.start != NULL &&
          c->redis.dead_letter_stream != NULL);
    CHECK(c->redis.stream[0] != '\0');
    CHECK(c->redis.group[0] != '\0');
    CHECK(c->redis.consumer[0] != '\0');
    CHECK(c->redis.dead_letter_stream[0] != '\0');
    CHECK(strcmp(c->redis.dead_letter_stream, c->redis.stream) != 0);
    CHECK(c->redis.count >= 1 && c->redis.count <= 100000);
    CHECK(c->redis.block_ms >= 0 && c->redis.block_ms <= 60000);
    CHECK(strcmp(c->redis.start, "0") == 0 || strcmp(c->redis.start, "$") == 0);
    CHECK(c->redis.claim_idle_ms >= 0);
    CHECK(c->redis.connect_timeout_ms >= 100 && c->redis.connect_timeout_ms <= 600000);

    /* the parsed address is the URL's */
    check_addr(&c->redis.addr);
    struct ru_redis_addr a;
    CHECK(ru_redisurl_parse(c->redis.url, &a, NULL, 0) == 0);
    CHECK(same_opt_str(a.host, c->redis.addr.host) && same_opt_str(a.path, c->redis.addr.path) &&
          same_opt_str(a.user, c->redis.addr.user) &&
          same_opt_str(a.password, c->redis.addr.password) && a.port == c->redis.addr.port &&
          a.db == c->redis.addr.db);
    ru_redisurl_addr_deinit(&a);

    CHECK(c->postgres.conninfo != NULL && c->postgres.hourly_table != NULL &&
          c->postgres.raw_table != NULL);
    CHECK(table_ok(c->postgres.hourly_table));
    CHECK(c->postgres.raw_table[0] == '\0' || table_ok(c->postgres.raw_table));
    CHECK(strcmp(c->postgres.raw_table, c->postgres.hourly_table) != 0);
    CHECK(c->postgres.statement_timeout_ms >= 0 && c->postgres.statement_timeout_ms <= 3600000);
    CHECK(c->postgres.connect_timeout_s >= 1 && c->postgres.connect_timeout_s <= 600);

    CHECK(c->flush.interval_ms >= 100 && c->flush.interval_ms <= 3600000);
    CHECK(c->flush.max_events >= 1000 && c->flush.max_events <= 100000000);
    CHECK(c->flush.max_keys >= 100 && c->flush.max_keys <= 10000000);
    CHECK(c->limits.max_memory_mb >= 16 && c->limits.max_memory_mb <= 1048576);

    CHECK(c->status.socket != NULL && c->status.socket[0] != '\0' &&
          strlen(c->status.socket) < 108);
    CHECK(c->metrics.listen != NULL);
    if (c->metrics.listen[0] != '\0') {
        const char *colon = strrchr(c->metrics.listen, ':');
        CHECK(colon != NULL && colon > c->metrics.listen);
        int64_t port;
        CHECK(ru_parse_i64(colon + 1, strlen(colon + 1), &port) == 0 && port >= 1 &&
              port <= 65535 && colon[1] >= '0' && colon[1] <= '9');
    }
    CHECK(c->log.level == RU_LOG_ERR || c->log.level == RU_LOG_WARNING ||
          c->log.level == RU_LOG_NOTICE || c->log.level == RU_LOG_INFO ||
          c->log.level == RU_LOG_DEBUG);
    CHECK(strcmp(ru_log_level_name(c->log.level), "unknown") != 0);

    /* reload comparison: nothing differs from itself; bounded against the defaults */
    char same[8];
    ru_config_restart_keys(c, c, same, sizeof(same));
    CHECK(same[0] == '\0');
    struct ru_config d;
    ru_config_defaults(&d);
    for (size_t outlen = 1; outlen <= 41; outlen += 20) {
        char *out = malloc(outlen);
        if (out == NULL)
            abort();
        ru_config_restart_keys(c, &d, out, outlen);
        CHECK(memchr(out, '\0', outlen) != NULL);
        free(out);
    }
    ru_config_deinit(&d);

    /* the strings a daemon logs through ru_redact */
    check_redact(c->redis.url, c->redis.addr.password);
    check_redact(c->postgres.conninfo, NULL);
}

static void load_config(const uint8_t *data, size_t size)
{
    if (ftruncate(conf_fd, 0) != 0 || lseek(conf_fd, 0, SEEK_SET) != 0 ||
        !write_all(conf_fd, data, size))
        abort();

    struct ru_config cfg;
    char err[512];
    memset(&cfg, 0xa5, sizeof(cfg));
    memset(err, 'E', sizeof(err));
    int rc = ru_cfgfile_load(&cfg, conf_path, err, sizeof(err));
    CHECK(rc == 0 || rc == -1);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (rc == 0) {
        check_config(&cfg);
    } else {
        /* one line naming the file, cfg left deinitialised */
        CHECK(err[0] != '\0');
        CHECK(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
        CHECK(strncmp(err, conf_path, strlen(conf_path)) == 0 ||
              strncmp(err, INC_DIR "/", sizeof(INC_DIR)) == 0);
        CHECK(all_zero(&cfg, sizeof(cfg)));
    }
    ru_config_deinit(&cfg);
    CHECK(all_zero(&cfg, sizeof(cfg)));
    ru_config_deinit(&cfg); /* safe on a zeroed struct */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (include_allowed(data, size))
        load_config(data, size);

    /* the raw input as one C string (up to its first NUL) */
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    char *pw = check_url(s);
    check_redact(s, pw);
    free(pw);
    free(s);
    return 0;
}
