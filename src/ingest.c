/* ingest: the decision for one delivered entry (see ingest.h). Pure. */
#include "rollupd/ingest.h"

struct ru_ingest ru_ingest_decide_adopted(bool committed, enum ru_ingest_parse parsed)
{
    struct ru_ingest_in in = {
        .seen = committed ? RU_SEEN_COMMITTED : RU_SEEN_NEW,
        .origin = RU_FROM_PENDING,
        .parsed = parsed,
    };
    return ru_ingest_decide(&in);
}
