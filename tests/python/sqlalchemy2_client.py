"""SQLAlchemy 2 + pandas against citylake's Postgres front end, run by
test_postgres.py with the second virtualenv's Python (scripts/requirements-sqlalchemy2.txt):
flightsql-dbapi, in the first, requires SQLAlchemy < 2.

Usage: sqlalchemy2_client.py PORT USER PASSWORD — prints one JSON object of what each client
read."""
import json
import sys

import pandas as pd
import sqlalchemy as sa


def main(port, user, password):
    url = sa.URL.create("postgresql+psycopg", username=user, password=password, host="127.0.0.1",
                        port=int(port), database="citylake", query={"sslmode": "disable"})
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        # the dialect's start-up ran on connect (version, current_schema, hstore look-up, …)
        out["server_version"] = list(engine.dialect.server_version_info)
        out["read_sql"] = pd.read_sql(
            sa.text("SELECT district, population FROM common.districts ORDER BY admin_code"),
            conn).values.tolist()
        out["read_sql_params"] = pd.read_sql(
            sa.text("SELECT population FROM common.districts WHERE district = :d"), conn,
            params={"d": "Xihu"}).values.tolist()
    inspector = sa.inspect(engine)
    out["schemas"] = sorted(inspector.get_schema_names())
    out["tables"] = {s: sorted(inspector.get_table_names(schema=s))
                     for s in ("traffic", "common", "hotline", "finance")}
    out["has_table"] = [inspector.has_table("districts", schema="common"),
                        inspector.has_table("no_such_table", schema="common")]
    out["columns"] = [[c["name"], str(c["type"]), c["nullable"]]
                      for c in inspector.get_columns("districts", schema="common")]
    out["pk"] = inspector.get_pk_constraint("districts", schema="common")["constrained_columns"]
    out["fks"] = inspector.get_foreign_keys("districts", schema="common")
    out["indexes"] = inspector.get_indexes("districts", schema="common")
    # reflection of a whole table, as pandas.read_sql_table does it
    frame = pd.read_sql_table("districts", engine, schema="common")
    out["read_sql_table"] = [list(frame.columns), len(frame)]

    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
