"""The Python plugin build command, run through `plugins/sdk-python/tend-py` (which
installs the pinned toolchain first):

    tend-py component PLUGIN_DIR -o PLUGIN.wasm [--app app]
    tend-py check PLUGIN_DIR...      # mypy --strict over SDK and plugins, then their unit tests
    tend-py bindings [DIR]           # the contract's generated types, for editors
    tend-py imports PLUGIN.wasm      # what a component imports

`component` runs `componentize-py -d wit -w plugin componentize --stub-wasi` over the
plugin directory's module `app` (which assigns `WitWorld = export(...)`) with this SDK
on the path, then checks that the component imports nothing but the `tend:plugin`
types: a plugin gets no WASI from tend (no files, network, environment or clock), and
`--stub-wasi` is what compiles Python's own uses of WASI into traps.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

SDK_DIR = Path(__file__).resolve().parent
REPO = SDK_DIR.parent.parent
WORLD = "plugin"


def wit_dir() -> Path:
    """The contract: $TEND_WIT, else the repository's `wit/` beside this SDK."""
    return Path(os.environ.get("TEND_WIT", REPO / "wit"))


def bindings_dir() -> Path:
    """Where the generated bindings go for type checks and native runs."""
    return Path(os.environ.get("TEND_PY_BINDINGS", REPO / "target" / "python" / "bindings"))


def _tool(name: str) -> str:
    """A console script of the toolchain venv (beside this interpreter)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(
            f"build: `{name}` not found: run this through plugins/sdk-python/tend-py"
        )
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # componentize-py would add a venv's whole site-packages (mypy ...) to the
    # component's Python path; the plugin needs only its own directory and this SDK.
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def bindings(out: Optional[Path] = None) -> Path:
    """Generates the contract's Python bindings (`wit_world`, `componentize_py_types`)."""
    out = out or bindings_dir()
    stamp = out / ".wit-stamp"
    wit = wit_dir()
    key = "".join(sorted(f"{p.name}:{p.stat().st_mtime_ns};" for p in wit.glob("*.wit")))
    if stamp.is_file() and stamp.read_text() == key:
        return out
    tmp = Path(tempfile.mkdtemp(prefix="bindings-", dir=out.parent if out.parent.exists() else None))
    subprocess.run(
        [_tool("componentize-py"), "-d", str(wit), "-w", WORLD, "bindings", str(tmp)],
        check=True,
        env=_env(),
        stdout=subprocess.DEVNULL,
    )
    (tmp / ".wit-stamp").write_text(key)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def python_path(plugin_dirs: Sequence[Path]) -> str:
    """PYTHONPATH for native runs: the plugin directories, this SDK, the bindings."""
    return os.pathsep.join([str(p) for p in plugin_dirs] + [str(SDK_DIR), str(bindings())])


def check(plugin_dirs: Sequence[Path]) -> None:
    """mypy --strict over the SDK and each plugin directory, then their unit tests."""
    cache = REPO / "target" / "python" / "mypy-cache"
    for d in [SDK_DIR, *plugin_dirs]:
        env = _env()
        env["MYPYPATH"] = python_path([d] if d != SDK_DIR else [])
        targets = [str(p) for p in sorted(d.iterdir()) if _is_python_source(p)]
        subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), *targets],
            check=True,
            env=env,
            cwd=d,
        )
        env["PYTHONPATH"] = env.pop("MYPYPATH")
        if (d / "tests").is_dir():
            subprocess.run(
                [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."],
                check=True,
                env=env,
                cwd=d,
            )


def _is_python_source(p: Path) -> bool:
    if p.name.startswith(".") or p.name == "__pycache__":
        return False
    return p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()) or p.name == "tests"


