"""Build the native parts with the package: the hashing core (pithead.miner._sha256d) and the pool's
notify fan-out (pithead.stratum.server._fanout).

Both extensions are optional: if there is no C compiler, or a build fails, pithead installs without it and
runs on the pure-Python path (pithead.miner.core says so once at run time; the pool then writes notifies
through its transports). SHA-NI is selected at
run time inside the extension (cpuid), so one build works on CPUs with and without it. PITHEAD_NO_NATIVE=1
skips the extension on purpose.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = os.path.join("src", "pithead", "miner", "_sha256d.c")
FANOUT_SRC = os.path.join("src", "pithead", "stratum", "server", "_fanout.c")


class OptionalBuildExt(build_ext):
    """A build_ext that warns instead of failing: the pure path is always there."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # pragma: no cover - depends on the machine
            print(f"pithead: native extensions not built ({exc}); using the pure-Python paths", file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # pragma: no cover - depends on the machine
            print(f"pithead: {ext.name} not built ({exc}); using its pure-Python path", file=sys.stderr)


def extensions() -> list[Extension]:
    if not os.path.exists(SRC) or os.environ.get("PITHEAD_NO_NATIVE"):
        return []
    # No -march flags: the SHA-NI and AVX2 kernels carry their own target attributes inside the source and
    # are picked at run time (cpuid / __builtin_cpu_supports), so one build runs on any CPU of the arch.
    args = ["-O3", "-std=c11", "-Wall"]
    if sys.platform == "win32":  # pragma: no cover - MSVC takes its own flags
        args = ["/O2"]
    exts = [Extension("pithead.miner._sha256d", sources=[SRC], extra_compile_args=args)]
    if sys.platform != "win32":  # POSIX sockets and threads
        exts.append(Extension("pithead.stratum.server._fanout", sources=[FANOUT_SRC],
                              extra_compile_args=["-O2", "-std=c11", "-Wall", "-pthread"], extra_link_args=["-pthread"]))
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
