"""Which ONNX op types the zoo's exports use, and in which models.

    python bench/op_inventory.py              # op_type -> models table
    python bench/op_inventory.py --per-model  # op types (with counts) of each export
    python bench/op_inventory.py --json       # both, machine-readable

Exports anything missing from the zoo cache first (a few minutes from empty on 2 cores).
A model listed bare uses the op in every one of its exports; otherwise the exports that
use it are listed in brackets (ts = torchscript, dy = dynamo, sh = shipped, then opset).
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402

from tests import zoo  # noqa: E402

_SHORT = {"torchscript": "ts", "dynamo": "dy", "shipped": "sh"}


def _op_counts(graph: onnx.GraphProto, counts: collections.Counter) -> collections.Counter:
    # Control-flow bodies (If/Loop/Scan) hold nodes too; the optimizer has to handle them.
    for node in graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[key] += 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _op_counts(attr.g, counts)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _op_counts(g, counts)
    return counts


def inventory() -> dict[tuple[str, str, int], collections.Counter]:
    result = {}
    for combo in zoo.ZOO:
        model = onnx.load(str(zoo.zoo_model(*combo)), load_external_data=False)
        result[combo] = _op_counts(model.graph, collections.Counter())
    return result


def _label(combo) -> str:
    return f"{_SHORT[combo[1]]}{combo[2]}"


def op_table(inv) -> dict[str, str]:
    exports_of = collections.defaultdict(list)
    for combo in inv:
        exports_of[combo[0]].append(combo)
    table = {}
    for op in sorted({op for counts in inv.values() for op in counts}):
        parts = []
        for name, combos in exports_of.items():
            using = [c for c in combos if op in inv[c]]
            if not using:
                continue
            if len(using) == len(combos):
                parts.append(name)
            else:
                parts.append(f"{name}[{','.join(_label(c) for c in using)}]")
        table[op] = ", ".join(parts)
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-model", action="store_true", help="op counts of each export")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    opts = parser.parse_args(argv)
    inv = inventory()
    table = op_table(inv)
    if opts.json:
        print(json.dumps({
            "ops": table,
            "exports": {"/".join(map(str, c)): dict(sorted(v.items())) for c, v in inv.items()},
        }, indent=1))
        return 0
    width = max(map(len, table))
    print(f"{'op_type':<{width}}  models using it")
    for op, models in table.items():
        print(f"{op:<{width}}  {models}")
    print(f"\n{len(table)} op types across {len(inv)} exports of {len({c[0] for c in inv})} models")
    if opts.per_model:
        for combo, counts in inv.items():
            info = zoo.export_info(zoo.zoo_model(*combo))
            secs = f", exported in {info['export_seconds']:.1f}s" if info else ""
            print(f"\n{'/'.join(map(str, combo))}: {sum(counts.values())} nodes{secs}")
            print("  " + ", ".join(f"{op} {n}" for op, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
