#!/usr/bin/env python3
"""The crate's layers only point down: no loop in the import graph between the files of src/.

A file's edges are the modules it names: `use crate::…`, `use super::…` and `use self::…` trees, inline
`crate::a::b` and `super::a` paths, and its own child modules (`mod x;` then `x::…`). A path is taken to
the deepest module file it names (`crate::proxy::body::ProxyBody` is src/proxy/body/mod.rs). Unit tests
(`#[cfg(test)] mod … { … }`) are left out, and so is a file's use of its own ancestors: a child module is
part of its parent (it may use the parent's items; the parent names its children).

Prints every loop with the edges that close it and exits 1; prints the layers, bottom first, and exits 0
when there is none.

    python3 .ci/layers.py [SRC_DIR]
"""

import os
import re
import sys

USE = re.compile(r"\buse\s+(crate|super|self)::(\{[^;]*\}|[^;]*);", re.S)
INLINE = re.compile(r"\b(crate|super)::((?:super::)*[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*)")
CHILD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.M)
TESTS = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")
COMMENT = re.compile(r"//[^\n]*")


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src (lib.rs and main.rs are the root)."""
    found = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                continue
            found[tuple(parts)] = rel
    return found


def use_tree(body):
    """`a::{b, c::{d as e}}` -> [[a, b], [a, c, d]]."""
    out = []

    def walk(prefix, text):
        depth, item, items = 0, "", []
        for ch in text:
            depth += ch == "{"
            depth -= ch == "}"
            if ch == "," and depth == 0:
                items.append(item)
                item = ""
            else:
                item += ch
        items.append(item)
        for item in (i.strip() for i in items):
            if not item:
                continue
            if "{" in item:
                head, rest = item.split("{", 1)
                walk(prefix + [p for p in head.strip().strip(":").split("::") if p], rest.rsplit("}", 1)[0])
            else:
                out.append(prefix + [p for p in item.split(" as ")[0].strip().split("::") if p])

    walk([], body)
    return out


def paths_of(module, text):
    """Every module path a file's text names, resolved to absolute paths."""
    parent = list(module[:-1])
    paths = []

    def based(base, parts):
        base = list(base)
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
        return base + [p for p in parts if p != "self"]

    for kind, body in USE.findall(text):
        if body.startswith("{"):
            body = body[1:-1]
        base = {"crate": [], "super": parent, "self": list(module)}[kind]
        paths += [based(base, p) for p in use_tree(body)]
    rest = USE.sub("", text)
    for kind, path in INLINE.findall(rest):
        paths.append(based([] if kind == "crate" else parent, path.split("::")))
    for child in CHILD.findall(text):
        if re.search(r"(?<![\w:])" + child + r"::", rest):
            paths.append(list(module) + [child])
    return paths


def graph(src):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for module, rel in mods.items():
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            text = f.read()
        tests = TESTS.search(text)
        if tests:
            text = text[: tests.start()]
        text = COMMENT.sub("", text)
        for path in paths_of(module, text):
            target = next((tuple(path[:n]) for n in range(len(path), 0, -1) if tuple(path[:n]) in mods), None)
            if target is None or target == module or module[: len(target)] == target:
                continue
            edges[module].add(target)
    return mods, edges


def loops(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layers(edges):
    """Each module's floor: 0 when it names no other module, else one above the highest it names."""
    floor = {}

    def of(v):
        if v not in floor:
            floor[v] = 0
            floor[v] = 1 + max((of(w) for w in edges[v]), default=-1)
        return floor[v]

    for v in edges:
        of(v)
    return floor


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    mods, edges = graph(src)
    name = lambda m: "::".join(m)  # noqa: E731
    found = loops(edges)
    if found:
        for component in found:
            inside = set(component)
            print(f"loop of {len(component)} modules:")
            for v in component:
                for w in sorted(edges[v] & inside):
                    print(f"  {mods[v]} -> {mods[w]}")
        print("layers.py: the import graph has loops; move what both sides need below them", file=sys.stderr)
        return 1
    floor = layers(edges)
    for level in range(max(floor.values(), default=0) + 1):
        print(f"{level:2}  " + " ".join(sorted(name(m) for m, f in floor.items() if f == level)))
    print(f"layers.py: {len(mods)} modules, {sum(map(len, edges.values()))} edges, no loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
