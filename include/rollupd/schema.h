/* schema: the writer's set-up of its tables. Creates what is missing (or, with
 * postgres.create_schema off, names it and the DDL to apply), checks the role's
 * privileges and the hourly table's unique key. The texts are sql.h's. */
#ifndef ROLLUPD_SCHEMA_H
#define ROLLUPD_SCHEMA_H

struct ru_pgw;

/* On the writer's fresh session. 0, or -1 with the error recorded; setup_blocked set when
 * only a DBA or an operator can fix it (a missing table or privilege). */
int ru_schema_setup(struct ru_pgw *w);

#endif
