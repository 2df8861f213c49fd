"""Builds cnnlab's compiled CPU kernels (cnnlab.engine._kernels) next to the pure-Python package.

pyproject.toml holds the project's metadata; this file only adds the extension. It compiles against
the torch already installed, so install with ``pip install --no-build-isolation`` after torch
(scripts/setup.sh does). Without torch in the build environment, or without a C++ compiler, cnnlab
installs without the kernels and trains with torch's own operators (``cnnlab bench`` says which).
"""

from pathlib import Path

from setuptools import setup

SOURCES = Path(__file__).resolve().parent / "src"


def compiled_kernels() -> dict:
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        print(
            "cnnlab: torch is not importable here, so the compiled kernels are skipped; "
            "install torch first, then cnnlab with pip install --no-build-isolation"
        )
        return {}

    class BuildOptionalExtension(BuildExtension):
        def run(self):
            try:
                super().run()
            except Exception as error:  # torch's compiler checks and ninja builds raise errors of their own
                for extension in self.extensions:  # an editable install's module from an earlier build would load
                    (SOURCES / self.get_ext_filename(extension.name)).unlink(missing_ok=True)
                print(
                    f"cnnlab: the compiled kernels did not build ({error}); cnnlab works without them, "
                    "with torch's own operators"
                )

    kernels = CppExtension(
        "cnnlab.engine._kernels",
        ["src/cnnlab/engine/csrc/kernels.cpp", "src/cnnlab/engine/csrc/pool.cpp"],
        # -fno-math-errno lets sqrt vectorise; -fopenmp makes at::parallel_for use torch's threads
        extra_compile_args=["-O3", "-fno-math-errno", "-fopenmp"],
        extra_link_args=["-fopenmp"],
    )
    return {"ext_modules": [kernels], "cmdclass": {"build_ext": BuildOptionalExtension}}


setup(**compiled_kernels())
