"""YAML loading: the libyaml C loader when present, and line numbers for key paths on demand.

Documents are loaded fast without marks; only when a value is wrong do we compose the document
again to find the line of the offending key.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Sequence

import yaml

from dativo_ingest.errors import InputError
from dativo_ingest.reading import read_opened

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

# Bounded work for any input (README, "Safety"): a YAML file is at most MAX_FILE_BYTES, and a document
# holds at most MAX_NODES nodes once its aliases are expanded (a "billion laughs" file expands to 10^9).
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 10_000


class _Rules(yaml.resolver.Resolver):
    """PyYAML's tag rules without path resolvers, whatever an application that runs dativo-tf registers (the
    Python API, Dagster): a tag depends on a node's kind, value and style only (see `_node_tag`)."""

    yaml_path_resolvers = MappingProxyType({})  # and registering one here fails


_RESOLVER = _Rules()


@lru_cache(maxsize=8192)
def _node_tag(kind: type, value: str | None, implicit: tuple[bool, bool] | bool) -> str:
    """The tag PyYAML's rules give a node (SafeLoader has no path-dependent rules: its kind, value and style
    decide). Keys and values recur across files: each is matched against the rules once."""
    return _RESOLVER.resolve(kind, value, implicit)


class SafeLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe (C) loader, refusing duplicate keys, integers Python cannot parse, and alias bombs."""

    check_aliases = False  # set per document by `parse`: only documents with an anchor can expand

    # The composer calls these around every node, for path-dependent resolvers; SafeLoader has none (see
    # `_node_tag`), so they do nothing, without PyYAML's check of that on each call.
    descend_resolver = ascend_resolver = staticmethod(lambda *_: None)
    yaml_path_resolvers = _Rules.yaml_path_resolvers
    # the composer calls this for every node: the cached function itself, without a method's frame around it
    resolve = staticmethod(_node_tag)

    def get_single_data(self):  # type: ignore[no-untyped-def]
        node = self.get_single_node()
        if node is None:
            return None
        if not self.check_aliases:
            try:
                return self._plain(node)
            except Exception:  # noqa: BLE001 - anything the plain build does not cover: the full path decides
                self.constructed_objects.clear()
        if self.check_aliases:
            _check_expansion(node)
        self._check_duplicates(node)
        return self.construct_document(node)

    def _plain(self, node: yaml.Node) -> Any:
        """The document of a file without anchors, built directly: the data PyYAML's constructor would build,
        in a fraction of its time. Raises on anything else (merge keys, non-string keys, a duplicate key,
        unknown tags): the full path then builds the document or reports the error exactly as it always did."""
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _MAP:
            data = {}
            for key_node, value_node in node.value:
                if key_node.tag != _STR or key_node.value in data:
                    raise _Unplain
                data[key_node.value] = self._plain(value_node)
            return data
        if tag == _SEQ:
            return [self._plain(child) for child in node.value]
        if isinstance(node, yaml.ScalarNode) and tag in _SCALAR_TAGS:
            return self.yaml_constructors[tag](self, node)
        raise _Unplain

    def _check_duplicates(self, root: yaml.Node) -> None:
        """Refuse a mapping that repeats a key (PyYAML keeps the last one silently), checked on the composed
        document before merge keys (`<<: *base`, which override on purpose) are flattened into it."""
        scalar, text, merge = yaml.ScalarNode, "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
        seen_nodes: set[int] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if id(node) in seen_nodes:
                continue
            seen_nodes.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                stack.extend(child for child in node.value if not isinstance(child, scalar))
            elif isinstance(node, yaml.MappingNode):
                keys: dict[Any, yaml.Node] = {}
                for key_node, value_node in node.value:
                    if not isinstance(value_node, scalar):
                        stack.append(value_node)
                    if not isinstance(key_node, scalar):
                        stack.append(key_node)
                        continue
                    if key_node.tag == merge:
                        continue
                    # a plain string key is itself; others (1, 01, true, null) by their value
                    key = key_node.value if key_node.tag == text else self.construct_object(key_node)
                    try:
                        first = keys.setdefault(key, key_node)
                    except TypeError:
                        continue  # unhashable: PyYAML reports it
                    if first is not key_node:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first on line {first.start_mark.line + 1}); "
                            "each key may appear once in a mapping", key_node.start_mark)

    def construct_yaml_int(self, node):  # type: ignore[no-untyped-def]
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"integer {node.value[:20]}... is too large; allowed: integers of at most "
                "19 digits (signed 64-bit)", node.start_mark) from None

    def construct_yaml_timestamp(self, node):  # type: ignore[no-untyped-def]
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:  # 2020-13-45 matches YAML's timestamp pattern, but no calendar
            raise yaml.constructor.ConstructorError(
                None, None, f"the date {node.value[:40]} does not exist ({exc}); allowed: real dates such as "
                "2020-12-31, or quote the value to keep it as text", node.start_mark) from None


SafeLoader.add_constructor("tag:yaml.org,2002:int", SafeLoader.construct_yaml_int)
SafeLoader.add_constructor("tag:yaml.org,2002:timestamp", SafeLoader.construct_yaml_timestamp)


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
# scalars whose constructor returns the value outright (a timestamp or binary goes the full path)
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null"))


class _Unplain(Exception):
    """A document `SafeLoader._plain` leaves to PyYAML's constructor."""


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose alias-expanded node count passes MAX_NODES, at the deepest key that does.
    Sizes are memoised per node, so this is linear in the document, not in its expansion."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        sizes[id(node)] = total
        return total

    if size(root) <= MAX_NODES:
        return
    node, mark = root, root.start_mark
    while True:
        children = (node.value if isinstance(node, yaml.SequenceNode)
                    else [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else [])
        keys = [k for k, _ in node.value] if isinstance(node, yaml.MappingNode) else children
        # the largest child, the last of equals: an alias comes after its anchor, so this is where it is used
        biggest = max(range(len(children)), key=lambda i: (size(children[i]), i), default=None)
        if biggest is None or size(children[biggest]) <= MAX_NODES:
            break
        if children[biggest].start_mark.index < node.start_mark.index:
            break  # an alias back to an anchor written earlier: the expansion happens here
        node, mark = children[biggest], keys[biggest].start_mark
    raise yaml.constructor.ConstructorError(
        None, None, f"the document expands to more than {MAX_NODES} values through aliases (*name); "
        f"allowed: at most {MAX_NODES} values after expanding aliases", mark)


def read_text(path: Path, seen: list | None = None) -> str:
    """The UTF-8 text of a regular file of at most MAX_FILE_BYTES (a FIFO would block; a huge file is not YAML
    anyone wrote by hand). `seen` gets (sha256 of the bytes, their file status, whether the path is a symlink):
    the render cache records the bytes that were parsed, without reading the file again."""
    try:
        try:
            fd, link = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC), False
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd, link = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), True  # a symlink: read through it
        data, info = read_opened(fd, MAX_FILE_BYTES)
        if data is None:
            raise InputError("not a regular file; allowed: regular files (or symlinks to them)", path=path)
        if len(data) > MAX_FILE_BYTES:
            raise InputError(f"the file is larger than {MAX_FILE_BYTES} bytes; allowed: at most "
                             f"{MAX_FILE_BYTES} bytes (1 MiB)", path=path)
        if seen is not None:
            seen.append((hashlib.sha256(data).hexdigest(), info, link))
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file: {exc}", path=path) from None