def component(plugin_dir: Path, out: Path, app: str = "app", stub_wasi: bool = True) -> None:
    """Builds the plugin directory's module `app` into a component at `out`.

    componentize-py runs on a copy of the sources (it writes `__pycache__` beside what
    it imports); the plugin's `tests` are left out."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")  # parallel builds do not collide
    ignore = shutil.ignore_patterns("__pycache__", ".*", "tests", "*.wasm", "target")
    with tempfile.TemporaryDirectory(prefix="tend-py-") as staging:
        src, sdk = Path(staging) / "plugin", Path(staging) / "sdk"
        shutil.copytree(plugin_dir, src, ignore=ignore)
        shutil.copytree(SDK_DIR / "tend_plugin", sdk / "tend_plugin", ignore=ignore)
        cmd = [_tool("componentize-py"), "-d", str(wit_dir()), "-w", WORLD, "componentize"]
        if stub_wasi:
            cmd.append("--stub-wasi")
        cmd += ["-p", str(src), "-p", str(sdk), app, "-o", str(tmp)]
        subprocess.run(cmd, check=True, env=_env(), cwd=staging, stdout=subprocess.DEVNULL)
    if stub_wasi:
        wanted = wasi_imports(tmp.read_bytes())
        if wanted:
            tmp.unlink()
            raise SystemExit(f"build: {out} would import WASI ({', '.join(wanted)})")
    tmp.replace(out)


def wasi_imports(component_bytes: bytes) -> List[str]:
    """The WASI interfaces a component imports (none for a plugin built right)."""
    return [name for name in imports(component_bytes) if name.startswith("wasi:")]


def imports(data: bytes) -> List[str]:
    """The names a component imports (its top-level import section)."""
    if data[:4] != b"\0asm" or data[4:8] != b"\x0d\x00\x01\x00":
        raise ValueError("not a WebAssembly component")
    names: List[str] = []
    i = 8
    while i < len(data):
        section = data[i]
        size, j = _leb(data, i + 1)
        end = j + size
        if section == 10:  # component import section
            count, j = _leb(data, j)
            for _ in range(count):
                j += 1  # import name kind (plain, or with a version suffix)
                name, j = _name(data, j)
                names.append(name)
                j = _skip_externdesc(data, j)
        i = end
    return names


def _leb(b: bytes, i: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        x = b[i]
        i += 1
        result |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return result, i


def _name(b: bytes, i: int) -> Tuple[str, int]:
    n, i = _leb(b, i)
    return b[i : i + n].decode("utf-8"), i + n


def _skip_externdesc(b: bytes, i: int) -> int:
    sort = b[i]
    i += 1
    if sort == 0x00:  # core module: 0x11 typeidx
        return _leb(b, i + 1)[1]
    if sort == 0x02:  # value: 0x00 typeidx | primitive
        return _leb(b, i + 1)[1] if b[i] == 0x00 else i + 1
    if sort == 0x03:  # type bound: 0x00 eq typeidx | 0x01 sub resource
        return _leb(b, i + 1)[1] if b[i] == 0x00 else i + 1
    return _leb(b, i)[1]  # func, component, instance: typeidx


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(prog="tend-py", description="Builds and checks tend plugins written in Python.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("component", help="build a plugin directory into a component")
    c.add_argument("plugin_dir", type=Path)
    c.add_argument("-o", "--output", type=Path, required=True)
    c.add_argument("--app", default="app", help="the module that assigns WitWorld (default: app)")
    c.add_argument(
        "--no-stub-wasi",
        action="store_true",
        help="keep Python's WASI imports (tend refuses such a plugin; for tests of that)",
    )
    k = sub.add_parser("check", help="mypy --strict and the unit tests of plugin directories")
    k.add_argument("plugin_dirs", type=Path, nargs="*")
    b = sub.add_parser("bindings", help="generate the contract's Python bindings")
    b.add_argument("out", type=Path, nargs="?")
    m = sub.add_parser("imports", help="list what a component imports")
    m.add_argument("wasm", type=Path)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "component":
            component(a.plugin_dir.resolve(), a.output.resolve(), a.app, not a.no_stub_wasi)
            print(f"{a.output}: {a.output.stat().st_size:,} bytes")
        elif a.cmd == "check":
            check([d.resolve() for d in a.plugin_dirs])
        elif a.cmd == "bindings":
            print(bindings(a.out.resolve() if a.out else None))
        elif a.cmd == "imports":
            for name in imports(a.wasm.read_bytes()):
                print(name)
    except subprocess.CalledProcessError as e:
        cmd = " ".join(str(x) for x in e.cmd[:6])
        raise SystemExit(f"build: `{cmd} ...` failed (exit {e.returncode})") from None


if __name__ == "__main__":
    main()
