"""A small RFC 6902 JSON Patch (add, remove, replace, test), enough for PDSm Flux 03."""

from __future__ import annotations

import copy
from typing import Any

from dmp.errors import DmpError


def _tokens(path: Any) -> list[str]:
    if not isinstance(path, str) or not path.startswith("/"):
        raise DmpError("INVALID_PATCH", f"chemin JSON Pointer invalide : {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> tuple[Any, str]:
    node = doc
    for t in tokens[:-1]:
        try:
            node = node[int(t)] if isinstance(node, list) else node[t]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise DmpError("INVALID_PATCH", f"chemin inexistant : /{'/'.join(tokens)}") from exc
    return node, tokens[-1]


def apply(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list) or not ops:
        raise DmpError("INVALID_PATCH", "une liste d'opérations JSON Patch est attendue")
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise DmpError("INVALID_PATCH", "opération mal formée")
        kind = op.get("op")
        parent, last = _parent(out, _tokens(op.get("path")))
        try:
            if kind == "add":
                if isinstance(parent, list):
                    parent.insert(len(parent) if last == "-" else int(last), op["value"])
                else:
                    parent[last] = op["value"]
            elif kind == "replace":
                if isinstance(parent, list):
                    parent[int(last)] = op["value"]
                else:
                    if last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            elif kind == "remove":
                if isinstance(parent, list):
                    del parent[int(last)]
                else:
                    del parent[last]
            elif kind == "test":
                current = parent[int(last)] if isinstance(parent, list) else parent[last]
                if current != op.get("value"):
                    raise DmpError("INVALID_PATCH", f"test échoué sur {op.get('path')}")
            else:
                raise DmpError("INVALID_PATCH", f"opération « {kind} » non prise en charge")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise DmpError("INVALID_PATCH", f"{kind} impossible sur {op.get('path')}") from exc
    return out
