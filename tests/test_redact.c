/* Unit tests for src/redact.c: passwords out of Redis URLs and libpq connection strings. */
#include <criterion/criterion.h>

#include <string.h>

#include "rollupd/redact.h"

static void expect_redacted(const char *in, const char *want)
{
    char out[512];
    ru_redact(in, out, sizeof(out));
    cr_assert_str_eq(out, want, "redact(\"%s\") = \"%s\", want \"%s\"", in, out, want);
}

Test(redact, redact_redis_urls)
{
    expect_redacted("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0");
    expect_redacted("redis://:secret@host", "redis://:***@host");
    expect_redacted("redis://secret@host", "redis://***@host");
    expect_redacted("unix:///run/redis.sock?db=1&password=secret",
                    "unix:///run/redis.sock?db=1&password=***");
    /* an unencoded '@' or '/' in the password must not leak any part of it */
    expect_redacted("redis://u:p@ss/w@rd@host:1/0", "redis://u:***@host:1/0");
}

/* PostgreSQL connection strings are read by libpq (PQconninfoParse) and written back as
 * key=value pairs in libpq's order, every option it marks secret shown as "***". */
Test(redact, redact_conninfo_through_libpq)
{
    expect_redacted("postgresql://alice:pa%40ss@db.example:5432/app",
                    "user=alice password=*** dbname=app host=db.example port=5432");
    expect_redacted("postgresql://db/app?user=alice&password=secret&sslmode=require",
                    "user=alice password=*** dbname=app host=db sslmode=require");
    expect_redacted("postgres://db/app?password=secret", "password=*** dbname=app host=db");
    expect_redacted("host=db password=secret dbname=x", "password=*** dbname=x host=db");
    expect_redacted("host=db password='se cret' dbname=x", "password=*** dbname=x host=db");
    expect_redacted("password='it\\'s' user=u", "user=u password=***");
    expect_redacted("password = secret user=u", "user=u password=***");
    expect_redacted("sslpassword=k host=h", "host=h sslpassword=***");
    expect_redacted("password=", "password=***");
    /* found by fuzz_config: libpq reads "h?sslcret" as the user and sslpassword as a
     * secret; a hand-written reader split at the first '?' and showed k3y */
    expect_redacted("postgresql://h?sslcret@h?sslpassword=k3y",
                    "user=h?sslcret host=h sslpassword=***");
    /* what libpq cannot read is not shown (it may hold a secret anywhere) */
    expect_redacted("password=se cret host=h",
                    "(not shown: not a connection string libpq can read)");
    expect_redacted("postgresql://u:secret@h/db?nokey=1",
                    "(not shown: not a connection string libpq can read)");
    /* a word without '=' is a database name to libpq */
    expect_redacted("genonaut", "dbname=genonaut");
}

Test(redact, redact_keeps_what_is_not_secret)
{
    static const char *const same[] = {
        "dbname=genonaut",
        "user=rollupd dbname=x host=/var/run/postgresql application_name='roll up'",
        "redis://127.0.0.1:6379/0",
        "redis://[::1]:6380",
        "unix:/run/redis.sock?db=2",
        "",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        expect_redacted(same[i], same[i]);
    expect_redacted("postgresql://rollupd@db.example/genonaut?sslmode=verify-full",
                    "user=rollupd dbname=genonaut host=db.example sslmode=verify-full");

    char small[8];
    ru_redact("redis://u:secret@h", small, sizeof(small));
    cr_assert_str_eq(small, "redis:/");
    ru_redact("password=secret host=h", small, sizeof(small));
    cr_assert_str_eq(small, "passwor");
}

Test(redact, conninfo_has_secret)
{
    cr_assert(ru_redact_conninfo_has_secret("dbname=x password=s3"));
    cr_assert(ru_redact_conninfo_has_secret("host=h sslpassword=k"));
    cr_assert(ru_redact_conninfo_has_secret("postgresql://u:pw@h/db"));
    cr_assert(ru_redact_conninfo_has_secret("host='unterminated password=x"), "unreadable");
    cr_assert(!ru_redact_conninfo_has_secret("dbname=x user=u"));
    cr_assert(!ru_redact_conninfo_has_secret("dbname=x password="), "empty");
    cr_assert(!ru_redact_conninfo_has_secret("genonaut"), "a bare database name");
}
