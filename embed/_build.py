"""Build the C kernels in place when the package was not installed with `pip install -e .`."""

from __future__ import annotations

import logging
import os
import shutil
import sysconfig
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "_kernels" / "cortex_kernels.c"
HEADERS = tuple(SOURCE.parent.glob("*.h"))


def built_path() -> Path:
    """Where the in-place build lives (embed/_cortex_kernels<EXT_SUFFIX>)."""
    return SOURCE.parent.parent / f"_cortex_kernels{sysconfig.get_config_var('EXT_SUFFIX')}"


def is_stale() -> bool:
    """An in-place build older than any of its sources (e.g. left over from an older checkout)."""
    target = built_path()
    if not target.exists():
        return False
    built = target.stat().st_mtime
    return any(src.stat().st_mtime > built for src in (SOURCE, *HEADERS))
FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c11"]


def build_inplace() -> Path:
    """Compile embed/_cortex_kernels*.so next to this file (same flags as setup.py)."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    target = built_path()
    with tempfile.TemporaryDirectory() as tmp:
        ext = Extension("_cortex_kernels", [str(SOURCE)], extra_compile_args=FLAGS)
        dist = Distribution({"name": "cortex-kernels", "ext_modules": [ext]})
        cmd = build_ext(dist)
        cmd.build_lib = tmp
        cmd.build_temp = tmp
        cmd.ensure_finalized()
        cmd.run()
        built = Path(cmd.get_ext_fullpath("_cortex_kernels"))
        tmp_target = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(built, tmp_target)
        tmp_target.replace(target)  # atomic: a concurrent importer never sees half a file
    log.info("built %s", target)
    return target
