"""The stats task in the runner convention: ``execute(input) -> output`` on JSON-like data.

Standard library only, so the same file runs

* in-process: ``executor run examples/stats.py --input '{"values": [1, 2, 3]}'``
* in a container: ``executor run examples/stats.py --runner python --input ...``, or
  injected as ``/app/execute.py`` by ``examples/stats_container.py``.
"""


def execute(input):
    values = input["values"]
    total = sum(values)
    return {"count": len(values), "sum": total, "mean": total / len(values)}
