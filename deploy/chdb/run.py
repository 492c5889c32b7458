"""Runs SQL statements through chdb (embedded ClickHouse) in one session, in order.

stdin: a JSON array of {"name": str, "sql": str}. stdout: one JSON object,
{"version": "<engine version>", "results": [{"name", "error"|null, "rows", "data"}]}, data being
the result's rows as JSONCompact writes them. A statement that fails does not stop the run: every
statement gets its own verdict, the caller decides.
"""
import json
import sys
import tempfile

from chdb import session


def main():
    stmts = json.load(sys.stdin)
    with tempfile.TemporaryDirectory(prefix="tollgate-chdb-") as path:
        sess = session.Session(path)
        version = str(sess.query("SELECT version()", "TabSeparated")).strip()
        results = []
        for st in stmts:
            res = {"name": st["name"], "error": None, "rows": 0}
            try:
                out = sess.query(st["sql"], "JSONCompact")
                text = str(out).strip()
                if text:
                    body = json.loads(text)
                    res["rows"] = body.get("rows", 0)
                    res["data"] = body.get("data", [])
            except Exception as e:  # chdb raises its own type; the message is what matters
                res["error"] = str(e)
            results.append(res)
        sess.close()
    json.dump({"version": version, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