def parse(text: str, path: Path | str) -> Any:
    """Parse YAML text, turning syntax errors into an InputError with the line."""
    loader = SafeLoader(text)
    loader.check_aliases = "&" in text
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise InputError(f"invalid YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", path=path) from None
    except RecursionError:
        raise InputError("invalid YAML: the document is nested too deeply", path=path) from None
    finally:
        loader.dispose()


# Job files read and parsed ahead, in the child that loads the templates (see `templating.compile_aside`):
# {path: the pickled (data, text, what `read_text` saw)}. Each is taken once, and unpickled, by the process that
# renders the job: a worker, beside the others, not the main process before any worker starts.
_parsed_ahead: dict[str, bytes] = {}


def parse_ahead(path: Path) -> tuple[str, bytes] | None:
    """(path, the pickled (data, text, what `read_text` saw)) of a job file, read and parsed as `load_mapping` does;
    None when that fails (rendering then reads it again and reports why)."""
    seen: list = []
    try:
        text = read_text(path, seen)
        return os.fspath(path), pickle.dumps((parse(text, path), text, seen[0]), pickle.HIGHEST_PROTOCOL)
    except InputError:
        return None


def parsed_ahead(parsed: Iterable[tuple[str, bytes]]) -> None:
    """Keep the jobs `parse_ahead` parsed (elsewhere) for `load_mapping`, in place of any kept before."""
    _parsed_ahead.clear()
    _parsed_ahead.update(parsed)


def load_mapping(path: Path, seen: list | None = None) -> tuple[dict, str]:
    """Load a YAML file whose top level must be a mapping. Returns (data, text). `seen`: see `read_text`."""
    ahead = _parsed_ahead.pop(os.fspath(path), None) if _parsed_ahead else None
    if ahead is not None:
        try:
            ahead = pickle.loads(ahead)
        except Exception:  # (whole frames from this run's own child: only a bug could damage one) read it again
            ahead = None
    if ahead is None:
        text = read_text(path, seen)
        data = parse(text, path)
    else:  # the bytes the child read are the bytes `seen` names: the render cache records what was rendered
        data, text, read = ahead
        if seen is not None:
            seen.append(read)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"the document must be a mapping of keys, got {type(data).__name__}", path=path, line=1)
    return data, text


@lru_cache(maxsize=64)
def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return None


def line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """1-based line of the deepest node of `loc` found in the document (a key's line, or an item's)."""
    node = _compose(text)
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
