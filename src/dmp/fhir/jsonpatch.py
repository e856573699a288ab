"""A small RFC 6902 JSON Patch (add, remove, replace, test), enough for PDSm Flux 03."""

from __future__ import annotations

import copy
from collections.abc import Callable
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
        operation = _OPERATIONS.get(kind) if isinstance(kind, str) else None
        if operation is None:
            raise DmpError("INVALID_PATCH", f"opération « {kind} » non prise en charge")
        try:
            operation(parent, last, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise DmpError("INVALID_PATCH", f"{kind} impossible sur {op.get('path')}") from exc
    return out


# Each operation works on the parent of its path's last token; KeyError, IndexError, ValueError
# and TypeError mean the operation does not fit the document (``apply`` reports it).


def _add(parent: Any, last: str, op: dict[str, Any]) -> None:
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), op["value"])
    else:
        parent[last] = op["value"]


def _replace(parent: Any, last: str, op: dict[str, Any]) -> None:
    if isinstance(parent, list):
        parent[int(last)] = op["value"]
    else:
        if last not in parent:
            raise KeyError(last)
        parent[last] = op["value"]


def _remove(parent: Any, last: str, op: dict[str, Any]) -> None:
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]


def _test(parent: Any, last: str, op: dict[str, Any]) -> None:
    current = parent[int(last)] if isinstance(parent, list) else parent[last]
    if current != op.get("value"):
        raise DmpError("INVALID_PATCH", f"test échoué sur {op.get('path')}")


_OPERATIONS: dict[str, Callable[[Any, str, dict[str, Any]], None]] = {
    "add": _add,
    "replace": _replace,
    "remove": _remove,
    "test": _test,
}
